package config

import "fmt"

// maxNesting bounds how deep arrays and inline tables may nest. signstar's
// keys need two levels at most (a table header, an array of strings); the
// TOML parser spends about a KiB per level, so 900 KB of "[" cost 947 MiB
// before this check.
const maxNesting = 8

// checkNesting refuses data whose brackets and braces nest deeper than
// maxNesting, before the TOML parser sees it. Strings (basic, literal and
// their multi-line forms) and comments are skipped; anything malformed is
// left for the parser to report.
func checkNesting(path string, data []byte) error {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			if i+2 < len(data) && data[i+1] == c && data[i+2] == c {
				i += 3
				for i < len(data) && !(i+2 < len(data) && data[i] == c && data[i+1] == c && data[i+2] == c) {
					if data[i] == '\n' {
						line++
					}
					if c == '"' && data[i] == '\\' {
						i++
						if i < len(data) && data[i] == '\n' {
							line++
						}
					}
					i++
				}
				i += 2
				continue
			}
			for i+1 < len(data) && data[i+1] != c && data[i+1] != '\n' {
				i++
				if c == '"' && data[i] == '\\' && i+1 < len(data) && data[i+1] != '\n' {
					i++
				}
			}
			i++
		case '[', '{':
			depth++
			if depth > maxNesting {
				return &Error{File: path, Line: line, Msg: fmt.Sprintf("arrays and inline tables nest deeper than %d: signstar's keys need at most 2", maxNesting)}
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

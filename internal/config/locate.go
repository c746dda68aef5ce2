package config

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// locator finds the line of a key in the raw file. BurntSushi/toml reports
// lines for syntax errors only, and an operator wants a line for every error.
type locator struct {
	path  string
	lines []string
}

// headerRE is compiled only when an error needs a line number.
var headerRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]?\s*(#.*)?$`)
})

// header parses a table header line: its name without spaces, and whether
// it opens an array element ([[name]]).
func header(text string) (name string, array, ok bool) {
	m := headerRE().FindStringSubmatch(text)
	if m == nil {
		return "", false, false
	}
	return strings.ReplaceAll(m[1], " ", ""), strings.HasPrefix(strings.TrimSpace(text), "[["), true
}

// keyLineRE matches a line that assigns leaf.
func keyLineRE(leaf string) *regexp.Regexp {
	return regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(leaf) + `"?\s*=`)
}

// line returns the 1-based line of key inside the table header (the idx-th
// [[header]] for arrays, idx < 0 for plain tables), or of the header itself
// when the key is not written, or 0 when the header is absent too.
func (l *locator) line(hdr string, idx int, key string) int {
	table, leaf := hdr, key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, leaf = hdr+"."+key[:i], key[i+1:]
	}
	count, headerLine, inTable := -1, 0, hdr == ""
	keyRE := keyLineRE(leaf)
	for n, text := range l.lines {
		if cur, array, ok := header(text); ok {
			if cur == hdr && array {
				count++
			}
			inTable = cur == table && (idx < 0 || count == idx)
			if inTable && cur == hdr && headerLine == 0 {
				headerLine = n + 1
			}
			continue
		}
		if inTable && keyRE.MatchString(text) {
			return n + 1
		}
	}
	return headerLine
}

func (l *locator) err(hdr string, idx int, key, msg string) error {
	name := hdr + "." + key
	if idx >= 0 {
		name = fmt.Sprintf("%s[%d].%s", hdr, idx+1, key)
	}
	return &Error{File: l.path, Line: l.line(hdr, idx, key), Key: name, Msg: msg}
}

// errKey reports an undecoded key from toml.MetaData.
func (l *locator) errKey(k toml.Key, msg string) error {
	// k is like ["profile", "gpg_agent", "sockett"]; array indices are not
	// in it, so search the whole file for the first such line.
	if len(k) == 0 {
		return &Error{File: l.path, Msg: msg}
	}
	table := strings.Join(k[:len(k)-1], ".")
	keyRE := keyLineRE(k[len(k)-1])
	line, cur := 0, ""
	for n, text := range l.lines {
		if h, _, ok := header(text); ok {
			cur = h
			if cur == k.String() && line == 0 {
				line = n + 1
			}
			continue
		}
		if cur == table && keyRE.MatchString(text) {
			line = n + 1
			break
		}
	}
	name := k.String()
	if len(k) >= 2 && k[0] == "profile" && line > 0 {
		// Name the profile by its position, as every other error does.
		n := 0
		for _, text := range l.lines[:line] {
			if h, array, ok := header(text); ok && array && h == "profile" {
				n++
			}
		}
		name = fmt.Sprintf("profile[%d].%s", n, strings.Join(k[1:], "."))
	}
	return &Error{File: l.path, Line: line, Key: name, Msg: msg}
}

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

// line returns the 1-based line of key inside the table header (the idx-th
// [[header]] for arrays, idx < 0 for plain tables), or of the header itself
// when the key is not written, or 0 when the header is absent too.
func (l *locator) line(header string, idx int, key string) int {
	table, leaf := header, key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, leaf = header+"."+key[:i], key[i+1:]
	}
	cur, count, headerLine, inTable := "", -1, 0, header == ""
	keyRE := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(leaf) + `"?\s*=`)
	for n, text := range l.lines {
		if m := headerRE().FindStringSubmatch(text); m != nil {
			cur = strings.ReplaceAll(m[1], " ", "")
			if cur == header && strings.HasPrefix(strings.TrimSpace(text), "[[") {
				count++
			}
			inTable = cur == table && (idx < 0 || count == idx)
			if inTable && cur == header && headerLine == 0 {
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

func (l *locator) err(header string, idx int, key, msg string) error {
	name := header + "." + key
	if idx >= 0 {
		name = fmt.Sprintf("%s[%d].%s", header, idx+1, key)
	}
	return &Error{File: l.path, Line: l.line(header, idx, key), Key: name, Msg: msg}
}

// errKey reports an undecoded key from toml.MetaData.
func (l *locator) errKey(k toml.Key, msg string) error {
	// k is like ["profile", "gpg_agent", "sockett"]; array indices are not
	// in it, so search the whole file for the first such line.
	if len(k) == 0 {
		return &Error{File: l.path, Msg: msg}
	}
	header := strings.Join(k[:len(k)-1], ".")
	leaf := k[len(k)-1]
	line := 0
	keyRE := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(leaf) + `"?\s*=`)
	cur := ""
	for n, text := range l.lines {
		if m := headerRE().FindStringSubmatch(text); m != nil {
			cur = strings.ReplaceAll(m[1], " ", "")
			if cur == k.String() && line == 0 {
				line = n + 1
			}
			continue
		}
		if cur == header && keyRE.MatchString(text) {
			line = n + 1
			break
		}
	}
	name := k.String()
	if len(k) >= 2 && k[0] == "profile" && line > 0 {
		// Name the profile by its position, as every other error does.
		n := 0
		for _, text := range l.lines[:line] {
			if m := headerRE().FindStringSubmatch(text); m != nil && strings.ReplaceAll(m[1], " ", "") == "profile" &&
				strings.HasPrefix(strings.TrimSpace(text), "[[") {
				n++
			}
		}
		name = fmt.Sprintf("profile[%d].%s", n, strings.Join(k[1:], "."))
	}
	return &Error{File: l.path, Line: line, Key: name, Msg: msg}
}

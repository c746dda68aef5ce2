package backend

import (
	"bytes"
	"fmt"
)

// ReadPassphrase reads a passphrase or PIN file: its first line, without the
// newline. The file must not be open to group or others.
func ReadPassphrase(path string) ([]byte, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, err
	}
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	line := data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line = data[:i]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	out := bytes.Clone(line)
	clear(data)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return out, nil
}

package policy

import (
	"bufio"
	"bytes"
	"hash/crc32"
)

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

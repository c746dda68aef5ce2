package tpm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The key blob file (key_blob) holds what the TPM needs to load the signing
// key again, and what signstar needs to explain a refusal. It is text, one
// field per line, in this order:
//
//	signstar-tpm-key 1
//	parent HEX    the TPM name of the parent key (the storage root key)
//	public HEX    the key's TPMT_PUBLIC (the contents of TPM2B_PUBLIC)
//	private HEX   the key's TPM2B_PRIVATE buffer, encrypted by the parent
//	pcr N HEX     zero or more: a PCR the key is bound to and the SHA-256
//	              bank's value it had at setup, ascending by N
//
// The file is outside input: anyone who can write it can hand signstar any
// bytes. ParseBlob accepts exactly that shape (lower-case hex, "\n" line
// ends, no blank or extra lines, bounded sizes); the TPM checks the
// integrity of public and private itself, and Open checks that the PCR
// values give the key's policy, so an edited file is refused, never used.
const blobMagic = "signstar-tpm-key 1"

// Bounds on the fields: a TPMT_PUBLIC of RSA-3072 is about 410 bytes, a
// private blob of any key under 400.
const (
	maxBlobFile   = 8 << 10
	maxPublicLen  = 1024
	maxPrivateLen = 1024
	nameLen       = 34 // TPM_ALG_SHA256 and a SHA-256 digest
	maxPCR        = 23
)

// PCRValue is one PCR a key is bound to and its SHA-256 value at setup.
type PCRValue struct {
	Index  int
	Digest [32]byte
}

// Blob is a parsed key blob file.
type Blob struct {
	Parent  []byte // TPM name of the parent
	Public  []byte // TPMT_PUBLIC
	Private []byte // TPM2B_PRIVATE's buffer
	PCRs    []PCRValue
}

// Indices lists the bound PCRs.
func (b *Blob) Indices() []int {
	out := make([]int, len(b.PCRs))
	for i, p := range b.PCRs {
		out[i] = p.Index
	}
	return out
}

// Marshal writes b in the file format.
func (b *Blob) Marshal() []byte {
	var w bytes.Buffer
	w.WriteString(blobMagic + "\n")
	fmt.Fprintf(&w, "parent %x\npublic %x\nprivate %x\n", b.Parent, b.Public, b.Private)
	for _, p := range b.PCRs {
		fmt.Fprintf(&w, "pcr %d %x\n", p.Index, p.Digest)
	}
	return w.Bytes()
}

// ParseBlob reads a key blob file. Its errors say what is wrong without
// quoting the file.
func ParseBlob(data []byte) (*Blob, error) {
	if len(data) > maxBlobFile {
		return nil, fmt.Errorf("larger than %d bytes: not a signstar TPM key blob", maxBlobFile)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, errors.New("not a signstar TPM key blob (it must end with a newline)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if lines[0] != blobMagic {
		return nil, fmt.Errorf("line 1: not a signstar TPM key blob (want %q)", blobMagic)
	}
	if len(lines) < 4 {
		return nil, errors.New("truncated: parent, public and private are required")
	}
	var b Blob
	var err error
	if b.Parent, err = hexField(lines[1], 2, "parent", nameLen, nameLen); err != nil {
		return nil, err
	}
	if b.Parent[0] != 0x00 || b.Parent[1] != 0x0b {
		return nil, errors.New("line 2: parent is not a SHA-256 TPM name")
	}
	if b.Public, err = hexField(lines[2], 3, "public", 1, maxPublicLen); err != nil {
		return nil, err
	}
	if b.Private, err = hexField(lines[3], 4, "private", 1, maxPrivateLen); err != nil {
		return nil, err
	}
	for i, l := range lines[4:] {
		n := i + 5
		rest, ok := strings.CutPrefix(l, "pcr ")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"pcr N HEX\"", n)
		}
		idx, val, ok := strings.Cut(rest, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: want \"pcr N HEX\"", n)
		}
		pcr, err := parsePCRIndex(idx)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if len(b.PCRs) > 0 && pcr <= b.PCRs[len(b.PCRs)-1].Index {
			return nil, fmt.Errorf("line %d: PCR %d out of order or repeated", n, pcr)
		}
		d, err := hexField("pcr "+val, n, "pcr", 32, 32)
		if err != nil {
			return nil, err
		}
		v := PCRValue{Index: pcr}
		copy(v.Digest[:], d)
		b.PCRs = append(b.PCRs, v)
	}
	return &b, nil
}

// parsePCRIndex reads a PCR number, 0 to 23, in its one decimal spelling.
func parsePCRIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxPCR || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("%q is not a PCR number (0 to %d)", s, maxPCR)
	}
	return n, nil
}

// hexField reads "name HEX" with min to max bytes of lower-case hex.
func hexField(line string, n int, name string, min, max int) ([]byte, error) {
	val, ok := strings.CutPrefix(line, name+" ")
	if !ok {
		return nil, fmt.Errorf("line %d: want %q", n, name+" HEX")
	}
	if len(val)%2 != 0 || len(val) < 2*min || len(val) > 2*max {
		return nil, fmt.Errorf("line %d: %s must be %d to %d bytes of hex", n, name, min, max)
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("line %d: %s is not lower-case hex", n, name)
		}
	}
	return hex.DecodeString(val)
}

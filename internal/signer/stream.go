// Package signer reads an artifact once, hashes it once, and turns the hash
// into a detached v4 OpenPGP signature packet that gpgv, sqv and pacman accept.
package signer

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/signstar/signstar/internal/digest"
)

// BufferSize is the read size. Large reads keep the hash loop busy and the
// syscall count low; 256 KiB stays far below the 32 MiB RSS budget.
const BufferSize = 256 << 10

// ErrTooLarge means the input passed the profile's max_size.
type ErrTooLarge struct{ Limit int64 }

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("input is larger than max_size (%d bytes)", e.Limit)
}

// Input is an artifact read to EOF: its size and the hash state over exactly
// its bytes, before any OpenPGP trailer.
type Input struct {
	Hash  crypto.Hash
	Size  int64
	state hash.Hash
}

// Digest is the hash of exactly the bytes read.
func (in *Input) Digest() []byte { return in.clone().Sum(nil) }

// DigestString is the digest as the audit log writes it: "sha256:HEX".
func (in *Input) DigestString() string {
	return digest.Name(in.Hash) + ":" + hex.EncodeToString(in.Digest())
}

// clone copies the hash state so the raw digest and the signature's digest
// come from the same single pass over the input.
func (in *Input) clone() hash.Hash {
	c, err := in.state.(hash.Cloner).Clone()
	if err != nil {
		// sha256 and sha512 always clone; anything else is a programming error.
		panic("signer: hash state cannot be cloned: " + err.Error())
	}
	return c.(hash.Hash)
}

// Resumed is an Input whose bytes were hashed elsewhere: state has hashed
// size bytes with h, and is finished here over the signature's trailer like
// a state of Read's (a client's SHA-512 state, see internal/archreq). state
// must be cloneable, as the standard library's are.
func Resumed(h crypto.Hash, state hash.Hash, size int64) (*Input, error) {
	if digest.Name(h) == "" {
		return nil, fmt.Errorf("unsupported hash %v", h)
	}
	if _, ok := state.(hash.Cloner); !ok || state.Size() != h.Size() || size < 0 {
		return nil, fmt.Errorf("not a resumable %v state", h)
	}
	return &Input{Hash: h, Size: size, state: state}, nil
}

func newHash(h crypto.Hash) (hash.Hash, error) {
	if digest.Name(h) == "" {
		return nil, fmt.Errorf("unsupported hash %v", h)
	}
	return h.New(), nil
}

// Partial reports a read that stopped early: how many bytes came through the
// hash before the error, and their digest, so that a failure can be audited
// with what was actually received.
type Partial struct {
	Input *Input
	Err   error
}

func (p *Partial) Error() string { return p.Err.Error() }
func (p *Partial) Unwrap() error { return p.Err }

// Read streams r to EOF through one hash pass. Every chunk is also given to
// observe (kind detection), which must not keep the slice. When limit > 0,
// reading stops as soon as more than limit bytes have arrived and the error
// wraps *ErrTooLarge. On error the returned error is a *Partial.
func Read(r io.Reader, h crypto.Hash, limit int64, observe func([]byte)) (*Input, error) {
	return ReadBuffer(r, h, limit, observe, make([]byte, BufferSize))
}

// ReadBuffer is Read through the caller's buffer, for a caller that reads
// many inputs in turn (the members of an archive).
func ReadBuffer(r io.Reader, h crypto.Hash, limit int64, observe func([]byte), buf []byte) (*Input, error) {
	state, err := newHash(h)
	if err != nil {
		return nil, err
	}
	in := &Input{Hash: h, state: state}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if limit > 0 && in.Size+int64(n) > limit {
				// Hash only what fits, so the audited digest is of bytes we
				// accepted plus nothing we refused to read further.
				keep := limit - in.Size
				state.Write(chunk[:keep])
				in.Size += keep
				return nil, &Partial{in, &ErrTooLarge{limit}}
			}
			state.Write(chunk)
			in.Size += int64(n)
			if observe != nil {
				observe(chunk)
			}
		}
		if err == io.EOF {
			return in, nil
		}
		if err != nil {
			return nil, &Partial{in, err}
		}
	}
}

// IsTooLarge reports whether err is a max_size refusal.
func IsTooLarge(err error) bool {
	var e *ErrTooLarge
	return errors.As(err, &e)
}

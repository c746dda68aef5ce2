package main

import (
	"testing"

	"github.com/signstar/signstar/internal/signer"
)

// The limit is only a fair one if it reads in chunks of the same size.
func TestBufferSizeIsSignersBufferSize(t *testing.T) {
	if bufferSize != signer.BufferSize {
		t.Fatalf("sha256pass reads %d bytes at a time, signer.Read %d: keep them equal", bufferSize, signer.BufferSize)
	}
}

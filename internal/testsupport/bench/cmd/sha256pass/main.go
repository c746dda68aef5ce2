// Command sha256pass is the limit signstar is measured against: one
// crypto/sha256 pass over stdin, read in chunks of the same size signstar
// reads, and the hex digest on stdout. Nothing else: no key, no sandbox, no
// audit record.
//
//	sha256pass < FILE
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// bufferSize is signer.BufferSize, copied rather than imported so that this
// program stays as small as a plain hashing tool (signer pulls in go-crypto).
const bufferSize = 256 << 10

func main() {
	h := sha256.New()
	// The same buffer size as signer.Read, so that the two differ only in
	// what signstar does besides hashing.
	buf := make([]byte, bufferSize)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{os.Stdin}, buf); err != nil {
		fmt.Fprintln(os.Stderr, "sha256pass:", err)
		os.Exit(1)
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
}

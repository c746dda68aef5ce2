package request

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// A client that stops sending gets a deadline error, not an endless wait;
// one that keeps sending is read to EOF whatever the total time.
func TestIdleReader(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r, err := newUploadReader(pr, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}

	go func() {
		for i := 0; i < 5; i++ {
			pw.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 5; i++ {
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("read %d of a slow but live upload: %v", i, err)
		}
	}
	start := time.Now()
	_, err = r.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled upload: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("deadline took %v", d)
	}
}

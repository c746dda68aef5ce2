package backend

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadFileFIFO: a FIFO put at a key, certificate or passphrase path is
// refused at once; the old open waited for a writer for ever.
func TestReadFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "repo.key.asc")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("ReadFile(FIFO) = %v, want not a regular file", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a measurement
		t.Fatal("ReadFile blocked on a FIFO")
	}
}

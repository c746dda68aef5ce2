package audit

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notBlocking runs open and fails the test if it has not returned within a
// minute: the old code blocked in open(2) on a FIFO for ever, so this
// guards a hang, it measures nothing.
func notBlocking(t *testing.T, open func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- open() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the open blocked on a FIFO")
		return nil
	}
}

// TestOpenFIFO: a FIFO put at the log's or the index's path is refused, and
// the open does not wait for a peer on the other end.
func TestOpenFIFO(t *testing.T) {
	for _, at := range []string{"log", "index"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.jsonl")
			fifo := path
			if at == "index" {
				l, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
				fifo = IndexPath(path)
				if err := syscall.Unlink(fifo); err != nil {
					t.Fatal(err)
				}
			}
			if err := syscall.Mkfifo(fifo, 0o660); err != nil {
				t.Fatal(err)
			}
			err := notBlocking(t, func() error {
				l, err := Open(path)
				if err == nil {
					l.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "audit") {
				t.Fatalf("Open with a FIFO at the %s: %v, want a refusal", at, err)
			}
		})
	}
}

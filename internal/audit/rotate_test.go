package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRotateWithSigners: appenders (each a Log of its own, as a request
// process is) run while the log is rotated twice; no record is lost or in
// the wrong file: the files in order verify as one log holding every
// append, seq and prev and the tree continuing across the seams; the
// newest file verifies alone from its tree file; the index keeps working.
func TestRotateWithSigners(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5)
	l.Close()
	var appended atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l, err := Open(path)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // an upload
				err = l.Append(record(i))
				l.Close()
				if err != nil {
					t.Error(err)
					return
				}
				appended.Add(1)
			}
		}()
	}
	var archives []string
	for r := 0; r < 2; r++ {
		time.Sleep(50 * time.Millisecond)
		res, err := Rotate(path, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, res.Archive)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	files := append(archives, path)
	res, err := VerifyLogs(files, TreeCheck{})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(5 + appended.Load()); res.Records != want {
		t.Fatalf("%d records in %v, want %d", res.Records, files, want)
	}
	// Each file starts where the one before ended.
	for i, a := range archives {
		if !strings.HasPrefix(filepath.Base(a), "audit.jsonl.") {
			t.Fatalf("archive %d: %s", i, a)
		}
	}
	alone, err := VerifyLogs([]string{path}, TreeCheck{})
	if err != nil || alone.Records != res.Records || alone.Root != res.Root {
		t.Fatalf("the newest file alone: %+v, %v; all: %+v", alone, err, res)
	}
	// The log goes on: index, tree and rate reads.
	l, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(record(99)); err != nil {
		t.Fatal(err)
	}
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	if e, ok := tx.LastEntry(); !ok || e.Seq != res.Records+1 {
		t.Fatalf("last entry %+v", e)
	}
	if e, err := tx.Entry(3); err != nil || e.Seq != 3 {
		t.Fatalf("entry 3 from before the rotations: %+v, %v", e, err)
	}
	if tx.TreeSize() != int64(res.Records+1) {
		t.Fatalf("tree of %d", tx.TreeSize())
	}
	if _, err := tx.RecordLine(2); err == nil || !strings.Contains(err.Error(), "rotated away") {
		t.Fatalf("record 2 after rotation: %v", err)
	}
	if _, err := tx.RecordLine(res.Records + 1); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	// Rebuild of the rotated file: the side files agree; damaged ones are
	// made again, their part before the file taken from them.
	if rb, err := Rebuild(path, time.Second); err != nil || rb.Replaced || rb.TreeReplaced || rb.Appended != 0 {
		t.Fatalf("rebuild: %+v, %v", rb, err)
	}
	idx, tree := mustRead(t, IndexPath(path)), mustRead(t, TreePath(path))
	flip(t, IndexPath(path), -1)
	flip(t, TreePath(path), -1)
	if _, err := l.Lock(); err == nil {
		t.Fatal("a damaged index locked")
	}
	if rb, err := Rebuild(path, time.Second); err != nil || !rb.Replaced || !rb.TreeReplaced {
		t.Fatalf("rebuild: %+v, %v", rb, err)
	}
	if !bytes.Equal(mustRead(t, IndexPath(path)), idx) || !bytes.Equal(mustRead(t, TreePath(path)), tree) {
		t.Fatal("rebuilt side files differ")
	}
}

// TestRotateRefusals: an empty log, a marker left behind.
func TestRotateRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Rotate(path, time.Second); err == nil || !strings.Contains(err.Error(), "nothing to rotate") {
		t.Fatalf("empty: %v", err)
	}
	os.WriteFile(RotatingPath(path), nil, 0o600)
	if _, err := Rotate(path, time.Second); err == nil || !strings.Contains(err.Error(), "another rotation runs") {
		t.Fatalf("marker: %v", err)
	}
	os.Remove(RotatingPath(path))
	// A request holding the log keeps the rotation out.
	l, _ = Open(path)
	l.Append(record(1))
	if _, err := Rotate(path, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "requests still have the log open") {
		t.Fatalf("held: %v", err)
	}
	l.Close()
	if _, err := Rotate(path, time.Second); err != nil {
		t.Fatal(err)
	}
	_ = fmt.Sprint()
}

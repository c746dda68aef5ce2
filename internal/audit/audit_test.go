package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func record(i int) *Record {
	return &Record{
		Time:    "2026-11-21T10:00:00.000000Z",
		User:    "signer",
		Command: "sign",
		Profile: "repo",
		Outcome: Refused,
		Reason:  fmt.Sprintf("test %d", i),
		Sandbox: "none",
	}
}

func TestAppendVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 5; i++ {
		if err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("new log has mode %o", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	n, err := Verify(bytes.NewReader(data))
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if !strings.Contains(lines[0], `"prev":"`+ZeroHash+`"`) || !strings.Contains(lines[4], `"seq":5,`) {
		t.Errorf("unexpected lines:\n%s", data)
	}

	// Scan goes newest to oldest and stops when asked.
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	tx.Scan(func(r *Record) bool { seen = append(seen, r.Seq); return len(seen) < 3 })
	tx.Unlock()
	if fmt.Sprint(seen) != "[5 4 3]" {
		t.Errorf("Scan saw %v", seen)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	good, err := os.ReadFile("testdata/real.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(bytes.NewReader(good)); err != nil || n != 5 {
		t.Fatalf("real log: %d, %v", n, err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(good), "\n"), "\n")
	lines[len(lines)-1] += "\n"
	join := func(l []string) []byte { return []byte(strings.Join(l, "")) }
	edit := func(i int, old, new string) []byte {
		l := append([]string(nil), lines...)
		if !strings.Contains(l[i], old) {
			t.Fatalf("line %d has no %q", i+1, old)
		}
		l[i] = strings.Replace(l[i], old, new, 1)
		return join(l)
	}
	type tamperCase struct {
		name string
		data []byte
		line int
	}
	cases := []tamperCase{
		{"edited user", edit(1, `"user":"root"`, `"user":"toor"`), 3},
		{"edited last, not canonical", edit(4, `"seq":5,`, `"seq":5 ,`), 5},
		{"removed first", join(lines[1:]), 1},
		{"removed middle", join(append(append([]string(nil), lines[:2]...), lines[3:]...)), 3},
		{"swapped", join([]string{lines[0], lines[2], lines[1], lines[3], lines[4]}), 2},
		{"truncated", good[:len(good)-10], 5},
		{"extra field", edit(2, `"prev":`, `"x":1,"prev":`), 3},
	}
	// The last line has no successor to catch an edit through prev; a
	// signed record's own signature still ties its key and time.
	four := lines[:4]
	editLast := func(old, new string) []byte {
		l := append([]string(nil), four...)
		if !strings.Contains(l[3], old) {
			t.Fatalf("line 4 has no %q", old)
		}
		l[3] = strings.Replace(l[3], old, new, 1)
		return join(l)
	}
	if n, err := Verify(bytes.NewReader(join(four))); err != nil || n != 4 {
		t.Fatalf("first four lines: %d, %v", n, err)
	}
	cases = append(cases,
		tamperCase{"last line's time moved", editLast(`"time":"2026-11-22T00:00:13.`, `"time":"2026-11-22T00:00:12.`), 4},
		tamperCase{"last line's key swapped", editLast(`"key":"A8202021F7A037DCC9CD520F421FF53DA0E1CB1F"`, `"key":"E155B5A1C0ACB420B59579B5AA0DD657A131FD30"`), 4},
		tamperCase{"last line's digest algorithm", editLast(`"digest":"sha512:`, `"digest":"sha256:`), 4},
	)
	for _, c := range cases {
		_, err := Verify(bytes.NewReader(c.data))
		var ve *VerifyError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Verify = %v, want a VerifyError", c.name, err)
			continue
		}
		if ve.Line != c.line {
			t.Errorf("%s: failed at line %d (%s), want %d", c.name, ve.Line, ve.Msg, c.line)
		}
	}
}

// TestConcurrentAppends: 32 writers with their own descriptors, as 32
// signstar processes would have; nothing interleaves or is lost.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			errs <- l.Append(record(i))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.Open(path)
	defer f.Close()
	if n, err := Verify(f); err != nil || n != 32 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestPartialLineRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte(`{"seq":1,"time":"x"`))
	f.Close()
	if err := l.Append(record(1)); err == nil || !strings.Contains(err.Error(), "partial line") {
		t.Fatalf("Append on a partial line: %v", err)
	}
}

func TestOpenRefusesNonRegular(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil {
		t.Fatal("opened a directory as the log")
	}
	dir := t.TempDir()
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	if _, err := Open(filepath.Join(dir, "link")); err == nil {
		t.Fatal("followed a symlink")
	}
}

// FuzzVerify: any bytes give a count or a VerifyError; never a panic, and
// an accepted log re-verifies line by line.
func FuzzVerify(f *testing.F) {
	good, err := os.ReadFile("testdata/real.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("{}\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data))
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Line < 1 {
				t.Fatalf("error %v", err)
			}
			return
		}
		if n != bytes.Count(data, []byte("\n")) {
			t.Fatalf("counted %d records in %d lines", n, bytes.Count(data, []byte("\n")))
		}
	})
}

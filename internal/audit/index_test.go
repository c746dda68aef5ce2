package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r := record(i)
		if i%3 == 0 {
			r.Outcome, r.Reason, r.Client = Failed, "x", "192.0.2.1"
		}
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

// rebuilt is the index Rebuild derives from the log, for comparison.
func rebuilt(t *testing.T, logPath string) []byte {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "copy.jsonl")
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(p, time.Second); err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(IndexPath(p))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestIndexKeptWithLog: every append adds one entry; the index is what a
// rebuild from the log gives, and the pointers chain signed and other
// records.
func TestIndexKeptWithLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 7)
	idx, err := os.ReadFile(IndexPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 8*EntrySize {
		t.Fatalf("index of %d bytes, want %d", len(idx), 8*EntrySize)
	}
	if !bytes.Equal(idx, rebuilt(t, path)) {
		t.Error("the index kept with the log differs from the one rebuilt from it")
	}
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	last, ok := tx.LastEntry()
	if !ok || last.Seq != 7 || last.Outcome != Failed || last.Client != ClientID("192.0.2.1") || last.Profile != ProfileID("repo") {
		t.Fatalf("last entry %+v", last)
	}
	// 1, 4, 7 failed; the others refused: none signed.
	if last.PrevNonSigned != 6 || last.PrevSigned != 0 {
		t.Errorf("last entry's pointers: %+v", last)
	}
	e, err := tx.Entry(4)
	if err != nil || e.Seq != 4 || e.Outcome != Failed || e.PrevNonSigned != 3 {
		t.Errorf("entry 4: %+v, %v", e, err)
	}
}

func TestClientIDByPrefix(t *testing.T) {
	if ClientID("2001:db8:1:2::1") != ClientID("2001:db8:1:2:ffff::9") {
		t.Error("two addresses of one IPv6 /64 have different IDs")
	}
	if ClientID("2001:db8:1:2::1") == ClientID("2001:db8:1:3::1") {
		t.Error("two IPv6 /64s have one ID")
	}
	if ClientID("192.0.2.1") == ClientID("192.0.2.2") || ClientID("") != (ID{}) {
		t.Error("IPv4 addresses or the local client")
	}
}

// TestIndexCatchUp: an index that lost its last entries (a process killed
// between the two writes, a crash before write-back) is caught up from the
// log at the next lock.
func TestIndexCatchUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 5)
	want, _ := os.ReadFile(IndexPath(path))
	for _, keep := range []int{3, 0} {
		if err := os.Truncate(IndexPath(path), int64(keep+1)*EntrySize); err != nil {
			t.Fatal(err)
		}
		tx, err := l.Lock()
		if err != nil {
			t.Fatalf("lock with %d of 5 entries: %v", keep, err)
		}
		tx.Unlock()
		if got, _ := os.ReadFile(IndexPath(path)); !bytes.Equal(got, want) {
			t.Errorf("caught up from %d entries: the index differs", keep)
		}
	}
	// Further behind than maxCatchUp: refused, naming the command.
	saved := maxCatchUp
	maxCatchUp = 2
	defer func() { maxCatchUp = saved }()
	os.Truncate(IndexPath(path), 2*EntrySize)
	if err := l.Append(record(9)); !isIndexErr(err, "is 4 records behind the log") {
		t.Errorf("append 4 records behind: %v", err)
	}
}

func isIndexErr(err error, text string) bool {
	var ie *IndexError
	return errors.As(err, &ie) && strings.Contains(err.Error(), text) && strings.Contains(err.Error(), "run 'signstar audit rebuild' as root")
}

// TestIndexDisagrees: an index that is missing, torn, ahead of the log,
// damaged or names another line stops every append, and Rebuild repairs it.
func TestIndexDisagrees(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		damage     func(t *testing.T, path, idx string)
	}{
		{"missing", "is missing", func(t *testing.T, path, idx string) { os.Remove(idx) }},
		{"partial entry", "ends in a partial entry", func(t *testing.T, path, idx string) {
			f, _ := os.OpenFile(idx, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 10))
			f.Close()
		}},
		{"ahead of the log", "has 4 entries, the log 3 records", func(t *testing.T, path, idx string) {
			data, _ := os.ReadFile(path)
			lines := bytes.SplitAfter(data, []byte("\n"))
			os.WriteFile(path, bytes.Join(lines[:3], nil), 0o640)
		}},
		{"damaged entry", "entry 4 is damaged", func(t *testing.T, path, idx string) {
			data, _ := os.ReadFile(idx)
			data[4*EntrySize+9] ^= 1
			os.WriteFile(idx, data, 0o640)
		}},
		{"another line", "does not agree with the log's last record 4", func(t *testing.T, path, idx string) {
			// The log's last line replaced by another record of the same
			// length: the index still names the old one.
			data, _ := os.ReadFile(path)
			os.WriteFile(path, bytes.Replace(data, []byte(`"test 4"`), []byte(`"test X"`), 1), 0o640)
		}},
		{"not an index", "has no valid header", func(t *testing.T, path, idx string) {
			os.WriteFile(idx, bytes.Repeat([]byte("x"), 5*EntrySize), 0o640)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 4; i++ {
				if err := l.Append(record(i)); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			tc.damage(t, path, IndexPath(path))
			l, err = Open(path)
			if err == nil {
				err = l.Append(record(5))
				l.Close()
			}
			if !isIndexErr(err, tc.want) {
				t.Fatalf("append: %v, want an IndexError with %q", err, tc.want)
			}
			res, err := Rebuild(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rebuild: %+v", res)
			l, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Append(record(5)); err != nil {
				t.Fatalf("append after rebuild: %v", err)
			}
		})
	}
}

// TestRebuild: on an index that agrees as far as it goes, Rebuild only
// appends (an append-only index allows that); on one that disagrees it
// writes a new file with the log's mode; a log that does not verify is not
// indexed.
func TestRebuild(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 6)
	l.Close()
	want, _ := os.ReadFile(IndexPath(path))
	if res, err := Rebuild(path, time.Second); err != nil || res.Records != 6 || res.Appended != 0 || res.Replaced {
		t.Errorf("rebuild of a good index: %+v, %v", res, err)
	}
	os.Truncate(IndexPath(path), 3*EntrySize)
	if res, err := Rebuild(path, time.Second); err != nil || res.Appended != 4 || res.Replaced {
		t.Errorf("rebuild of a short index: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(IndexPath(path)); !bytes.Equal(got, want) {
		t.Error("appended index differs")
	}
	os.Chmod(path, 0o660)
	os.WriteFile(IndexPath(path), []byte("junk"), 0o600)
	if res, err := Rebuild(path, time.Second); err != nil || !res.Replaced {
		t.Errorf("rebuild of junk: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(IndexPath(path)); !bytes.Equal(got, want) {
		t.Error("rewritten index differs")
	}
	if fi, _ := os.Stat(IndexPath(path)); fi.Mode().Perm() != 0o660 {
		t.Errorf("rewritten index has mode %o, want the log's 0660", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 { // the log, its index and its tree
		t.Errorf("rebuild left files behind: %v", ents)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"seq":2,`), []byte(`"seq":9,`), 1), 0o660)
	if _, err := Rebuild(path, time.Second); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("rebuild of a broken log: %v", err)
	}
}

// TestEntryRoundTrip: marshal and unmarshal agree, and a flipped bit is
// caught by the checksum.
func TestEntryRoundTrip(t *testing.T) {
	e := Entry{Seq: 9, Time: 1e15, End: 4096, Profile: ProfileID("p"), Client: ClientID("192.0.2.1"),
		Outcome: Signed, PrevSigned: 3, PrevNonSigned: 8}
	e.LineHash[0], e.Digest[7] = 0xaa, 0x55
	b := e.marshal()
	got, err := unmarshalEntry(b)
	if err != nil || got != e {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := unmarshalEntry(c); err == nil {
			t.Fatalf("flipped byte %d not caught", i)
		}
	}
}

// FuzzIndex: any bytes as the index of a good five-record log give an
// IndexError or an index that agrees, never a panic; what Lock accepts can
// be walked entry by entry.
func FuzzIndex(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		f.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		r := record(i)
		if i%2 == 0 {
			r.Outcome, r.Client = Failed, "2001:db8::1"
		}
		if i == 5 {
			r.Outcome, r.Voter, r.Digest = Vote, "builder", "sha256:"+strings.Repeat("ab", 32)
		}
		if err := l.Append(r); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	good, err := os.ReadFile(IndexPath(path))
	if err != nil {
		f.Fatal(err)
	}
	logData, _ := os.ReadFile(path)
	f.Add(good)
	f.Add(good[:3*EntrySize])
	f.Add(good[:EntrySize])
	f.Add(append(bytes.Clone(good), good[EntrySize:2*EntrySize]...))
	f.Fuzz(func(t *testing.T, idx []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "audit.jsonl")
		if err := os.WriteFile(p, logData, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(IndexPath(p), idx, 0o640); err != nil {
			t.Fatal(err)
		}
		l, err := Open(p)
		if err != nil {
			var ie *IndexError
			if !errors.As(err, &ie) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		defer l.Close()
		tx, err := l.Lock()
		if err != nil {
			return
		}
		defer tx.Unlock()
		last, ok := tx.LastEntry()
		if !ok || last.Seq != 5 {
			t.Fatalf("accepted index ends at %+v", last)
		}
		for s := uint64(1); s <= 5; s++ {
			tx.Entry(s)
		}
	})
}

// TestHeads: with records of many profiles in any order, the newest block
// names every profile's newest signature, and each entry's PrevSignedSame
// is its profile's signature before it, as a scan of the whole log says;
// with more profiles than the newest HeadsWindow entries can name, the index
// says it cannot, and stays so.
func TestHeads(t *testing.T) {
	for _, tc := range []struct {
		profiles, records int
		complete          bool
	}{{1, 300, true}, {7, 1000, true}, {200, 1500, true}, {600, 2400, false}} {
		t.Run(fmt.Sprint(tc.profiles, "profiles"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			tx, err := l.Lock()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Unlock()
			rng := uint64(12345)
			next := func(n int) int {
				rng = rng*6364136223846793005 + 1442695040888963407
				return int(rng>>33) % n
			}
			newest := map[string]uint64{}
			for i := 1; i <= tc.records; i++ {
				// Profile 0 signs once, at the start: its head must be
				// carried through all that follows.
				p := next(tc.profiles)
				if i == 1 {
					p = 0
				} else if p == 0 && tc.profiles > 1 {
					p = 1
				}
				name := fmt.Sprintf("p%d", p)
				r := record(i)
				r.Profile = name
				if i == 1 || next(3) == 0 {
					r.Outcome, r.Reason = Signed, ""
				}
				if err := tx.Append(r); err != nil {
					t.Fatal(err)
				}
				e, _ := tx.LastEntry()
				if e.HeadsComplete && e.PrevSignedSame != newest[name] {
					t.Fatalf("record %d (%s): PrevSignedSame %d, want %d", i, name, e.PrevSignedSame, newest[name])
				}
				if r.Outcome == Signed {
					newest[name] = uint64(i)
				}
			}
			for p := 0; p < tc.profiles+1; p++ {
				name := fmt.Sprintf("p%d", p)
				seq, ok, err := tx.LatestSigned(ProfileID(name))
				if err != nil {
					t.Fatal(err)
				}
				if ok != tc.complete {
					t.Fatalf("LatestSigned ok %v, want %v", ok, tc.complete)
				}
				if ok && seq != newest[name] {
					t.Errorf("%s: newest signature %d, want %d", name, seq, newest[name])
				}
			}
			// The same index again, caught up from the log alone.
			want := mustRead(t, IndexPath(path))
			tx.Unlock()
			saved := maxCatchUp
			maxCatchUp = 1 << 20
			defer func() { maxCatchUp = saved }()
			if err := os.Truncate(IndexPath(path), EntrySize); err != nil {
				t.Fatal(err)
			}
			tx2, err := l.Lock()
			if err != nil {
				t.Fatal(err)
			}
			tx2.Unlock()
			if !bytes.Equal(mustRead(t, IndexPath(path)), want) {
				t.Error("the index caught up from the log differs")
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppendAll: a batch is the records one Append each would have
// written, chained, verified and indexed alike, and a lock taken after it
// agrees with the index.
func TestAppendAll(t *testing.T) {
	dir := t.TempDir()
	one, all := filepath.Join(dir, "one.jsonl"), filepath.Join(dir, "all.jsonl")
	l1, err := Open(one)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := Open(all)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	batch := func() []*Record {
		var recs []*Record
		for i := 0; i < 300; i++ {
			r := record(i)
			r.Name = fmt.Sprintf("pkg-%d.pkg.tar.zst", i)
			r.Profile = fmt.Sprintf("p%d", i%3)
			if i%5 == 0 {
				r.Outcome, r.Client = Failed, "192.0.2.1"
			}
			recs = append(recs, r)
		}
		return recs
	}
	appendN(t, l1, 2)
	appendN(t, l2, 2)
	for _, r := range batch() {
		if err := l1.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := l2.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendAll(batch()); err != nil {
		t.Fatal(err)
	}
	last, _ := tx.LastEntry()
	if last.Seq != 302 {
		t.Errorf("last entry %d", last.Seq)
	}
	if err := tx.Append(record(99)); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	if err := l1.Append(record(99)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{one, all} {
		data := mustRead(t, p)
		if n, err := Verify(bytes.NewReader(data)); err != nil || n != 303 {
			t.Fatalf("%s: Verify = %d, %v", p, n, err)
		}
		if !bytes.Equal(mustRead(t, IndexPath(p)), rebuilt(t, p)) {
			t.Errorf("%s: the index differs from the one rebuilt from the log", p)
		}
	}
	if !bytes.Equal(mustRead(t, one), mustRead(t, all)) || !bytes.Equal(mustRead(t, IndexPath(one)), mustRead(t, IndexPath(all))) ||
		!bytes.Equal(mustRead(t, TreePath(one)), mustRead(t, TreePath(all))) {
		t.Error("AppendAll wrote other bytes than one Append per record")
	}
	if !bytes.Equal(mustRead(t, TreePath(all)), rebuiltTree(t, all)) {
		t.Error("the tree differs from the one rebuilt from the log")
	}
	tx, err = l2.Lock()
	if err != nil {
		t.Fatalf("lock after the batch: %v", err)
	}
	tx.Unlock()
}

package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/rsyslogtest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// TestSyslogRsyslog: every record, signed or refused, reaches a real
// rsyslogd on the enclave's syslog socket byte for byte, from a signstar
// run by sshd and locked down (enforce: landlock, seccomp). Then rsyslogd
// is killed while signers run: with syslog_required no signature leaves
// without its record having reached the socket, every request after the
// kill fails (exit 1, stdout empty), and the local log holds every record
// and verifies.
func TestSyslogRsyslog(t *testing.T) {
	e := newEnclave(t, enclaveOptions{
		deployment: sshtest.ForceCommand,
		audit:      "syslog = \"{DIR}/syslog\"\nsyslog_required = true\n",
	})
	d := rsyslogtest.Start(t, e.dir, "")

	// Signed, refused by the grammar, refused by --expect, and a command
	// string that JSON must escape.
	data := randomBytes(t, 4096)
	for _, c := range []struct {
		remote []string
		exit   int
	}{
		{[]string{"sign"}, 0},
		{[]string{"rm", "-rf", "/"}, 2},
		{[]string{"sign", "--expect", "sha256:" + strings.Repeat("0", 64)}, 2},
		{[]string{"sign", "--armor"}, 0},
		{[]string{`"quoted"\back`, "é"}, 2},
	} {
		r := e.ssh(t, "client", data, nil, c.remote...)
		if r.ExitCode != c.exit || (c.exit == 0) != (len(r.Stdout) > 0) {
			t.Fatalf("%q: exit %d, %d bytes out, stderr %q", c.remote, r.ExitCode, len(r.Stdout), r.Stderr)
		}
		if c.exit == 0 {
			e.verifySig(t, data, r.Stdout)
		}
	}
	got := d.Lines(t, 5)
	want := logLines(t, e.log)
	if len(got) != 5 || len(want) != 5 {
		t.Fatalf("rsyslog has %d messages, the log %d lines, want 5", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("record %d: rsyslog wrote\n%q\nthe log holds\n%q", i+1, got[i], want[i])
		}
	}

	// Signers in parallel; rsyslogd dies once the first of them has its
	// signature.
	const signers, each = 4, 3
	type result struct {
		r   *sshtest.Result
		err error
	}
	results := make(chan result, signers*each)
	first := make(chan struct{}, signers*each)
	var wg sync.WaitGroup
	for i := 0; i < signers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				r, err := e.Run(ctx, bytes.NewReader(data), "client", nil, "sign")
				cancel()
				results <- result{r, err}
				if err == nil && r.ExitCode == 0 {
					first <- struct{}{}
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	select {
	case <-first:
	case <-allDone:
	}
	d.Kill()
	<-allDone
	close(results)
	signed, failed := 0, 0
	for res := range results {
		if res.err != nil {
			t.Fatalf("ssh: %v", res.err)
		}
		switch r := res.r; {
		case r.ExitCode == 0 && len(r.Stdout) > 0:
			e.verifySig(t, data, r.Stdout)
			signed++
		case r.ExitCode == 1 && len(r.Stdout) == 0 && bytes.Contains(r.Stderr, []byte("syslog")):
			failed++
		default:
			t.Errorf("exit %d, %d bytes out, stderr %q", r.ExitCode, len(r.Stdout), r.Stderr)
		}
	}
	// After the kill nothing signs: the socket is still there, nobody
	// reads it, and the connect is refused before stdin is read.
	r := e.ssh(t, "client", data, nil, "sign")
	if r.ExitCode != 1 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), "syslog_required is set and the syslog socket "+d.Socket+" does not answer") {
		t.Fatalf("after the kill: exit %d, %d bytes out, stderr %q", r.ExitCode, len(r.Stdout), r.Stderr)
	}
	failed++
	if signed == 0 || failed == 0 {
		t.Errorf("%d signed, %d failed: the kill came too late or too early", signed, failed)
	}

	// The local log: one record per request, and one more for each
	// signature discarded because its record did not reach the socket.
	recs := e.records(t)
	var newSigned, newFailed, discarded int
	for i, rec := range recs[5:] {
		switch {
		case rec.Outcome == audit.Signed:
			newSigned++
		case rec.Outcome == audit.Failed && strings.Contains(rec.Reason, "could not be sent to the syslog socket"):
			discarded++
			if prev := recs[5+i-1]; prev.Outcome != audit.Signed || !strings.Contains(rec.Reason, "record "+strconv.FormatUint(prev.Seq, 10)+" is in the audit log") {
				t.Errorf("record %d (%s) follows record %d (%s)", rec.Seq, rec.Reason, prev.Seq, prev.Outcome)
			}
		case rec.Outcome == audit.Failed && strings.Contains(rec.Reason, "does not answer"):
			newFailed++
		default:
			t.Errorf("record %d: %s %s", rec.Seq, rec.Outcome, rec.Reason)
		}
	}
	if newSigned != signed+discarded || newFailed+discarded != failed {
		t.Errorf("records: %d signed, %d discarded, %d failed; requests: %d signed, %d failed", newSigned, discarded, newFailed, signed, failed)
	}
	e.verifyLog(t, len(recs))
	// What rsyslogd wrote before it died is the log's beginning, in order
	// (a datagram it had taken but not written when killed is lost with
	// it: README, "Off the host").
	got = d.Lines(t, 0)
	want = logLines(t, e.log)
	if len(got) < 5 || len(got) > len(want) {
		t.Fatalf("rsyslog wrote %d messages of %d records", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d is not record %d:\n%q\n%q", i+1, i+1, got[i], want[i])
		}
	}
	// The copy is a log audit verify checks like the original.
	copyPath := filepath.Join(t.TempDir(), "copy.jsonl")
	if err := os.WriteFile(copyPath, append(bytes.Join(got, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(e.bin, "audit", "verify", copyPath).CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "ok: "+strconv.Itoa(len(got))+" records\n") {
		t.Errorf("audit verify of rsyslog's copy: %v, %s", err, out)
	}
	t.Logf("%d signed, %d discarded, %d refused after the kill; rsyslog got %d of %d records", signed, discarded, newFailed, len(got), len(want))
}

// logLines are the audit log's lines, without their newlines.
func logLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

// TestSyslogForwardSnippet runs the README's two rsyslog files: records
// sent to the signing host's rsyslogd while the log host is down wait in
// the disk-assisted queue, and reach the log host's file, once it is up,
// as the log's lines byte for byte (one longer than rsyslog's default
// message size among them).
func TestSyslogForwardSnippet(t *testing.T) {
	sender, receiver := readmeBlock(t, "# /etc/rsyslog.d/60-signstar.conf"), readmeBlock(t, "# /etc/rsyslog.d/60-signstar-receiver.conf")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "enclave.jsonl")
	sender = mustReplace(t, sender, `target="logs.example.org" port="514"`, `target="127.0.0.1" port="`+port+`"`)
	// The retry comes after a second, not ten: the same queue, a shorter test.
	sender = mustReplace(t, sender, `action.resumeInterval="10"`, `action.resumeInterval="1"`)
	receiver = mustReplace(t, receiver, `port="514"`, `port="`+port+`" address="127.0.0.1"`)
	receiver = mustReplace(t, receiver, "/var/log/signstar/enclave.jsonl", out)
	for _, d := range []string{"host", "loghost"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host := rsyslogtest.Start(t, filepath.Join(dir, "host"), sender)

	var lines [][]byte
	prev := audit.ZeroHash
	for i, r := range []audit.Record{
		{Time: "2026-12-02T01:49:00.000001Z", User: "signer", Client: "192.0.2.10", Command: "sign", Profile: "repo", Outcome: audit.Signed, Signature: "iHUEABYKAB0WIQ"},
		{Time: "2026-12-02T01:49:01.000001Z", User: "signer", Command: `sign --profile "é\u2028"` + "\x01", Outcome: audit.Refused, Reason: "unknown profile"},
		{Time: "2026-12-02T01:49:02.000001Z", User: "signer", Outcome: audit.Failed, Reason: strings.Repeat("long ", 4000)},
	} {
		r.Seq, r.Prev = uint64(i+1), prev
		line, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		prev = audit.LineHash(line)
	}
	s := audit.DialSyslog(host.Socket, true)
	defer s.Close()
	for i, line := range lines {
		if err := s.Send([]audit.Record{{Outcome: audit.Signed}, {Outcome: audit.Refused}, {Outcome: audit.Failed}}[i].Outcome, line); err != nil {
			t.Fatal(err)
		}
	}
	host.Lines(t, len(lines))
	logHost := rsyslogtest.Start(t, filepath.Join(dir, "loghost"), receiver)
	got := logHost.FileLines(t, out, len(lines))
	// rsyslog delivers at least once: after the outage a record may come
	// again, later. The README's awk and sort make the log of it.
	held, dups := dedupSort(got)
	if len(held) != len(lines) {
		t.Fatalf("the log host has %d distinct lines, want %d", len(held), len(lines))
	}
	for i := range lines {
		if !bytes.Equal(held[i], lines[i]) {
			t.Errorf("line %d: the log host wrote\n%q\nwant\n%q", i+1, held[i], lines[i])
		}
	}
	t.Logf("%d lines, %d of them repeats", len(got), dups)
}

// dedupSort is the README's awk '!seen[$0]++' | sort -s -t: -k2,2n: each
// line once, in the order of the number after the first colon (seq).
func dedupSort(lines [][]byte) ([][]byte, int) {
	seen := map[string]bool{}
	var out [][]byte
	for _, l := range lines {
		if !seen[string(l)] {
			seen[string(l)] = true
			out = append(out, l)
		}
	}
	seq := func(l []byte) int {
		_, rest, _ := bytes.Cut(l, []byte(":"))
		n := 0
		for _, c := range rest {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool { return seq(out[i]) < seq(out[j]) })
	return out, len(lines) - len(out)
}

// readmeBlock is the fenced block of README.md whose first line starts
// with first.
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	data, err := os.ReadFile(repoFile(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(data), "\n```")[1:] {
		_, body, _ := strings.Cut(block, "\n")
		if strings.HasPrefix(body, first) {
			return body
		}
	}
	t.Fatalf("README.md has no block starting %q", first)
	return ""
}

func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q is not in\n%s", old, s)
	}
	return strings.ReplaceAll(s, old, new)
}

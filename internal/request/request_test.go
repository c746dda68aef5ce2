package request

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/sandbox"
	"github.com/signstar/signstar/internal/signer"
)

// The pipeline's tests run it in the test process, without the binary:
// real keys, a real audit log in a temporary directory, real pipes; only
// the sandbox is replaced (locking down the test process would end it).

var keysDir, _ = filepath.Abs("../../testdata/keys")

// clock is the requests' time: now, since the test keys expire.
var clock = time.Now().UTC().Truncate(time.Second)

// fixture is one request's world.
type fixture struct {
	t       *testing.T
	dir     string
	rq      *Request
	stdout  *bytes.Buffer
	logPath string
	toml    string
}

// profileTOML is the [[profile]] body for name; extra lines are appended.
func newFixture(t *testing.T, keyName string, extra ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, keyName+".key")
	data, err := os.ReadFile(filepath.Join(keysDir, keyName+".key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	me := uidUser(os.Getuid())
	logPath := filepath.Join(dir, "audit.jsonl")
	toml := fmt.Sprintf("[audit]\npath = %q\n\n[sandbox]\nmode = \"enforce\"\n\n[[profile]]\nname = \"repo\"\nbackend = \"keyfile\"\nkey = %q\nusers = [%q]\n%s\n",
		logPath, key, me, strings.Join(extra, "\n"))
	cfg, err := config.Parse(filepath.Join(dir, "config.toml"), []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	f := &fixture{t: t, dir: dir, stdout: &bytes.Buffer{}, logPath: logPath, toml: toml}
	f.rq = &Request{
		Config:  cfg,
		Log:     log,
		Caller:  Caller{User: me, Client: "192.0.2.1 50000 192.0.2.2 22"},
		Command: "sign",
		Stdout:  f.stdout,
		Now:     func() time.Time { return clock },
		Lockdown: func(o sandbox.Options) (sandbox.Report, error) {
			if len(o.AppendFDs) == 0 || o.Mode != sandbox.Enforce {
				return sandbox.Report{}, fmt.Errorf("lock-down options: %+v", o)
			}
			return sandbox.Report{LandlockABI: 7, Seccomp: true, NoNewPrivs: true, FDsClosed: true}, nil
		},
		Idle:        5 * time.Second,
		SignalGrace: time.Hour,
	}
	f.input(bytes.Repeat([]byte("signstar"), 128))
	return f
}

// input makes data the upload, as a regular file.
func (f *fixture) input(data []byte) {
	p := filepath.Join(f.dir, "input")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	in, err := os.Open(p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { in.Close() })
	f.rq.Stdin = in
}

// records reads the log back.
func (f *fixture) records() []audit.Record {
	f.t.Helper()
	fh, err := os.Open(f.logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	var out []audit.Record
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, audit.MaxLine)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			f.t.Fatalf("record %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// check is what every row promises: the exit code and audit outcome of the
// table, the reason equal to the message, the caller and command in the
// record, and nothing on stdout unless signed.
func (f *fixture) check(res Result, want Outcome, msg string) *audit.Record {
	f.t.Helper()
	if res.Outcome != want {
		f.t.Fatalf("outcome %v (%q), want %v", res.Outcome, res.Message, want)
	}
	row := Table[want]
	if res.Exit != row.Exit {
		f.t.Errorf("exit %d, want %d", res.Exit, row.Exit)
	}
	if !strings.Contains(res.Message, msg) {
		f.t.Errorf("message %q does not say %q", res.Message, msg)
	}
	if want != Signed && f.stdout.Len() > 0 {
		f.t.Errorf("stdout got %d bytes on %v", f.stdout.Len(), want)
	}
	if (row.Class == Quiet) != (res.Message == "") {
		f.t.Errorf("class %v with message %q", row.Class, res.Message)
	}
	recs := f.records()
	if row.Audit == "" {
		if len(recs) != 0 {
			f.t.Fatalf("%v wrote %d records", want, len(recs))
		}
		return nil
	}
	if len(recs) == 0 {
		f.t.Fatalf("%v wrote no record", want)
	}
	r := &recs[len(recs)-1]
	if r.Outcome != row.Audit || r.Reason != res.Message {
		f.t.Errorf("record outcome %q reason %q, want %q %q", r.Outcome, r.Reason, row.Audit, res.Message)
	}
	if r.User != f.rq.Caller.User || r.Client != f.rq.Caller.Client || r.Command != f.rq.Command {
		f.t.Errorf("record caller %q %q %q", r.User, r.Client, r.Command)
	}
	if r.Time != clock.Format(audit.TimeFormat) {
		f.t.Errorf("record time %q", r.Time)
	}
	return r
}

// empty is the empty command, as Arch's client sends it.
func empty() *command.Request {
	req, err := command.ParseRemote("")
	if err != nil || !req.Empty {
		panic(fmt.Sprint(req, err))
	}
	return req
}

func sign(extra ...string) *command.Request {
	req, err := command.ParseWords(append([]string{"sign"}, extra...), false)
	if err != nil {
		panic(err)
	}
	return req
}

// TestTableComplete: every outcome has a row, and each row's exit code
// matches its audit outcome as the contract says.
func TestTableComplete(t *testing.T) {
	for _, o := range Outcomes() {
		row := Table[o]
		want := map[string]int{audit.Signed: ExitOK, audit.Refused: ExitRefused, audit.Failed: ExitFailed, audit.Vote: ExitVote}[row.Audit]
		switch {
		case o == Served:
			want = ExitOK
		case row.Audit == "":
			want = ExitFailed
		}
		if row.Exit != want || strings.Contains(o.String(), "?") {
			t.Errorf("%v: row %+v", o, row)
		}
		if _, ok := rowTests[o]; !ok {
			t.Errorf("%v has no test in rowTests", o)
		}
	}
}

// rowTests has one test per row of the outcome table.
var rowTests = map[Outcome]func(t *testing.T){
	Signed: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		r := f.check(f.rq.Sign(sign()), Signed, "")
		sig, err := base64.StdEncoding.DecodeString(r.Signature)
		if err != nil || !bytes.Equal(sig, f.stdout.Bytes()) || len(sig) == 0 {
			t.Fatalf("stdout %x, record signature %q", f.stdout.Bytes(), r.Signature)
		}
		sum := sha256.Sum256(bytes.Repeat([]byte("signstar"), 128))
		if r.Profile != "repo" || r.Size != 1024 || r.Digest != fmt.Sprintf("sha256:%x", sum) || r.Key == "" ||
			r.Sandbox != "landlock=7,seccomp,nnp" || r.Kind != "" {
			t.Errorf("record %+v", r)
		}
	},
	Served: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		res := f.rq.Pubkey(&command.Request{Name: command.Pubkey})
		f.check(res, Served, "")
		if !bytes.HasPrefix(res.Output, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			t.Errorf("output %q", res.Output)
		}
	},
	RefusedCommand: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.check(f.rq.Refuse(RefusedCommand, "unknown command \"rm\""), RefusedCommand, "unknown command")
	},
	RefusedTerminal: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer pty.Close()
		f.rq.Stdin = pty
		r := f.check(f.rq.Sign(sign()), RefusedTerminal, "stdin is a terminal")
		if r.Profile != "" || r.Sandbox != "none" {
			t.Errorf("record %+v", r)
		}
	},
	RefusedProfile: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.rq.Caller.User = "mallory"
		f.check(f.rq.Sign(sign()), RefusedProfile, "no profile is available to user mallory")
		f.rq.Caller.User = uidUser(os.Getuid())
		f.check(f.rq.Sign(sign("--profile", "other")), RefusedProfile, `profile "other" is not available`)
	},
	RefusedRequest: func(t *testing.T) {
		f := newFixture(t, "ed25519", v1Profile)
		f.input([]byte(`{"version":"2.0.0"}`))
		r := f.check(f.rq.Sign(empty()), RefusedRequest, `not a signstar-v1 request (19 bytes read): version "2.0.0" is not understood`)
		if r.HashedBy != audit.HashedByClient || r.Size != 0 || r.Digest != "" || r.Profile != "repo" {
			t.Errorf("record %+v", r)
		}
	},
	RefusedTooLarge: func(t *testing.T) {
		f := newFixture(t, "ed25519", `max_size = "512"`)
		r := f.check(f.rq.Sign(sign()), RefusedTooLarge, "input larger than max_size 512 of profile repo")
		if r.Size != 512 {
			t.Errorf("record size %d, want the 512 accepted bytes", r.Size)
		}
	},
	RefusedDigest: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.check(f.rq.Sign(sign("--expect", "sha512:"+strings.Repeat("00", 64))), RefusedDigest, "digest mismatch: expected sha512:00")
	},
	RefusedKind: func(t *testing.T) {
		f := newFixture(t, "ed25519", `kinds = ["pacman-package"]`)
		f.check(f.rq.Sign(sign()), RefusedKind, "kind unknown")
	},
	RefusedRate: func(t *testing.T) {
		f := newFixture(t, "ed25519", `rate = "1/30d"`)
		f.check(f.rq.Sign(sign()), Signed, "")
		f.stdout.Reset()
		f.input([]byte("again"))
		f.check(f.rq.Sign(sign()), RefusedRate, "rate 1/30d reached (last signed "+clock.Format(time.RFC3339)+")")
	},
	RefusedArchive: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.input(archive(t, file{name: "a", data: []byte("a")}, file{name: "b", typ: '2'}))
		f.check(f.rq.Sign(sign("--tar")), RefusedArchive, `refused archive: member "b": a symbolic link`)
	},
	RefusedQuorum: func(t *testing.T) {
		f := newQuorumFixture(t)
		f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
		f.as(keyP).check(f.rq.Sign(sign()), RefusedQuorum, "quorum not met for sha256:")
		r := f.as(keyP).check(f.rq.Sign(sign()), RefusedQuorum, "1 of 2 votes within quorum_window 1h; send it again once 1 more voter(s)")
		if r.Voter != "" || r.Digest == "" {
			t.Errorf("record %+v", r)
		}
	},
	RefusedVoter: func(t *testing.T) {
		f := newQuorumFixture(t)
		f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
		r := f.as(keyX).check(f.rq.Sign(sign()), RefusedVoter, "with SSH key "+keyX+" is neither a voter nor a publisher of quorum profile repo, so its request is not counted: sha256:")
		if !strings.HasSuffix(r.Reason, "has 1 of 2 votes within quorum_window 1h") || r.Voter != "" {
			t.Errorf("record %+v", r)
		}
		// Still one vote: the refusal counted for nothing.
		f.as(keyP).check(f.rq.Sign(sign()), RefusedQuorum, "1 of 2 votes")
	},
	Voted: func(t *testing.T) {
		f := newQuorumFixture(t)
		r := f.as(keyA).check(f.rq.Sign(sign()), Voted, "vote recorded for sha256:")
		if r.Voter != keyA || r.Signature != "" || r.Digest == "" || r.Kind != "" || r.Profile != "repo" {
			t.Errorf("record %+v", r)
		}
		// A repeat is recorded, and not counted twice.
		r = f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes within quorum_window 1h (this voter's earlier vote is counted once)")
		if r.Voter != keyA {
			t.Errorf("record %+v", r)
		}
	},
	FailedProfile: func(t *testing.T) {
		f := newFixture(t, "p384")
		r := f.check(f.rq.Sign(sign()), FailedProfile, "P-384 key needs a hash of at least 384 bits")
		if r.Key == "" || r.Size != 0 {
			t.Errorf("record %+v", r)
		}
	},
	FailedBackend: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		os.Chmod(f.rq.Config.Profiles[0].Key, 0o644)
		f.check(f.rq.Sign(sign()), FailedBackend, "open to group or others")
	},
	FailedSandbox: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.rq.Lockdown = func(sandbox.Options) (sandbox.Report, error) {
			return sandbox.Report{NoNewPrivs: true}, &sandbox.Error{Mode: sandbox.Enforce, Missing: []sandbox.Missing{{Part: "landlock", Reason: "not in this kernel"}}}
		}
		r := f.check(f.rq.Sign(sign()), FailedSandbox, "not signing; run 'signstar sandbox check'")
		if r.Sandbox != "landlock=none,seccomp=none,nnp,fds=none" {
			t.Errorf("record sandbox %q", r.Sandbox)
		}
	},
	FailedUpload: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		d, err := os.Open(f.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		f.rq.Stdin = d
		f.check(f.rq.Sign(sign()), FailedUpload, "cannot read the artifact from stdin")
	},
	FailedInterrupted: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		pr, pw := pipe(t)
		f.rq.Stdin = pr
		f.rq.SignalGrace = 10 * time.Millisecond
		go func() {
			pw.Write([]byte("part of it"))
			time.Sleep(200 * time.Millisecond)
			syscall.Kill(os.Getpid(), syscall.SIGHUP)
		}()
		r := f.check(f.rq.Sign(sign()), FailedInterrupted, "interrupted by hangup while reading the artifact")
		if r.Size != 10 {
			t.Errorf("record size %d", r.Size)
		}
	},
	FailedIdle: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		pr, pw := pipe(t)
		f.rq.Stdin = pr
		f.rq.Idle = 100 * time.Millisecond
		pw.Write([]byte("abc"))
		f.check(f.rq.Sign(sign()), FailedIdle, "no data from the client for 100ms after 3 bytes; nothing was signed")
	},
	FailedClientGone: func(t *testing.T) {
		// Gone before the upload's end was read...
		f := newFixture(t, "ed25519")
		pr, pw := pipe(t)
		pr.Close()
		f.rq.Stdout = pw
		f.check(f.rq.Sign(sign()), FailedClientGone, "the client disconnected before the upload finished")
		// ... and while the backend signed.
		f = newFixture(t, "ed25519")
		pr, pw = pipe(t)
		f.rq.Stdout = pw
		f.rq.Open = func(p *config.Profile, t time.Time) (*backend.Key, error) {
			k, err := OpenBackend(p, t)
			if err == nil {
				k.Signer = &hookSigner{k.Signer, func() error { return pr.Close() }}
			}
			return k, err
		}
		f.check(f.rq.Sign(sign()), FailedClientGone, "before the signature could be sent; it was discarded")
	},
	FailedRateLog: func(t *testing.T) {
		// The index entry of a signature in the period is damaged, older
		// than the newest block (which the append reads too): the count
		// fails, the failure is recorded.
		f := newFixture(t, "ed25519", `rate = "1/30d"`)
		day := clock.Add(-24 * time.Hour).Format(audit.TimeFormat)
		if err := f.rq.Log.Append(&audit.Record{Time: day, Outcome: audit.Signed, Profile: "repo"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < audit.HeadsWindow+10; i++ {
			if err := f.rq.Log.Append(&audit.Record{Time: day, Outcome: audit.Refused, Reason: "x", Profile: "repo"}); err != nil {
				t.Fatal(err)
			}
		}
		idx, err := os.ReadFile(audit.IndexPath(f.logPath))
		if err != nil {
			t.Fatal(err)
		}
		idx[audit.EntrySize+9] ^= 1
		if err := os.WriteFile(audit.IndexPath(f.logPath), idx, 0o600); err != nil {
			t.Fatal(err)
		}
		f.check(f.rq.Sign(sign()), FailedRateLog, "entry 1 is damaged")
	},
	FailedSign: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.rq.Open = func(p *config.Profile, t time.Time) (*backend.Key, error) {
			k, err := OpenBackend(p, t)
			if err == nil {
				k.Signer = &hookSigner{k.Signer, func() error { return errors.New("card removed") }}
			}
			return k, err
		}
		f.check(f.rq.Sign(sign()), FailedSign, "profile repo: card removed")
	},
	FailedCertificate: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		os.Remove(f.rq.Config.Profiles[0].Key)
		f.check(f.rq.Pubkey(&command.Request{Name: command.Pubkey}), FailedCertificate, "cannot read key")
	},
	FailedInternal: func(t *testing.T) {
		f := newFixture(t, "ed25519", "")
		f.check(f.rq.Crashed("internal error (boom): please report it"), FailedInternal, "internal error (boom)")
	},
	FailedOutput: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.rq.Stdout = failWriter{}
		f.check(f.rq.Sign(sign()), FailedOutput, "made and audited but could not be written to stdout")
		recs := f.records()
		if len(recs) != 2 || recs[0].Outcome != audit.Signed || recs[0].Signature == "" || recs[1].Signature != "" {
			t.Fatalf("records %+v", recs)
		}
	},
	FailedSyslog: func(t *testing.T) {
		// No daemon on the socket: refused before stdin is read.
		f := newFixture(t, "ed25519")
		f.rq.Log.Forward(audit.DialSyslog(filepath.Join(f.dir, "no-daemon"), true))
		r := f.check(f.rq.Sign(sign()), FailedSyslog, "not signing: [audit] syslog_required is set and the syslog socket "+filepath.Join(f.dir, "no-daemon")+" does not answer (cannot connect: ")
		if r.Size != 0 || r.Sandbox != "none" || len(f.records()) != 1 {
			t.Errorf("record %+v", r)
		}
		// The daemon goes away after the connect: the signed record is
		// on disk, the next one says its signature was discarded.
		f = newFixture(t, "ed25519")
		daemon := listenSyslog(t, filepath.Join(f.dir, "log"))
		f.rq.Log.Forward(audit.DialSyslog(filepath.Join(f.dir, "log"), true))
		daemon.Close()
		f.check(f.rq.Sign(sign()), FailedSyslog, "record 1 is in the audit log but could not be sent to the syslog socket "+filepath.Join(f.dir, "log")+": connection refused; [audit] syslog_required is set, so its signature was discarded")
		recs := f.records()
		if len(recs) != 2 || recs[0].Outcome != audit.Signed || recs[0].Signature == "" || recs[1].Signature != "" {
			t.Fatalf("records %+v", recs)
		}
	},
	FailedLog: func(t *testing.T) {
		f := newFixture(t, "ed25519")
		// A write cut short: signing stops until an operator repairs.
		os.WriteFile(f.logPath, []byte(`{"seq":1,"time":`), 0o600)
		res := f.rq.Sign(sign())
		if res.Outcome != FailedLog || res.Exit != ExitFailed || !strings.HasPrefix(res.Message, "not signing: ") || f.stdout.Len() > 0 {
			t.Fatalf("%+v", res)
		}
	},
}

func TestOutcomes(t *testing.T) {
	for _, o := range Outcomes() {
		if test := rowTests[o]; test != nil {
			t.Run(o.String(), test)
		}
	}
}

// listenSyslog is a datagram socket at path that stands for the syslog
// daemon (the real one, rsyslog, is in cmd/signstar's syslog tests).
func listenSyslog(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Every record reaches the syslog socket, the signed one before its
// signature is released, and a refusal's too; without syslog_required a
// daemon that is gone stops nothing.
func TestSyslogForward(t *testing.T) {
	f := newFixture(t, "ed25519", `kinds = ["iso"]`)
	daemon := listenSyslog(t, filepath.Join(f.dir, "log"))
	f.rq.Log.Forward(audit.DialSyslog(filepath.Join(f.dir, "log"), true))
	f.check(f.rq.Sign(sign()), RefusedKind, "not allowed in profile repo")
	f.rq.Config.Profiles[0].Kinds = []string{"any"}
	f.input([]byte("data"))
	f.check(f.rq.Sign(sign()), Signed, "")
	lines, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.SplitAfter(bytes.TrimSuffix(lines, []byte("\n")), []byte("\n")) {
		buf := make([]byte, audit.MaxLine+100)
		daemon.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := daemon.Read(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		_, msg, ok := bytes.Cut(buf[:n], []byte("]: "))
		if !ok || !bytes.Equal(msg, bytes.TrimSuffix(line, []byte("\n"))) {
			t.Errorf("record %d: sent %q\nline %q", i+1, buf[:n], line)
		}
	}

	f = newFixture(t, "ed25519")
	daemon = listenSyslog(t, filepath.Join(f.dir, "log"))
	f.rq.Log.Forward(audit.DialSyslog(filepath.Join(f.dir, "log"), false))
	daemon.Close()
	f.check(f.rq.Sign(sign()), Signed, "")
	f = newFixture(t, "ed25519")
	f.rq.Log.Forward(audit.DialSyslog(filepath.Join(f.dir, "none"), false))
	f.check(f.rq.Sign(sign()), Signed, "")
}

// A refusal whose record cannot be written exits 1, and says both.
func TestUnwritableRecord(t *testing.T) {
	f := newFixture(t, "ed25519", `kinds = ["iso"]`)
	os.WriteFile(f.logPath, []byte(`{"seq":1,"time":`), 0o600)
	res := f.rq.Sign(sign())
	if res.Outcome != RefusedKind || res.Exit != ExitFailed || !strings.Contains(res.Message, "; and the audit record could not be written: ") || f.stdout.Len() > 0 {
		t.Fatalf("%+v", res)
	}
}

// The signature on stdout verifies over the input.
func TestSignedVerifies(t *testing.T) {
	f := newFixture(t, "rsa3072", `hash = "sha512"`)
	data := []byte("a package")
	f.input(data)
	f.check(f.rq.Sign(sign("--armor")), Signed, "")
	if !bytes.HasPrefix(f.stdout.Bytes(), []byte("-----BEGIN PGP SIGNATURE-----")) {
		t.Fatalf("not armored: %q", f.stdout.Bytes())
	}
	k, err := OpenBackend(&f.rq.Config.Profiles[0], clock)
	if err != nil {
		t.Fatal(err)
	}
	r := f.records()[0]
	sig, _ := base64.StdEncoding.DecodeString(r.Signature)
	in, err := signer.Read(bytes.NewReader(data), crypto.SHA512, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.Verify(sig, in, k.Public); err != nil {
		t.Fatal(err)
	}
}

func pipe(t *testing.T) (*os.File, *os.File) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	return pr, pw
}

// hookSigner runs hook before signing; an error from it is the signer's.
type hookSigner struct {
	crypto.Signer
	hook func() error
}

func (h *hookSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := h.hook(); err != nil {
		return nil, err
	}
	return h.Signer.Sign(rand, digest, opts)
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.EIO }

// TestSignatureCommitsToLog: each signature carries the log's notation,
// hashed and not critical: its record's seq and the tree root of every
// record before it (refusals included), read under the lock that appends
// the record.
func TestSignatureCommitsToLog(t *testing.T) {
	f := newFixture(t, "ed25519")
	f.check(f.rq.Sign(sign()), Signed, "")
	f.stdout.Reset()
	f.check(f.rq.Refuse(RefusedCommand, "unknown command \"rm\""), RefusedCommand, "unknown command")
	f.input([]byte("another"))
	f.check(f.rq.Sign(sign()), Signed, "")
	data, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	fr := audit.NewFrontier()
	signed := 0
	for i, r := range f.records() {
		root, err := fr.Root()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fr.Add(lines[i]); err != nil {
			t.Fatal(err)
		}
		if r.Outcome != audit.Signed {
			continue
		}
		signed++
		raw, _ := base64.StdEncoding.DecodeString(r.Signature)
		sigs, err := audit.ReadSignatures(raw)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		seq, got, err := audit.SignatureNotation(sigs[0])
		if err != nil || seq != r.Seq || got != root {
			t.Fatalf("record %d: notation seq %d root %x (%v), want root %x", r.Seq, seq, got, err, root)
		}
		// In the hashed area: the raw subpacket follows the creation time.
		if !bytes.Contains(raw, []byte(audit.NotationName+audit.FormatNotation(seq, root))) {
			t.Fatalf("record %d: the notation's bytes are not in the packet", r.Seq)
		}
		if sigs[0].Notations[0].IsCritical || !sigs[0].Notations[0].IsHumanReadable {
			t.Fatal("the notation is critical or not human-readable")
		}
	}
	if signed != 2 {
		t.Fatalf("%d signed records", signed)
	}
}

// withLogKey gives the fixture's log an origin and a checkpoint key, and
// returns the verifier key.
func (f *fixture) withLogKey() note.Verifier {
	f.t.Helper()
	skey, vkey, err := audit.NewCheckpointKey("example.org/signstar")
	if err != nil {
		f.t.Fatal(err)
	}
	kp := filepath.Join(f.dir, "log.key")
	if err := os.WriteFile(kp, []byte(skey+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	toml := strings.Replace(f.toml, "[audit]\n", fmt.Sprintf("[audit]\norigin = \"example.org/signstar\"\ncheckpoint_key = %q\n", kp), 1)
	cfg, err := config.Parse(filepath.Join(f.dir, "config.toml"), []byte(toml))
	if err != nil {
		f.t.Fatal(err)
	}
	f.rq.Config = cfg
	v, err := note.NewVerifier(vkey)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// TestCheckpointAndProof: checkpoint is the log's signed tree head, with
// --from the consistency proof from an older one; proof is the record's
// inclusion in it; neither is recorded when served.
func TestCheckpointAndProof(t *testing.T) {
	f := newFixture(t, "ed25519")
	v := f.withLogKey()
	for i := 0; i < 5; i++ {
		f.input([]byte(fmt.Sprintf("artifact %d", i)))
		f.stdout.Reset()
		f.check(f.rq.Sign(sign()), Signed, "")
	}
	f.stdout.Reset()
	res := f.rq.Checkpoint(&command.Request{Name: command.Checkpoint, From: 2, HasFrom: true})
	if res.Outcome != Served || res.Exit != 0 {
		t.Fatalf("checkpoint: %+v", res)
	}
	c, err := audit.ParseConsistency(res.Output)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.OpenCheckpoint(c.Checkpoint, v)
	if err != nil || cp.Size != 5 || c.Old != 2 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	lines := bytes.Split(bytes.TrimSuffix(mustReadFile(t, f.logPath), []byte("\n")), []byte("\n"))
	fr := audit.NewFrontier()
	var root2 tlog.Hash
	for i, l := range lines {
		if i == 2 {
			root2, _ = fr.Root()
		}
		fr.Add(l)
	}
	if root, _ := fr.Root(); root != cp.Root {
		t.Fatalf("checkpoint root %x, the log's %x", cp.Root, root)
	}
	if err := tlog.CheckTree(c.Proof, 5, cp.Root, 2, root2); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}

	res = f.rq.Proof(&command.Request{Name: command.Proof, Seq: 3})
	if res.Outcome != Served {
		t.Fatalf("proof: %+v", res)
	}
	p, err := audit.ParseProof(res.Output)
	if err != nil || p.Index != 2 || !bytes.Equal(p.Record, lines[2]) {
		t.Fatalf("proof %+v, %v", p, err)
	}
	if _, err := audit.OpenCheckpoint(p.Checkpoint, v); err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(p.Hashes, 5, cp.Root, 2, tlog.RecordHash(lines[2])); err != nil {
		t.Fatal(err)
	}
	if n := len(f.records()); n != 5 {
		t.Fatalf("%d records after the reads, want 5", n)
	}
	if f.stdout.Len() != 0 {
		t.Fatal("the reads wrote to stdout themselves")
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func init() {
	rowTests[RefusedRecord] = func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.withLogKey()
		f.check(f.rq.Sign(sign()), Signed, "")
		f.stdout.Reset()
		f.check(f.rq.Proof(&command.Request{Name: command.Proof, Seq: 2}), RefusedRecord, "the log has no record 2: it holds 1")
		f.check(f.rq.Checkpoint(&command.Request{Name: command.Checkpoint, From: 9, HasFrom: true}), RefusedRecord, "--from 9 is past the log's size 2")
		// A record of another profile than the caller's.
		f.rq.Caller.User = "mallory"
		toml := strings.Replace(f.toml, "[[profile]]", "[[profile]]\nname = \"other\"\nbackend = \"keyfile\"\nkey = \"/nonexistent\"\nusers = [\"mallory\"]\n\n[[profile]]", 1)
		f.toml = toml
		f.withLogKey()
		f.check(f.rq.Proof(&command.Request{Name: command.Proof, Seq: 1}), RefusedRecord, "record 1 is not of a profile available to user mallory")
	}
	rowTests[FailedCheckpoint] = func(t *testing.T) {
		f := newFixture(t, "ed25519")
		f.check(f.rq.Checkpoint(&command.Request{Name: command.Checkpoint}), FailedCheckpoint, "this log has no checkpoint key: set [audit] origin and checkpoint_key")
		f.withLogKey()
		os.Chmod(filepath.Join(f.dir, "log.key"), 0o640)
		f.check(f.rq.Proof(&command.Request{Name: command.Proof, Seq: 1}), FailedCheckpoint, "log.key has mode 0640, open to group or others")
	}
}

// Package rsyslogtest runs a real rsyslogd (Debian's rsyslog) for a test:
// its own configuration, an imuxsock input on a socket in a directory of
// the test's, and signstar's messages written to a file by omfile, one MSG
// per line and nothing added, so that a test can compare them with the
// audit log byte for byte. It touches no system path: the system socket
// (/dev/log) is off, the work directory and the pid file are the test's.
package rsyslogtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// Daemon is one running rsyslogd.
type Daemon struct {
	// Socket is the imuxsock socket: [audit] syslog.
	Socket string
	// Out is where signstar's messages go, each MSG on its own line.
	Out string
	// All gets every message in rsyslog's file format, for a failing
	// test to show.
	All  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{} // closed when rsyslogd has exited
}

// config is rsyslogd's configuration: a record line is up to 64 KiB
// (maxMessageSize), and the input has no rate limit. MSG of a
// message in the form glibc sends starts with the space after the tag's
// colon, which %msg:2:$% leaves out; control bytes would be escaped on
// receipt, but a record line has none.
const config = `global(workDirectory=%[1]q)
%[6]s
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%[2]q CreatePath="off" RateLimit.Interval="0")
template(name="msgonly" type="string" string="%%msg:2:$%%\n")
if $programname == "signstar" then {
	action(type="omfile" file=%[3]q template="msgonly")
}
action(type="omfile" file=%[4]q template="RSYSLOG_FileFormat")
%[5]s
`

// Start runs rsyslogd with its socket in dir (which must exist, and which
// the signing user must be able to reach) and stops it when the test ends.
// extra is more configuration, after the test's own (README snippets).
func Start(t testing.TB, dir, extra string) *Daemon {
	t.Helper()
	bin := testenv.NeedTool(t, "rsyslogd", "rsyslog")
	work := filepath.Join(dir, "rsyslog")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Socket: filepath.Join(dir, "syslog"),
		Out:    filepath.Join(work, "signstar.log"),
		All:    filepath.Join(work, "all.log"),
		log:    &bytes.Buffer{},
		done:   make(chan struct{}),
	}
	// rsyslog refuses a global parameter set twice.
	size := `global(maxMessageSize="64k")`
	if strings.Contains(extra, "maxMessageSize") {
		size = ""
	}
	conf := filepath.Join(work, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(config, work, d.Socket, d.Out, d.All, extra, size)), 0o644); err != nil {
		t.Fatal(err)
	}
	// -n: in the foreground, a child of the test; -i: its own pid file.
	d.cmd = exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(work, "rsyslogd.pid"))
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("rsyslogd: %v", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			all, _ := os.ReadFile(d.All)
			t.Logf("rsyslogd said: %s\nits messages:\n%s", d.log, all)
		}
	})
	// imuxsock binds its socket before it reads from it: once the socket
	// is there, datagrams queue until rsyslogd takes them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(d.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if d.exited() || time.Now().After(deadline) {
			t.Fatalf("rsyslogd made no socket %s: %s", d.Socket, d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// Kill stops rsyslogd at once (SIGKILL), as a crash would; the socket file
// stays behind with nobody reading it. It is safe to call twice.
func (d *Daemon) Kill() {
	if !d.exited() {
		d.cmd.Process.Kill()
	}
	<-d.done
}

func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Lines waits until rsyslogd has written at least n of signstar's
// messages and returns them all, without their newlines.
func (d *Daemon) Lines(t testing.TB, n int) [][]byte {
	t.Helper()
	return d.FileLines(t, d.Out, n)
}

// FileLines waits, at most a minute, until the file at path (one that
// rsyslogd writes) holds at least n complete lines, and returns them all
// without their newlines.
func (d *Daemon) FileLines(t testing.TB, path string, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		data, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var lines [][]byte
		if len(data) > 0 {
			lines = bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
		}
		if len(lines) >= n && (len(data) == 0 || data[len(data)-1] == '\n') {
			return lines
		}
		if time.Now().After(deadline) {
			all, _ := os.ReadFile(d.All)
			t.Fatalf("rsyslogd wrote %d lines to %s after a minute, want %d; all it got:\n%s", len(lines), path, n, strings.TrimSpace(string(all)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

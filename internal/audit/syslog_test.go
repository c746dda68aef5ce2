package audit

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The datagram is glibc's syslog(3) form, which journald and rsyslog's
// imuxsock parse: PRI of authpriv with the outcome's severity, the time in
// UTC as "Mmm dd hh:mm:ss", the tag with the pid, and the line unchanged.
func TestSyslogMessage(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 9, 5, 999, time.FixedZone("X", 3600))
	line := `{"seq":7,"reason":"a \"b\" \u00e9"}`
	for _, c := range []struct{ outcome, want string }{
		{Signed, "<86>Dec  2 00:09:05 signstar[42]: " + line},
		{Refused, "<85>Dec  2 00:09:05 signstar[42]: " + line},
		{Failed, "<84>Dec  2 00:09:05 signstar[42]: " + line},
	} {
		if got := string(SyslogMessage(nil, at, 42, c.outcome, []byte(line))); got != c.want {
			t.Errorf("%s: %q, want %q", c.outcome, got, c.want)
		}
	}
	if got := string(SyslogMessage(nil, at.AddDate(0, 0, 10), 1, Signed, nil)); !strings.HasPrefix(got, "<86>Dec 12 ") {
		t.Errorf("two-digit day: %q", got)
	}
}

// Without syslog_required a send never waits: a daemon that does not read
// fills its queue, and the send fails at once instead of holding the log's
// lock.
func TestSyslogFullQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := DialSyslog(path, false)
	defer s.Close()
	if s.Err() != nil || s.FD() < 0 {
		t.Fatalf("dial: %v", s.Err())
	}
	line := []byte(strings.Repeat("x", 4096))
	start := time.Now()
	for i := 0; ; i++ {
		err := s.Send(Signed, line)
		if err != nil {
			if !strings.Contains(err.Error(), "queue is full") {
				t.Fatalf("send %d: %v", i, err)
			}
			break
		}
		if i > 1<<16 {
			t.Fatal("the queue never filled")
		}
	}
	if d := time.Since(start); d > SyslogTimeout {
		t.Errorf("the sends took %v: one waited", d)
	}
}

// A socket that cannot be connected is kept as an error, which every send
// repeats; the log forwards nothing then.
func TestSyslogNotConnected(t *testing.T) {
	s := DialSyslog(filepath.Join(t.TempDir(), "none"), true)
	if s.FD() != -1 || s.Err() == nil || !strings.Contains(s.Err().Error(), "cannot connect: no such file or directory") {
		t.Fatalf("fd %d, err %v", s.FD(), s.Err())
	}
	if err := s.Send(Signed, []byte("{}")); err != s.Err() {
		t.Errorf("send: %v", err)
	}
}

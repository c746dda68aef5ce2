package e2e

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// target is a TCP service the forwards try to reach; it counts the
// connections it gets.
type target struct {
	l        net.Listener
	accepted atomic.Int32
}

func newTarget(t *testing.T) *target {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tg.accepted.Add(1)
			c.Write([]byte("secret service\n"))
			c.Close()
		}
	}()
	return tg
}

func (tg *target) port() int { return tg.l.Addr().(*net.TCPAddr).Port }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// background starts ssh (-N: no command, the attacker's way to forward
// without running anything) and stops it at the end of the test.
func (e *enclave) background(t *testing.T, opts ...string) (*exec.Cmd, *strings.Builder) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.Command(ctx, "client", append([]string{"-N", "-o", "ExitOnForwardFailure=yes"}, opts...))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cmd, &stderr
}

// waitListening waits for ssh's local end of a forward.
func waitListening(t *testing.T, port int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// readThrough connects to port and returns what comes back within 3s.
func readThrough(port int, hello []byte) string {
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if hello != nil {
		c.Write(hello)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestForwardingRefused(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			tg := newTarget(t)

			t.Run("-L", func(t *testing.T) {
				lport := freePort(t)
				e.background(t, "-L", "127.0.0.1:"+strconv.Itoa(lport)+":127.0.0.1:"+strconv.Itoa(tg.port()))
				if !waitListening(t, lport) {
					t.Fatal("ssh did not listen for -L")
				}
				if got := readThrough(lport, nil); strings.Contains(got, "secret") {
					t.Errorf("-L forward reached the target: %q", got)
				}
			})
			t.Run("-D", func(t *testing.T) {
				lport := freePort(t)
				e.background(t, "-D", "127.0.0.1:"+strconv.Itoa(lport))
				if !waitListening(t, lport) {
					t.Fatal("ssh did not listen for -D")
				}
				// SOCKS5: no authentication, then CONNECT 127.0.0.1:port.
				p := tg.port()
				req := []byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, byte(p >> 8), byte(p)}
				got := readThrough(lport, req)
				// A reply of 5 0 (method) 5 0 (CONNECT succeeded) would
				// mean the tunnel is open.
				if strings.Contains(got, "secret") || (len(got) >= 4 && got[3] == 0) {
					t.Errorf("-D forward connected: %q", got)
				}
			})
			t.Run("-R", func(t *testing.T) {
				rport := freePort(t)
				cmd, stderr := e.background(t, "-R", "127.0.0.1:"+strconv.Itoa(rport)+":127.0.0.1:"+strconv.Itoa(tg.port()))
				done := make(chan struct{})
				go func() { cmd.Process.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Errorf("ssh -R still running: the server accepted the forward? %s", stderr)
				}
				if got := readThrough(rport, nil); strings.Contains(got, "secret") {
					t.Errorf("-R forward reached the target: %q", got)
				}
			})
			if n := tg.accepted.Load(); n != 0 {
				t.Errorf("the target got %d connections through sshd", n)
			}
		})
	}
}

package pivemu

// Tests of the PC/SC transport under piv-go: third_party/piv-go talks to
// pcscd over its socket in pure Go on Linux, instead of through cgo and
// libpcsclite. These run it against the real pcscd and the vpcd reader.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

const pivPackage = "github.com/go-piv/piv-go/v2/piv"

// TestTransportIsPureGo: with cgo available, piv-go itself still uses
// none: no package of it or its modules has cgo files, and piv imports
// neither C nor net. (The standard library's net, which crypto/x509 brings
// in, uses cgo unless CGO_ENABLED=0 or the netgo tag.)
func TestTransportIsPureGo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the pure-Go transport is Linux's")
	}
	gotool := testenv.NeedTool(t, "go", "golang-go")
	cmd := exec.Command(gotool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{len .CgoFiles}} {{.Imports}}", pivPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(line))
		pkg, std, cgoFiles, imports := f[0], f[1], f[2], f[3:]
		if std == "false" && cgoFiles != "0" {
			t.Errorf("%s has %s cgo files", pkg, cgoFiles)
		}
		if pkg == pivPackage {
			seen = true
			for _, imp := range imports {
				if imp == "C" || imp == "net" {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
	if !seen {
		t.Fatalf("go list did not list %s:\n%s", pivPackage, out)
	}
}

// TestTransportExclusive: a card is opened exclusively; a second open gets
// pcsc-lite's sharing violation, worded as before; the card is free again
// once closed, and listing readers works meanwhile.
func TestTransportExclusive(t *testing.T) {
	_, reader := Start(t, NewCard(Options{}))
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = piv.Open(reader)
	const busy = "connecting to smart card: the smart card cannot be accessed because of other connections outstanding"
	if err == nil || err.Error() != busy {
		t.Fatalf("second open: %v, want %q", err, busy)
	}
	cards, err := piv.Cards()
	if err != nil || !contains(cards, reader) {
		t.Fatalf("cards while open: %q, %v", cards, err)
	}
	if err := yk.Close(); err != nil {
		t.Fatal(err)
	}
	yk, err = piv.Open(reader)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if _, err := yk.Serial(); err != nil {
		t.Fatal(err)
	}
	if err := yk.Close(); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// TestTransportCardRemoved: a command to a card that was pulled out fails
// with one of pcsc-lite's texts for it (what signstar's backend matches),
// and closing the session does not hang.
func TestTransportCardRemoved(t *testing.T) {
	card := NewCard(Options{})
	e, reader := Start(t, card)
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	e.Remove()
	_, err = yk.Retries()
	gone := []string{
		"smart card has been removed",  // SCARD_W_REMOVED_CARD
		"scard response too short: 0",  // vpcd answers nothing
		"no Smart Card is currently",   // SCARD_E_NO_SMARTCARD
		"not currently available",      // SCARD_E_READER_UNAVAILABLE
		"smart card has been reset",    // SCARD_W_RESET_CARD
		"communications error with th", // SCARD_E_COMM_DATA_LOST
		"transaction",                  // SCARD_E_NOT_TRANSACTED
	}
	if err == nil || !containsAny(err.Error(), gone) {
		t.Fatalf("command to a removed card: %v", err)
	}
	t.Logf("removed card: %v", err)
	closed := make(chan error, 1)
	go func() { closed <- yk.Close() }()
	select {
	case err := <-closed:
		t.Logf("close after removal: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("closing a session whose card was removed hangs")
	}
	// A card put back is opened as usual.
	_, reader = Plug(t, card)
	yk, err = piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	yk.Close()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestTransportDescriptors: each context is one socket to pcscd, closed
// with it: many sessions leave no descriptor behind, and an open session
// holds exactly one more, a socket.
func TestTransportDescriptors(t *testing.T) {
	_, reader := Start(t, NewCard(Options{}))
	before := openFDs(t)
	for range 25 {
		if _, err := piv.Cards(); err != nil {
			t.Fatal(err)
		}
		yk, err := piv.Open(reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := yk.Serial(); err != nil {
			t.Fatal(err)
		}
		during := openFDs(t)
		if len(during) != len(before)+1 {
			t.Fatalf("an open session holds %d descriptors more, want 1: %q", len(during)-len(before), during)
		}
		for fd, target := range during {
			if _, ok := before[fd]; !ok && !strings.HasPrefix(target, "socket:") {
				t.Fatalf("the session's descriptor is %s, not a socket", target)
			}
		}
		if err := yk.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFDs(t); len(after) != len(before) {
		t.Fatalf("descriptors: %d before, %d after 25 sessions", len(before), len(after))
	}
}

func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Missing(t, "no /proc/self/fd")
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the directory's own descriptor, closed by now
		}
		fds[e.Name()] = target
	}
	return fds
}

//go:build linux

package sandbox

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var compiledPrograms = []struct {
	goarch string
	arch   uint32
}{
	{"amd64", unix.AUDIT_ARCH_X86_64},
	{"arm64", unix.AUDIT_ARCH_AARCH64},
}

func readProgram(t *testing.T, goarch string) []byte {
	t.Helper()
	prog, err := os.ReadFile("seccomp_" + goarch + ".bpf")
	if err != nil {
		t.Fatalf("%v: run go generate ./internal/sandbox", err)
	}
	return prog
}

// TestSeccompPIDPatch: in each compiled program the pid sentinel occurs
// exactly once, as the operand of a jeq, and the loader puts the pid there
// and changes nothing else.
func TestSeccompPIDPatch(t *testing.T) {
	for _, c := range compiledPrograms {
		prog := readProgram(t, c.goarch)
		var k [4]byte
		binary.LittleEndian.PutUint32(k[:], pidSentinel)
		if n := bytes.Count(prog, k[:]); n != 1 {
			t.Errorf("%s: the sentinel's bytes occur %d times, want 1", c.goarch, n)
		}
		const pid = 4194303
		f, err := seccompFilter(prog, c.arch, pid)
		if err != nil {
			t.Fatalf("%s: %v", c.goarch, err)
		}
		if len(f) != len(prog)/8 {
			t.Fatalf("%s: %d instructions from %d bytes", c.goarch, len(f), len(prog))
		}
		patched := 0
		for i, in := range f {
			raw := prog[8*i:]
			orig := unix.SockFilter{Code: binary.LittleEndian.Uint16(raw), Jt: raw[2], Jf: raw[3], K: binary.LittleEndian.Uint32(raw[4:])}
			if in == orig {
				continue
			}
			patched++
			if orig.K != pidSentinel || in.K != pid || in.Code != unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K || in.Jt != orig.Jt || in.Jf != orig.Jf {
				t.Errorf("%s: instruction %d %+v became %+v", c.goarch, i, orig, in)
			}
		}
		if patched != 1 {
			t.Errorf("%s: %d instructions changed, want 1", c.goarch, patched)
		}
	}
}

// TestSeccompEmbedded: the binary embeds the program for its architecture.
func TestSeccompEmbedded(t *testing.T) {
	for _, c := range compiledPrograms {
		if c.goarch != runtime.GOARCH {
			continue
		}
		if !bytes.Equal(seccompProgram, readProgram(t, c.goarch)) || seccompAuditArch != c.arch {
			t.Errorf("the embedded program is not seccomp_%s.bpf for arch %#x", c.goarch, c.arch)
		}
		if Check().SeccompArch != runtime.GOARCH {
			t.Errorf("Check().SeccompArch %q", Check().SeccompArch)
		}
		return
	}
	if seccompProgram != nil || Check().SeccompArch != "" || !strings.Contains(seccompMissing(CheckReport{Seccomp: true, TSync: true, SeccompActions: true}), runtime.GOARCH) {
		t.Errorf("linux/%s has a program, or says nothing about lacking one", runtime.GOARCH)
	}
}

// TestSeccompFilterRefuses: a program that is cut, too long, for another
// architecture, or without exactly one sentinel in a jeq is not loaded.
func TestSeccompFilterRefuses(t *testing.T) {
	good := readProgram(t, "amd64")
	at := -1
	for i := 0; i < len(good); i += 8 {
		if binary.LittleEndian.Uint32(good[i+4:]) == pidSentinel {
			at = i
		}
	}
	if at < 0 {
		t.Fatal("no sentinel")
	}
	edit := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name, want string
		prog       []byte
		arch       uint32
		pid        int
	}{
		{"empty", "0 bytes", nil, unix.AUDIT_ARCH_X86_64, 1},
		{"cut", "not 1 to", good[:len(good)-3], unix.AUDIT_ARCH_X86_64, 1},
		{"too long", "not 1 to", bytes.Repeat(good, bpfMaxInsns/(len(good)/8)+1), unix.AUDIT_ARCH_X86_64, 1},
		{"other arch", "architecture 0xc00000b7", good, unix.AUDIT_ARCH_AARCH64, 1},
		{"no arch test", "architecture", edit(func(p []byte) []byte { return p[8:] }), unix.AUDIT_ARCH_X86_64, 1},
		{"no sentinel", "does not occur", edit(func(p []byte) []byte {
			binary.LittleEndian.PutUint32(p[at+4:], 1234)
			return p
		}), unix.AUDIT_ARCH_X86_64, 1},
		{"two sentinels", "more than once", edit(func(p []byte) []byte {
			binary.LittleEndian.PutUint32(p[len(p)-4:], pidSentinel)
			return p
		}), unix.AUDIT_ARCH_X86_64, 1},
		{"sentinel not in jeq", "not of jeq", edit(func(p []byte) []byte {
			binary.LittleEndian.PutUint16(p[at:], unix.BPF_JMP|unix.BPF_JGT|unix.BPF_K)
			return p
		}), unix.AUDIT_ARCH_X86_64, 1},
		{"bad pid", "out of range", good, unix.AUDIT_ARCH_X86_64, 0},
	} {
		if _, err := seccompFilter(tc.prog, tc.arch, tc.pid); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestSeccompProbe: on this kernel (Linux 4.14 or later is assumed by the
// tests that lock down) the probe finds seccomp(2), TSYNC and the actions,
// and a simulated kernel without seccomp has none of them.
func TestSeccompProbe(t *testing.T) {
	c := Check()
	if !c.Seccomp || !c.TSync || !c.SeccompActions {
		t.Errorf("Check: seccomp %v, tsync %v, actions %v", c.Seccomp, c.TSync, c.SeccompActions)
	}
	s := CheckSimulating(Seccomp)
	if s.Seccomp || s.TSync || s.SeccompActions || s.SeccompArch != c.SeccompArch {
		t.Errorf("simulated: %+v", s)
	}
	if !strings.Contains(c.String(), "seccomp actions errno, kill-process: yes\n") {
		t.Errorf("report:\n%s", c)
	}
}

//go:build linux && cgo

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/sandbox"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// TestProgramsUpToDate: the committed programs are what libseccomp builds
// from the policy now, byte for byte.
func TestProgramsUpToDate(t *testing.T) {
	major, minor, micro := seccomp.GetLibraryVersion()
	for _, a := range arches {
		want, err := build(a.goarch)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "seccomp_"+a.goarch+".bpf")
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v: run go generate ./internal/sandbox", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s (%d instructions) is not what libseccomp %d.%d.%d builds from the policy in seccomp_rules_linux.go (%d instructions): run go generate ./internal/sandbox",
				path, len(got)/8, major, minor, micro, len(want)/8)
		}
	}
}

// TestPinsOnBothArches builds the sandbox package for the architecture this
// test does not run on, so that its constant pins (seccomp_pins_linux.go)
// hold on both: the programs for both are built with this machine's values.
func TestPinsOnBothArches(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the package")
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	// go test puts its own toolchain first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "no go command in PATH")
	}
	cmd := exec.Command(goTool, "build", "-o", os.DevNull, "github.com/signstar/signstar/internal/sandbox")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+other, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=%s go build ./internal/sandbox: %v\n%s", other, err, out)
	}
}

// TestProgramsBehave runs the committed programs in a classic BPF
// interpreter against the policy itself: every allowed call with arguments
// on both sides of each condition, clone3, calls the policy does not name,
// and other ABIs. It is the only test of the arm64 program on an amd64
// machine.
func TestProgramsBehave(t *testing.T) {
	p := sandbox.SeccompRules()
	for _, a := range arches {
		t.Run(a.goarch, func(t *testing.T) {
			prog, err := os.ReadFile(filepath.Join("..", "seccomp_"+a.goarch+".bpf"))
			if err != nil {
				t.Fatal(err)
			}
			arch, err := seccomp.GetArchFromString(a.scmp)
			if err != nil {
				t.Fatal(err)
			}
			audit := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[a.goarch]
			run := func(nr int32, auditArch uint32, args [6]uint64) uint32 {
				t.Helper()
				ret, err := interpret(prog, nr, auditArch, args)
				if err != nil {
					t.Fatal(err)
				}
				return ret
			}
			resolve := func(name string) (int32, bool) {
				sc, err := seccomp.GetSyscallFromNameByArch(name, arch)
				if err != nil || sc < 0 {
					if !p.ArchOptional[name] {
						t.Fatalf("%s does not resolve on %s", name, a.goarch)
					}
					return 0, false
				}
				return int32(sc), true
			}

			named := map[int32]bool{}
			clone3, _ := resolve("clone3")
			named[clone3] = true
			if got := run(clone3, audit, [6]uint64{}); got != p.Clone3Action {
				t.Errorf("clone3: %#x, want %#x", got, p.Clone3Action)
			}
			checks := 0
			for _, r := range p.Allow {
				nr, ok := resolve(r.Name)
				if !ok {
					continue
				}
				named[nr] = true
				for _, args := range argVariants(r.Conds) {
					want := expect(p, r.Name, args)
					if got := run(nr, audit, args); got != want {
						t.Errorf("%s(%#x): %#x, want %#x", r.Name, args, got, want)
					}
					checks++
				}
			}
			for nr := int32(0); nr < 600; nr++ {
				if named[nr] {
					continue
				}
				if got := run(nr, audit, [6]uint64{}); got != p.DefaultAction {
					t.Errorf("syscall %d, which the policy does not name: %#x, want %#x", nr, got, p.DefaultAction)
				}
				checks++
			}
			for _, other := range []uint32{unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM} {
				if other == audit {
					continue
				}
				if got := run(0, other, [6]uint64{}); got != p.BadArchAction {
					t.Errorf("arch %#x: %#x, want %#x", other, got, p.BadArchAction)
				}
			}
			if a.goarch == "amd64" {
				// x32 shares x86_64's audit arch, with bit 30 set in the
				// number.
				if got := run(0x40000000, audit, [6]uint64{}); got != p.BadArchAction {
					t.Errorf("x32 read: %#x, want %#x", got, p.BadArchAction)
				}
			}
			t.Logf("%d instructions, %d calls checked", len(prog)/8, checks)
		})
	}
}

// argVariants are argument vectors around conds: all of them met, with and
// without bits outside their masks, and each one broken in a bit inside its
// mask, low word and high word apart.
func argVariants(conds []sandbox.SeccompCond) [][6]uint64 {
	if len(conds) == 0 {
		return [][6]uint64{{}}
	}
	var base [6]uint64
	for _, c := range conds {
		base[c.Arg] = c.Value
	}
	out := [][6]uint64{{}, base}
	noise := base
	for _, c := range conds {
		noise[c.Arg] |= ^c.Mask & 0x0000_0100_0000_0010
	}
	out = append(out, noise)
	for _, c := range conds {
		for _, bit := range []uint64{c.Mask & -c.Mask, c.Mask & (1 << 32), c.Mask & (1 << 63)} {
			if bit == 0 {
				continue
			}
			v := base
			v[c.Arg] ^= bit
			out = append(out, v)
		}
	}
	return out
}

// expect is what the policy says about name(args).
func expect(p sandbox.SeccompPolicy, name string, args [6]uint64) uint32 {
	for _, r := range p.Allow {
		if r.Name != name {
			continue
		}
		ok := true
		for _, c := range r.Conds {
			ok = ok && args[c.Arg]&c.Mask == c.Value
		}
		if ok {
			return unix.SECCOMP_RET_ALLOW
		}
	}
	return p.DefaultAction
}

// interpret runs a seccomp classic BPF program on struct seccomp_data
// (little-endian, as on amd64 and arm64).
func interpret(prog []byte, nr int32, arch uint32, args [6]uint64) (uint32, error) {
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	n := len(prog) / 8
	if n == 0 || len(prog)%8 != 0 {
		return 0, fmt.Errorf("program of %d bytes", len(prog))
	}
	var acc, x uint32
	var mem [16]uint32
	for pc := 0; pc < n; pc++ {
		in := prog[8*pc:]
		code, jt, jf, k := binary.LittleEndian.Uint16(in), int(in[2]), int(in[3]), binary.LittleEndian.Uint32(in[4:])
		src := k
		if code&unix.BPF_X != 0 {
			src = x
		}
		switch code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if k%4 != 0 || k+4 > uint32(len(data)) {
				return 0, fmt.Errorf("%d: load at %d", pc, k)
			}
			acc = binary.LittleEndian.Uint32(data[k:])
		case unix.BPF_LD | unix.BPF_IMM:
			acc = k
		case unix.BPF_LDX | unix.BPF_IMM:
			x = k
		case unix.BPF_LD | unix.BPF_MEM, unix.BPF_LDX | unix.BPF_MEM, unix.BPF_ST, unix.BPF_STX:
			if k >= uint32(len(mem)) {
				return 0, fmt.Errorf("%d: scratch %d", pc, k)
			}
			switch code {
			case unix.BPF_LD | unix.BPF_MEM:
				acc = mem[k]
			case unix.BPF_LDX | unix.BPF_MEM:
				x = mem[k]
			case unix.BPF_ST:
				mem[k] = acc
			default:
				mem[k] = x
			}
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_ALU | unix.BPF_AND | unix.BPF_X:
			acc &= src
		case unix.BPF_ALU | unix.BPF_OR | unix.BPF_K, unix.BPF_ALU | unix.BPF_OR | unix.BPF_X:
			acc |= src
		case unix.BPF_MISC | unix.BPF_TAX:
			x = acc
		case unix.BPF_MISC | unix.BPF_TXA:
			acc = x
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(k)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_X,
			unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_X,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_X,
			unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_X:
			var cond bool
			switch code &^ unix.BPF_X {
			case unix.BPF_JMP | unix.BPF_JEQ:
				cond = acc == src
			case unix.BPF_JMP | unix.BPF_JGT:
				cond = acc > src
			case unix.BPF_JMP | unix.BPF_JGE:
				cond = acc >= src
			default:
				cond = acc&src != 0
			}
			if cond {
				pc += jt
			} else {
				pc += jf
			}
		case unix.BPF_RET | unix.BPF_K:
			return k, nil
		case unix.BPF_RET | unix.BPF_A:
			return acc, nil
		default:
			return 0, fmt.Errorf("%d: opcode %#x", pc, code)
		}
	}
	return 0, fmt.Errorf("ran off the end of the program")
}

//go:build linux && cgo

// Command seccompgen compiles signstar's seccomp policy
// (sandbox.SeccompRules) with libseccomp into the classic BPF programs that
// the sandbox package embeds and loads: seccomp_amd64.bpf and
// seccomp_arm64.bpf, each the raw struct sock_filter array that
// seccomp_export_bpf writes. It runs from go generate in internal/sandbox
// (with -tags seccompgen, so the package builds without the programs):
//
//	go generate ./internal/sandbox
//
// The output depends on the libseccomp version; the tests in this package
// fail when the committed programs differ from what it builds.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/sandbox"
)

// arches are the GOARCH values with a compiled program, and libseccomp's
// names for them.
var arches = []struct{ goarch, scmp string }{
	{"amd64", "amd64"},
	{"arm64", "arm64"},
}

func main() {
	dir := flag.String("dir", ".", "directory to write seccomp_GOARCH.bpf to")
	flag.Parse()
	if err := generate(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "seccompgen: %v\n", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	for _, a := range arches {
		prog, err := build(a.goarch)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, "seccomp_"+a.goarch+".bpf"), prog); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces path whole or not at all: the sandbox package does not
// build without the programs.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seccompgen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// build compiles the policy for goarch into a sock_filter array.
func build(goarch string) ([]byte, error) {
	// The policy's unix constants are this machine's; the sandbox package
	// pins them to values shared by amd64 and arm64, but only builds
	// those pins on these two.
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return nil, fmt.Errorf("run on linux/amd64 or linux/arm64, not %s", runtime.GOARCH)
	}
	var scmpName string
	for _, a := range arches {
		if a.goarch == goarch {
			scmpName = a.scmp
		}
	}
	if scmpName == "" {
		return nil, fmt.Errorf("no program for %s", goarch)
	}
	arch, err := seccomp.GetArchFromString(scmpName)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", goarch, err)
	}
	native, err := seccomp.GetNativeArch()
	if err != nil {
		return nil, err
	}
	p := sandbox.SeccompRules()
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf(goarch+": "+format, args...)
	}

	def, err := action(p.DefaultAction)
	if err != nil {
		return fail("default action: %v", err)
	}
	f, err := seccomp.NewFilter(def)
	if err != nil {
		return fail("%v", err)
	}
	defer f.Release()
	// One architecture per program: the loader embeds the one for
	// GOARCH, and any other ABI gets the bad-arch action.
	if arch != native {
		if err := f.AddArch(arch); err != nil {
			return fail("add arch: %v", err)
		}
		if err := f.RemoveArch(native); err != nil {
			return fail("remove arch %s: %v", native, err)
		}
	}
	badArch, err := action(p.BadArchAction)
	if err != nil {
		return fail("bad-arch action: %v", err)
	}
	if err := f.SetBadArchAction(badArch); err != nil {
		return fail("bad-arch action: %v", err)
	}

	// syscall resolves name on the target; a name it lacks is skipped when
	// optional. libseccomp's rule calls take the number on this machine,
	// not the target's, and translate it through the name (AddRule of
	// arm64's read, 63, on amd64 allows arm64's uname), so that is what
	// they are given.
	syscall := func(name string, optional bool) (seccomp.ScmpSyscall, bool, error) {
		sc, err := seccomp.GetSyscallFromNameByArch(name, arch)
		if err == nil && sc < 0 {
			err = seccomp.ErrSyscallDoesNotExist
		}
		if err != nil {
			if optional {
				return 0, false, nil
			}
			return 0, false, fmt.Errorf("%s: %v", name, err)
		}
		nsc, err := seccomp.GetSyscallFromName(name)
		if err != nil {
			return 0, false, fmt.Errorf("%s on %s: %v", name, native, err)
		}
		return nsc, true, nil
	}

	clone3, _, err := syscall("clone3", false)
	if err != nil {
		return fail("%v", err)
	}
	clone3Action, err := action(p.Clone3Action)
	if err != nil {
		return fail("clone3 action: %v", err)
	}
	if err := f.AddRule(clone3, clone3Action); err != nil {
		return fail("clone3: %v", err)
	}
	for _, r := range p.Allow {
		sc, ok, err := syscall(r.Name, p.ArchOptional[r.Name])
		if err != nil {
			return fail("%v", err)
		}
		if !ok {
			continue
		}
		if len(r.Conds) == 0 {
			err = f.AddRule(sc, seccomp.ActAllow)
		} else {
			conds := make([]seccomp.ScmpCondition, len(r.Conds))
			for i, c := range r.Conds {
				conds[i], err = seccomp.MakeCondition(c.Arg, seccomp.CompareMaskedEqual, c.Mask, c.Value)
				if err != nil {
					return fail("%s: %v", r.Name, err)
				}
			}
			err = f.AddRuleConditional(sc, seccomp.ActAllow, conds)
		}
		if err != nil {
			return fail("%s: %v", r.Name, err)
		}
	}

	out, err := os.CreateTemp("", "seccompgen-*.bpf")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	if err := f.ExportBPF(out); err != nil {
		return fail("export: %v", err)
	}
	prog, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, err
	}
	// The loader refuses a program without exactly one sentinel; say so
	// now rather than at the first signature.
	if n := sentinels(prog, p.PIDSentinel); n != 1 {
		return fail("the pid sentinel %#x occurs %d times in the program, want 1", p.PIDSentinel, n)
	}
	return prog, nil
}

// sentinels counts the instructions of prog whose operand is s.
func sentinels(prog []byte, s uint32) int {
	n := 0
	for i := 0; i+8 <= len(prog); i += 8 {
		if binary.LittleEndian.Uint32(prog[i+4:]) == s {
			n++
		}
	}
	return n
}

// action turns a SECCOMP_RET_* value into libseccomp's action.
func action(ret uint32) (seccomp.ScmpAction, error) {
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW:
		return seccomp.ActAllow, nil
	case unix.SECCOMP_RET_ERRNO:
		return seccomp.ActErrno.SetReturnCode(int16(ret & unix.SECCOMP_RET_DATA)), nil
	case unix.SECCOMP_RET_KILL_PROCESS:
		return seccomp.ActKillProcess, nil
	}
	return 0, fmt.Errorf("action %#x is not one seccompgen knows", ret)
}

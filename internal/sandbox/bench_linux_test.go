//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

const benchChild = "bench"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == benchChild {
		os.Exit(lockdownTimed())
	}
	os.Exit(m.Run())
}

// lockdownTimed is the benchmark's child: it opens what signstar opens,
// locks down in enforce mode and prints how long Lockdown took.
func lockdownTimed() int {
	if err := Harden(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := audit.Open(os.Getenv("SB_LOG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	_, err = Lockdown(Options{Mode: Enforce, KeepFDs: l.FDs(), AppendFDs: l.AppendFDs()})
	d := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("LOCKDOWN_NS=%d\n", d.Nanoseconds())
	return 0
}

// BenchmarkLockdown measures Lockdown (fds, limits, no_new_privs, Landlock,
// seccomp with TSYNC) in fresh child processes; ns/op is the time inside
// Lockdown only, not the process start. The target is under 2 ms.
func BenchmarkLockdown(b *testing.B) {
	logPath := filepath.Join(b.TempDir(), "audit.jsonl")
	var total time.Duration
	runs := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+benchChild, "SB_LOG="+logPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "LOCKDOWN_NS=")
		ns, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			b.Fatalf("child printed %q", out)
		}
		total += time.Duration(ns)
		runs = append(runs, time.Duration(ns))
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	// The median too: on a loaded machine a few children wait for a CPU
	// in the middle of the all-thread psx round, and the mean shows them.
	slices.Sort(runs)
	b.ReportMetric(float64(runs[len(runs)/2].Nanoseconds()), "median-ns")
}

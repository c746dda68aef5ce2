package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/signstar/signstar/internal/backend/tpm"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/request"
	"github.com/signstar/signstar/internal/sandbox"
)

// simulatedParts are the sandbox parts a test build treats as missing
// (sandboxSimulate, hooks_testhooks.go); none in a release binary.
func simulatedParts() sandbox.Parts {
	var p sandbox.Parts
	for _, w := range strings.Split(sandboxSimulate, ",") {
		switch w {
		case "landlock":
			p |= sandbox.Landlock
		case "seccomp":
			p |= sandbox.Seccomp
		}
	}
	return p
}

// hardenProcess runs first in every mode: no core dumps, not dumpable, no
// inherited descriptors beyond 0, 1 and 2. If it cannot, signstar stops: a
// key could end up in a core file.
func hardenProcess() {
	if err := sandbox.Harden(); err != nil {
		fmt.Fprintf(os.Stderr, "signstar: %s\n", oneLine(err.Error()))
		os.Exit(exitFailed)
	}
}

// sandboxCmd is `signstar sandbox check`: what this kernel offers, and
// whether the configured mode can be met (exit 0) or not (exit 1, the report
// on stderr since stdout stays empty on failure).
func (r *run) sandboxCmd(args []string) int {
	if len(args) != 1 || args[0] != "check" {
		return r.fail(exitRefused, "usage: signstar [--config P] sandbox check")
	}
	cfg, err := config.Load(r.inv.configPath)
	if err != nil {
		return r.fail(exitFailed, err.Error())
	}
	c := sandbox.CheckSimulating(simulatedParts())
	mode := cfg.Sandbox.Mode
	report := c.String() + tpmReport(cfg) + "mode: " + mode + " (" + cfg.Path + ")\n"
	if c.CanMeet(mode) {
		return r.output([]byte(report))
	}
	for _, l := range strings.Split(strings.TrimSpace(report), "\n") {
		fmt.Fprintf(r.stderr, "signstar: %s\n", l)
	}
	return r.fail(exitFailed, fmt.Sprintf("sandbox mode %q cannot be met on this kernel: signing will be refused; fix the kernel or set [sandbox] mode = \"best-effort\"", mode))
}

// tpmReport has a line for each tpm profile: whether its TPM opens and
// answers as signing will use it (tpm.Check). A TPM that does not is
// reported, not fatal here: it fails that profile's signing, not the
// sandbox.
func tpmReport(cfg *config.Config) string {
	var b strings.Builder
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if p.Backend != config.BackendTPM {
			continue
		}
		line, err := tpm.Check(request.TPMOptions(p))
		if err != nil {
			line = "CANNOT SIGN: " + oneLine(err.Error())
		}
		fmt.Fprintf(&b, "tpm: profile %s: %s\n", p.Name, line)
	}
	return b.String()
}

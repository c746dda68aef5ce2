package main

import (
	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/config"
)

// hardenProcess runs first in every mode: no core dumps, not dumpable.
//
// Hook for the sandbox owner.
func hardenProcess() {}

// lockdown applies the sandbox after the config, audit log and backend are
// open and before stdin is read. It returns the audit record's sandbox field
// ("landlock=7,seccomp,nnp") and an error when cfg.Sandbox.Mode is enforce
// and any part could not be applied.
//
// Hook for the sandbox owner.
func lockdown(cfg *config.Config, log *audit.Log) (string, error) {
	if cfg.Sandbox.Mode == config.SandboxEnforce {
		return "none", errSandboxMissing
	}
	return "none", nil
}

var errSandboxMissing = sandboxError("sandbox mode enforce: this signstar has no sandbox; set [sandbox] mode = \"best-effort\" to sign without one")

type sandboxError string

func (e sandboxError) Error() string { return string(e) }

// sandboxCmd is `signstar sandbox check`.
func (r *run) sandboxCmd(args []string) int {
	return r.fail(exitFailed, "sandbox check: no sandbox in this signstar")
}

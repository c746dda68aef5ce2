package main

import (
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/request"
)

// serve hands a request whose log is open to the pipeline
// (internal/request) and turns its result into stderr and an exit code.
func (r *run) serve(cfg *config.Config) int {
	rq := &request.Request{
		Config:        cfg,
		Log:           r.log,
		Caller:        request.CurrentCaller(r.getenv),
		Command:       r.commandText(),
		ServerProfile: r.inv.serverProfile,
		Remote:        r.inv.remote,
		Stdin:         r.stdin,
		Stdout:        r.stdout,
		Now:           now,
		Simulate:      simulatedParts(),
		Idle:          overridden(request.IdleTimeout, idleTimeoutForTests),
		SignalGrace:   overridden(request.SignalGrace, signalGraceForTests),
	}
	if r.stderrFD > 2 {
		rq.KeepFDs = []int{r.stderrFD} // a remote process's own stderr (quietRuntime)
	}
	if crashForTests != "" {
		rq.Lockdown = lockdownForTests
	}
	r.rq = rq
	if r.inv.refusal != "" {
		return r.report(rq.Refuse(request.RefusedCommand, r.inv.refusal))
	}
	var req *command.Request
	var err error
	if r.inv.remote {
		req, err = command.ParseRemote(r.inv.command)
	} else {
		req, err = command.ParseWords(r.inv.words, false)
	}
	if err != nil {
		return r.report(rq.Refuse(request.RefusedCommand, err.Error()))
	}
	if r.inv.remote && request.IsTerminal(r.stdin) {
		return r.report(rq.Refuse(request.RefusedTerminal, "stdin is a terminal: pipe the artifact in (ssh signer@host < FILE > FILE.sig)"))
	}
	switch req.Name {
	case command.Version:
		return r.output([]byte("signstar " + Version + "\n"))
	case command.Pubkey:
		return r.report(rq.Pubkey(req))
	case command.Checkpoint:
		return r.report(rq.Checkpoint(req))
	case command.Proof:
		return r.report(rq.Proof(req))
	}
	return r.report(rq.Sign(req))
}

// report says a request's result: its line on stderr, its output on stdout
// (a certificate; a signature is already written), its exit code.
func (r *run) report(res request.Result) int {
	if res.Message != "" {
		fmt.Fprintf(r.stderr, "signstar: %s\n", res.Message)
	}
	if res.Output != nil && res.Exit == exitOK {
		return r.output(res.Output)
	}
	return res.Exit
}

// overridden is d, or the duration a test set (hooks_testhooks.go).
func overridden(d time.Duration, forTests string) time.Duration {
	if t, err := time.ParseDuration(forTests); err == nil {
		return t
	}
	return d
}

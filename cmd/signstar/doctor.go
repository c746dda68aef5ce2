package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/doctor"
	"github.com/signstar/signstar/internal/request"
	"github.com/signstar/signstar/internal/sandbox"
)

// doctor is `signstar doctor [--sshd-config F]` (local only): it checks the
// deployment (internal/doctor) and prints one line per finding, with its
// fix, on stderr; exit 0 only when there is none.
func (r *run) doctor(args []string) int {
	f, pos, err := flags(spec("doctor"), args)
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err != nil {
		return r.fail(exitRefused, "doctor: "+err.Error()+": use "+synopsis("doctor"))
	}
	if os.Geteuid() != 0 {
		return r.fail(exitFailed, "doctor needs root: it reads the keys, runs sshd -T and opens every profile's backend; run it with sudo")
	}
	// Untrusted: doctor reports each owner and mode problem itself rather
	// than stopping at the first, as signing does.
	cfg, err := config.LoadUntrusted(r.inv.configPath)
	if err != nil {
		return r.fail(exitFailed, "doctor: "+err.Error())
	}
	rep := doctor.Run(doctor.Options{
		Config:     cfg,
		SSHDConfig: f["--sshd-config"],
		OpenBackend: func(p *config.Profile) error {
			return request.CheckBackend(p, now())
		},
		Sandbox: func(mode string) (bool, string) {
			c := sandbox.CheckSimulating(simulatedParts())
			var missing []string
			for _, m := range c.Missing {
				missing = append(missing, m.String())
			}
			return c.CanMeet(mode), strings.Join(missing, "; ")
		},
		VerifyLog: verifyLogFile,
	})
	for _, finding := range rep.Findings {
		fmt.Fprintf(r.stderr, "signstar: doctor: %s\n", oneLine(finding.String()))
	}
	if n := len(rep.Findings); n > 0 {
		return r.fail(exitFailed, fmt.Sprintf("doctor: %d finding(s) in the deployment of %s: fix them and run signstar doctor again", n, cfg.Path))
	}
	return r.output([]byte("ok: " + strings.Join(rep.Checked, ", ") + ": nothing wrong in " + cfg.Path + "\n"))
}

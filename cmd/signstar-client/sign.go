package main

import (
	"fmt"

	"github.com/signstar/signstar/internal/client"
)

// sign: signstar-client sign [--host [USER@]HOST] [--armor] FILE...
func (r *run) sign(args []string) int {
	opts, files, err := flags(args, []string{"--host"}, []string{"--armor"})
	if err != nil {
		return r.usage("sign: " + err.Error())
	}
	if len(files) == 0 {
		return r.usage("sign: name the files to sign")
	}
	s, code := r.signer(opts["--host"])
	if s == nil {
		return code
	}
	_, armor := opts["--armor"]
	res, err := s.Sign(r.ctx, &client.Request{Paths: files, Armor: armor})
	if err != nil {
		return r.fail(err)
	}
	for _, x := range res {
		fmt.Fprintln(r.stdout, x.Out)
	}
	return exitOK
}

// signer loads the configuration and the pinned certificate.
func (r *run) signer(host string) (*client.Signer, int) {
	cfg, err := r.config(host)
	if err != nil {
		return nil, r.fail(err)
	}
	pinned, err := client.LoadPinned(cfg)
	if err != nil {
		return nil, r.fail(err)
	}
	remote := client.NewRemote(cfg, nil)
	return &client.Signer{Config: cfg, Remote: remote, Pinned: pinned, Witness: client.NewWitness(cfg, remote)}, exitOK
}

// pin: signstar-client pin [--host [USER@]HOST]
func (r *run) pin(args []string) int {
	opts, rest, err := flags(args, []string{"--host"}, nil)
	if err != nil {
		return r.usage("pin: " + err.Error())
	}
	if len(rest) != 0 {
		return r.usage(fmt.Sprintf("pin: unexpected argument %q", rest[0]))
	}
	cfg, err := r.config(opts["--host"])
	if err != nil {
		return r.fail(err)
	}
	res, err := client.Pin(r.ctx, cfg, client.NewRemote(cfg, nil))
	if err != nil {
		return r.fail(err)
	}
	what := "pinned"
	if !res.New {
		what = "already pinned"
	}
	fmt.Fprintf(r.stdout, "%s: %s %s\n", what, res.Pinned.Fingerprint(), res.Pinned.Path)
	return exitOK
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/keygen"
)

// flags is a tiny parser for the local commands: --name value pairs and
// nothing else, so that every mistake is a clear refusal.
func flags(args []string, names ...string) (map[string]string, []string, error) {
	out := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		known := false
		for _, n := range names {
			known = known || n == name
		}
		if !known {
			return nil, nil, fmt.Errorf("unknown option %s", name)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("option %s needs a value", name)
			}
			i++
			val = args[i]
		}
		if _, dup := out[name]; dup {
			return nil, nil, fmt.Errorf("option %s given twice", name)
		}
		out[name] = val
	}
	return out, pos, nil
}

func (r *run) keygen(args []string) int {
	f, pos, err := flags(args, "--uid", "--out", "--algo")
	if err != nil || len(pos) > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", pos[0])
		}
		return r.fail(exitRefused, "keygen: "+err.Error()+`: use keygen --uid "Name <mail>" --out FILE [--algo ed25519|rsa3072|rsa4096]`)
	}
	if f["--uid"] == "" || f["--out"] == "" {
		return r.fail(exitRefused, `keygen needs --uid "Name <mail>" and --out FILE`)
	}
	algo := f["--algo"]
	if algo == "" {
		algo = "ed25519"
	}
	pub, err := keygen.Generate(f["--uid"], algo, f["--out"], now())
	if err != nil {
		var ue *keygen.UsageError
		if errors.As(err, &ue) {
			return r.fail(exitRefused, "keygen: "+err.Error())
		}
		return r.fail(exitFailed, "keygen: "+err.Error())
	}
	return r.output(pub)
}

func (r *run) auditCmd(args []string) int {
	if len(args) == 0 || args[0] != "verify" || len(args) > 2 {
		return r.fail(exitRefused, "usage: signstar [--config P] audit verify [FILE]")
	}
	path := ""
	if len(args) == 2 {
		path = args[1]
	} else {
		cfg, err := config.Load(r.inv.configPath)
		if err != nil {
			return r.fail(exitFailed, err.Error())
		}
		path = cfg.Audit.Path
	}
	f, err := os.Open(path)
	if err != nil {
		return r.fail(exitFailed, "audit verify: "+err.Error())
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		return r.fail(exitFailed, fmt.Sprintf("audit verify: %s: %v", path, err))
	}
	return r.output([]byte(fmt.Sprintf("ok: %d records\n", n)))
}

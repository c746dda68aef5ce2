package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/keygen"
)

// flags is a tiny parser for the local commands: the options of the
// command's entry in command.Commands, --name value pairs and switches,
// nothing else, so that every mistake is a clear refusal. A switch's value
// is "true".
func flags(spec *command.Spec, args []string) (map[string]string, []string, error) {
	out := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		f := spec.Flag(name)
		if f == nil {
			return nil, nil, fmt.Errorf("unknown option %s", name)
		}
		switch {
		case f.Value == "" && hasVal:
			return nil, nil, fmt.Errorf("option %s takes no value", name)
		case f.Value == "":
			val = "true"
		case !hasVal:
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

// spec is the command's entry in the table; every local command has one.
func spec(name string) *command.Spec {
	s := command.Lookup(name)
	if s == nil {
		panic("signstar: no command table entry for " + name)
	}
	return s
}

// synopsis is the command's usage line, for refusals.
func synopsis(name string) string { return spec(name).Synopsis() }

func (r *run) keygen(args []string) int {
	f, pos, err := flags(spec("keygen"), args)
	if err != nil || len(pos) > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", pos[0])
		}
		return r.fail(exitRefused, "keygen: "+err.Error()+": use "+synopsis("keygen"))
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
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return r.auditKeygen(args[1:])
		case "checkpoint":
			return r.auditCheckpoint(args[1:])
		}
	}
	if len(args) == 0 || (args[0] != "verify" && args[0] != "rebuild") || len(args) > 2 {
		var usage []string
		for _, c := range command.Commands {
			if c.Name == "audit" {
				usage = append(usage, c.Synopsis())
			}
		}
		return r.fail(exitRefused, "usage: signstar [--config P] "+strings.Join(usage, " | "))
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
	if args[0] == "rebuild" {
		res, err := audit.Rebuild(path, 30*time.Second)
		if err != nil {
			return r.fail(exitFailed, "audit rebuild: "+err.Error())
		}
		how := func(replaced bool, appended int, what string) string {
			switch {
			case replaced:
				return "written anew"
			case appended > 0:
				return fmt.Sprintf("%d %s appended", appended, what)
			}
			return "agreed already"
		}
		return r.output([]byte(fmt.Sprintf("ok: %d records indexed in %s (%s), tree in %s (%s)\n", res.Records, res.Path, how(res.Replaced, res.Appended, "entries"), res.TreePath, how(res.TreeReplaced, res.TreeAppended, "hashes"))))
	}
	n, err := verifyLogFile(path)
	if err != nil {
		return r.fail(exitFailed, "audit verify: "+err.Error())
	}
	return r.output([]byte(fmt.Sprintf("ok: %d records\n", n)))
}

// verifyLogFile checks the audit log at path and returns its number of
// records; the error names the path.
func verifyLogFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", path, err)
	}
	return n, nil
}

// auditKeygen is `audit keygen --origin NAME --out FILE`: a new note key
// for the log's checkpoints, its verifier key on stdout.
func (r *run) auditKeygen(args []string) int {
	sp := command.LookupWord("audit keygen")
	f, pos, err := flags(sp, args)
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err == nil && (f["--origin"] == "" || f["--out"] == "") {
		err = errors.New("--origin and --out are required")
	}
	if err != nil {
		return r.fail(exitRefused, "audit keygen: "+err.Error()+": use "+sp.Synopsis())
	}
	skey, vkey, err := audit.NewCheckpointKey(f["--origin"])
	if err != nil {
		return r.fail(exitRefused, "audit keygen: "+err.Error())
	}
	out := f["--out"]
	fh, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return r.fail(exitFailed, "audit keygen: cannot create "+out+": "+errors.Unwrap(err).Error()+" (an existing key is never overwritten)")
	}
	_, err = fh.WriteString(skey + "\n")
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return r.fail(exitFailed, "audit keygen: cannot write "+out+": "+err.Error())
	}
	return r.output([]byte(vkey + "\n"))
}

// auditCheckpoint is `audit checkpoint`: the log's signed checkpoint, read
// and signed locally, not recorded.
func (r *run) auditCheckpoint(args []string) int {
	if len(args) > 0 {
		return r.fail(exitRefused, fmt.Sprintf("audit checkpoint: unexpected argument %q: use %s", args[0], command.LookupWord("audit checkpoint").Synopsis()))
	}
	cfg, err := config.Load(r.inv.configPath)
	if err != nil {
		return r.fail(exitFailed, err.Error())
	}
	if cfg.Audit.CheckpointKey == "" {
		return r.fail(exitFailed, "audit checkpoint: this log has no checkpoint key: set [audit] origin and checkpoint_key in "+cfg.Path+" (signstar audit keygen makes the key)")
	}
	key, err := audit.ReadCheckpointKey(cfg.Audit.CheckpointKey, cfg.Audit.Origin)
	if err != nil {
		return r.fail(exitFailed, "audit checkpoint: "+err.Error())
	}
	l, err := audit.Open(cfg.Audit.Path)
	if err != nil {
		return r.fail(exitFailed, "audit checkpoint: "+err.Error())
	}
	defer l.Close()
	tx, err := l.Lock()
	if err != nil {
		return r.fail(exitFailed, "audit checkpoint: "+err.Error())
	}
	n := tx.TreeSize()
	root, err := tx.TreeRoot(n)
	tx.Unlock()
	if err != nil {
		return r.fail(exitFailed, "audit checkpoint: "+err.Error())
	}
	cp, err := audit.SignCheckpoint(audit.Checkpoint{Origin: cfg.Audit.Origin, Size: n, Root: root}, key)
	if err != nil {
		return r.fail(exitFailed, "audit checkpoint: "+err.Error())
	}
	return r.output(cp)
}

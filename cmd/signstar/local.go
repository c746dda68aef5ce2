package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

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
	if f["--certify-passphrase-file"] != "" && f["--certify-with"] == "" {
		return r.fail(exitRefused, "keygen: --certify-passphrase-file needs --certify-with")
	}
	g, err := keygen.Generate(keygen.Options{
		UID: f["--uid"], Algo: algo, Out: f["--out"], Revocation: f["--revocation"],
		CertifyWith: f["--certify-with"], CertifyPassphraseFile: f["--certify-passphrase-file"], Now: now(),
	})
	if err != nil {
		var ue *keygen.UsageError
		if errors.As(err, &ue) {
			return r.fail(exitRefused, "keygen: "+err.Error())
		}
		return r.fail(exitFailed, "keygen: "+err.Error())
	}
	msg := "keygen: revocation certificate in " + g.Revocation + ": keep it offline"
	if g.CertifiedBy != "" {
		msg += "; the certificate on stdout is certified by " + g.CertifiedBy
	}
	fmt.Fprintf(r.stderr, "signstar: %s\n", msg)
	return r.output(g.Public)
}

func (r *run) auditCmd(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return r.auditKeygen(args[1:])
		case "checkpoint":
			return r.auditCheckpoint(args[1:])
		case "verify":
			return r.auditVerify(args[1:])
		case "check-proof":
			return r.auditCheckProof(args[1:])
		case "rotate":
			return r.auditRotate(args[1:])
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
	return exitRefused // not reached: verify is auditVerify's
}

// verifyLogFile checks the audit log at path, chain, tree and notations
// (audit.VerifyLogs), and returns its number of records; the error names
// the path.
func verifyLogFile(path string) (int, error) {
	res, err := audit.VerifyLogs([]string{path}, audit.TreeCheck{})
	if err != nil {
		var fe *audit.FileError
		if errors.As(err, &fe) {
			return 0, err
		}
		return 0, fmt.Errorf("%s: %v", path, err)
	}
	return int(res.Records), nil
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

// auditVerify is `audit verify [--checkpoint FILE] [--verifier KEY]
// [--signatures SIG...] [--] [LOG...]`.
func (r *run) auditVerify(args []string) int {
	sp := command.LookupWord("audit verify")
	usage := func(msg string) int {
		return r.fail(exitRefused, "audit verify: "+msg+": use "+sp.Synopsis())
	}
	var logs, sigs []string
	opts := map[string]string{}
	inSigs, sawSigs := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case a == "--":
			logs = append(logs, args[i+1:]...)
			i = len(args)
		case name == "--signatures":
			if hasVal || sawSigs {
				return usage("--signatures takes the files after it, once")
			}
			inSigs, sawSigs = true, true
		case name == "--checkpoint" || name == "--verifier":
			if _, dup := opts[name]; dup {
				return usage("option " + name + " given twice")
			}
			if !hasVal {
				if i+1 >= len(args) {
					return usage("option " + name + " needs a value")
				}
				i++
				val = args[i]
			}
			opts[name] = val
			inSigs = false
		case strings.HasPrefix(a, "-"):
			return usage(fmt.Sprintf("unknown option %s", name))
		case inSigs:
			sigs = append(sigs, a)
		default:
			logs = append(logs, a)
		}
	}
	if sawSigs && len(sigs) == 0 {
		return usage("--signatures needs at least one SIG")
	}
	var cfg *config.Config
	loadConfig := func() error {
		if cfg != nil {
			return nil
		}
		var err error
		cfg, err = config.Load(r.inv.configPath)
		return err
	}
	var chk audit.TreeCheck
	if cpFile := opts["--checkpoint"]; cpFile != "" {
		v, err := r.verifier(opts["--verifier"], loadConfig, func() *config.Config { return cfg })
		if err != nil {
			return r.fail(exitFailed, "audit verify: "+err.Error())
		}
		b, err := os.ReadFile(cpFile)
		if err != nil {
			return r.fail(exitFailed, "audit verify: cannot read the checkpoint: "+errText(err))
		}
		cp, err := audit.OpenCheckpoint(b, v)
		if err != nil {
			return r.fail(exitFailed, "audit verify: "+cpFile+": "+err.Error())
		}
		chk.Checkpoint = &cp
	} else if opts["--verifier"] != "" {
		return usage("--verifier checks --checkpoint, which is missing")
	}
	for _, s := range sigs {
		b, err := os.ReadFile(s)
		if err != nil {
			return r.fail(exitFailed, "audit verify: cannot read "+s+": "+errText(err))
		}
		h, err := audit.ReadHeldSignature(s, b)
		if err != nil {
			return r.fail(exitFailed, "audit verify: "+err.Error()+" (give the log's files after --)")
		}
		chk.Signatures = append(chk.Signatures, h)
	}
	if len(logs) == 0 {
		if err := loadConfig(); err != nil {
			return r.fail(exitFailed, err.Error())
		}
		logs = []string{cfg.Audit.Path}
	}
	res, err := audit.VerifyLogs(logs, chk)
	if err != nil {
		var te *audit.TreeError
		if errors.As(err, &te) {
			return r.fail(exitFailed, "audit verify: "+strings.Join(logs, " ")+": "+err.Error())
		}
		var fe *audit.FileError
		if errors.As(err, &fe) {
			return r.fail(exitFailed, "audit verify: "+err.Error())
		}
		return r.fail(exitFailed, "audit verify: "+strings.Join(logs, " ")+": "+err.Error())
	}
	out := fmt.Sprintf("ok: %d records\ntree: size %d, root %s\n", res.Records, res.Records, base64.StdEncoding.EncodeToString(res.Root[:]))
	if res.Legacy > 0 {
		out += fmt.Sprintf("notations: %d signatures match the tree before them; %d older ones have none\n", res.Notations, res.Legacy)
	} else {
		out += fmt.Sprintf("notations: %d signatures match the tree before them\n", res.Notations)
	}
	if chk.Checkpoint != nil {
		out += fmt.Sprintf("checkpoint: the log extends the checkpoint of size %d\n", chk.Checkpoint.Size)
	}
	if len(chk.Signatures) > 0 {
		out += fmt.Sprintf("signatures: %d held signatures are the log's\n", len(chk.Signatures))
	}
	return r.output([]byte(out))
}

// verifier is the log's verifier key: key (the key itself, or a file
// holding it), else the one of the configured checkpoint key.
func (r *run) verifier(key string, load func() error, cfg func() *config.Config) (note.Verifier, error) {
	if key == "" {
		if err := load(); err != nil {
			return nil, fmt.Errorf("no --verifier, and the configuration cannot be read for [audit] checkpoint_key: %v", err)
		}
		c := cfg()
		if c.Audit.CheckpointKey == "" {
			return nil, errors.New("no --verifier, and no [audit] checkpoint_key to take it from")
		}
		b, err := os.ReadFile(c.Audit.CheckpointKey)
		if err != nil {
			return nil, fmt.Errorf("cannot read the checkpoint key: %v", errText(err))
		}
		defer clear(b)
		vkey, err := audit.VerifierOf(b)
		if err != nil {
			return nil, fmt.Errorf("checkpoint key %s: %v", c.Audit.CheckpointKey, err)
		}
		key = vkey
	} else if fi, err := os.Stat(key); err == nil && fi.Mode().IsRegular() {
		b, err := os.ReadFile(key)
		if err != nil {
			return nil, fmt.Errorf("cannot read the verifier key: %v", errText(err))
		}
		key = string(b)
	}
	return audit.ParseVerifierKey([]byte(key))
}

// auditCheckProof is `audit check-proof --verifier KEY --proof FILE.proof
// SIG FILE`.
func (r *run) auditCheckProof(args []string) int {
	sp := command.LookupWord("audit check-proof")
	f, pos, err := flags(sp, args)
	if err == nil && (f["--verifier"] == "" || f["--proof"] == "" || len(pos) != 2) {
		err = errors.New("--verifier, --proof, SIG and FILE are required")
	}
	if err != nil {
		return r.fail(exitRefused, "audit check-proof: "+err.Error()+": use "+sp.Synopsis())
	}
	v, err := r.verifier(f["--verifier"], nil, nil)
	if err != nil {
		return r.fail(exitFailed, "audit check-proof: "+err.Error())
	}
	proof, err := os.ReadFile(f["--proof"])
	if err != nil {
		return r.fail(exitFailed, "audit check-proof: cannot read the proof: "+errText(err))
	}
	sig, err := os.ReadFile(pos[0])
	if err != nil {
		return r.fail(exitFailed, "audit check-proof: cannot read the signature: "+errText(err))
	}
	art, err := os.Open(pos[1])
	if err != nil {
		return r.fail(exitFailed, "audit check-proof: cannot read the artifact: "+errText(err))
	}
	defer art.Close()
	res, err := audit.CheckProof(proof, sig, art, v)
	if err != nil {
		return r.fail(exitFailed, "audit check-proof: "+f["--proof"]+": "+err.Error())
	}
	rec := res.Record
	return r.output([]byte(fmt.Sprintf("ok: %s is signed by record %d of %s (in its checkpoint of size %d): %s, key %s, profile %s, at %s\n",
		pos[1], rec.Seq, res.Origin, res.Size, rec.Digest, rec.Key, rec.Profile, rec.Time)))
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// auditRotate is `audit rotate`.
func (r *run) auditRotate(args []string) int {
	if len(args) > 0 {
		return r.fail(exitRefused, fmt.Sprintf("audit rotate: unexpected argument %q: use %s", args[0], command.LookupWord("audit rotate").Synopsis()))
	}
	cfg, err := config.Load(r.inv.configPath)
	if err != nil {
		return r.fail(exitFailed, err.Error())
	}
	res, err := audit.Rotate(cfg.Audit.Path, 60*time.Second)
	if err != nil {
		return r.fail(exitFailed, "audit rotate: "+err.Error())
	}
	return r.output([]byte(fmt.Sprintf("ok: records %d to %d are in %s (with .idx and .tree); %s goes on from record %d\n", res.First, res.Last, res.Archive, cfg.Audit.Path, res.Last+1)))
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/client"
)

// gpg mode: the part of gpg's command line that repo-add, makepkg and a
// release script use (read from their own scripts):
//
//	repo-add, makepkg:  gpg --list-secret-key [KEY]
//	                    gpg --detach-sign --use-agent --no-armor [-u KEY] FILE
//	repo-add -v:        gpg --verify FILE.sig
//	release scripts:    gpg --detach-sign [--armor] [-u KEY] [-o OUT] FILE
//
// Anything else is refused, naming the option: a real gpg is never run.
type gpgArgs struct {
	mode   string // "--detach-sign", "--list-secret-keys", "--verify"
	armor  bool
	user   string
	output string
	files  []string
}

// gpgNoOps are options that change nothing for signstar-client.
var gpgNoOps = []string{"--use-agent", "--batch", "--yes", "--quiet", "-q", "--no-tty"}

func parseGPG(args []string) (*gpgArgs, error) {
	g := &gpgArgs{}
	setMode := func(m string) error {
		if g.mode != "" && g.mode != m {
			return fmt.Errorf("%s and %s: give one command", g.mode, m)
		}
		g.mode = m
		return nil
	}
	value := func(i *int, name, attached string) (string, error) {
		if attached != "" {
			return attached, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			g.files = append(g.files, args[i+1:]...)
			break
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			g.files = append(g.files, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			// Short options: -b, -a, -K alone; -u and -o with the value
			// attached or next.
			name, val, hasVal = a[:2], a[2:], len(a) > 2
			if hasVal && name != "-u" && name != "-o" {
				return nil, fmt.Errorf("unsupported option %q (signstar-client's gpg mode takes short options one at a time)", a)
			}
		}
		var err error
		switch name {
		case "--detach-sign", "-b":
			err = setMode("--detach-sign")
		case "--list-secret-keys", "--list-secret-key", "-K":
			err = setMode("--list-secret-keys")
		case "--verify":
			err = setMode("--verify")
		case "--armor", "-a":
			g.armor = true
		case "--no-armor":
			g.armor = false
		case "--local-user", "-u":
			if g.user != "" {
				return nil, errors.New("-u given twice: signstar-client signs with the one pinned key")
			}
			g.user, err = value(&i, name, val)
		case "--output", "-o":
			if g.output != "" {
				return nil, errors.New("-o given twice")
			}
			g.output, err = value(&i, name, val)
		default:
			if contains(gpgNoOps, name) && !hasVal {
				continue
			}
			return nil, fmt.Errorf("unsupported option %q: signstar-client's gpg mode takes only --detach-sign, --list-secret-keys, --verify, --armor, --no-armor, -u, -o, --use-agent, --batch, --yes, --quiet, --no-tty", a)
		}
		if err != nil {
			return nil, err
		}
		if hasVal && name != "-u" && name != "-o" && name != "--local-user" && name != "--output" {
			return nil, fmt.Errorf("unsupported option %q: %s takes no value", a, name)
		}
	}
	if g.mode == "" {
		return nil, errors.New("no command: signstar-client's gpg mode does --detach-sign, --list-secret-keys and --verify")
	}
	return g, nil
}

func (r *run) gpg(args []string) int {
	r.prefix = "signstar-client: gpg: "
	g, err := parseGPG(args)
	if err != nil {
		return r.usage(err.Error())
	}
	switch g.mode {
	case "--list-secret-keys":
		return r.gpgList(g)
	case "--verify":
		return r.gpgVerify(g)
	}
	return r.gpgSign(g)
}

func (r *run) gpgSign(g *gpgArgs) int {
	if len(g.files) != 1 || g.files[0] == "-" {
		if len(g.files) == 0 || g.files[0] == "-" {
			return r.usage("--detach-sign of standard input is not supported: name the file")
		}
		return r.usage(fmt.Sprintf("--detach-sign takes one file, not %d", len(g.files)))
	}
	s, code := r.signer("")
	if s == nil {
		return code
	}
	if g.user != "" && !s.Pinned.Names(g.user) {
		r.errorf("-u %s does not name the pinned certificate %s (%s): the enclave signs only with that key", g.user, s.Pinned.Fingerprint(), strings.Join(s.Pinned.UserIDs(), ", "))
		return exitRefused
	}
	req := &client.Request{Paths: g.files, Armor: g.armor}
	switch g.output {
	case "-":
		req.Writer = r.stdout
	case "":
	default:
		req.Outs = []string{g.output}
	}
	if _, err := s.Sign(r.ctx, req); err != nil {
		return r.fail(err)
	}
	return exitOK
}

// gpgList answers repo-add's and makepkg's check that the key exists: it
// lists the pinned certificate when every KEY names it (or none is given),
// without asking the enclave.
func (r *run) gpgList(g *gpgArgs) int {
	cfg, err := r.config("")
	if err != nil {
		return r.fail(err)
	}
	p, err := client.LoadPinned(cfg)
	if err != nil {
		return r.fail(err)
	}
	for _, k := range g.files {
		if !p.Names(k) {
			r.errorf("error reading key: No secret key (%s is not the pinned certificate %s)", k, p.Fingerprint())
			return exitRefused
		}
	}
	pk := p.Entity.PrimaryKey
	fmt.Fprintf(r.stdout, "%s\n%s\n", p.Path, strings.Repeat("-", len(p.Path)))
	fmt.Fprintf(r.stdout, "sec   %s %s [SC]\n      %s\n", algoName(pk), pk.CreationTime.UTC().Format("2006-01-02"), p.Fingerprint())
	for _, uid := range p.UserIDs() {
		fmt.Fprintf(r.stdout, "uid           [ultimate] %s\n", uid)
	}
	for _, sk := range p.Entity.Subkeys {
		fmt.Fprintf(r.stdout, "ssb   %s %s\n", algoName(sk.PublicKey), sk.PublicKey.CreationTime.UTC().Format("2006-01-02"))
	}
	fmt.Fprintln(r.stdout)
	return exitOK
}

func algoName(pk *packet.PublicKey) string {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		n, _ := pk.BitLength()
		return fmt.Sprintf("rsa%d", n)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "ed25519"
	case packet.PubKeyAlgoECDSA:
		n, _ := pk.BitLength()
		return fmt.Sprintf("nistp%d", n)
	}
	return fmt.Sprintf("algo%d", pk.PubKeyAlgo)
}

// gpgVerify checks SIG over FILE (SIG without .sig or .asc when not
// given; "-" is standard input) with the pinned certificate only.
func (r *run) gpgVerify(g *gpgArgs) int {
	if len(g.files) == 0 || len(g.files) > 2 {
		return r.usage("--verify takes SIG [FILE]")
	}
	if g.user != "" || g.output != "" {
		return r.usage("--verify takes no -u or -o")
	}
	sigPath := g.files[0]
	data := ""
	if len(g.files) == 2 {
		data = g.files[1]
	} else {
		for _, ext := range []string{".sig", ".asc"} {
			if d, ok := strings.CutSuffix(sigPath, ext); ok && d != "" {
				data = d
			}
		}
		if data == "" {
			return r.usage(fmt.Sprintf("--verify %s: name the signed file too (SIG FILE)", sigPath))
		}
	}
	cfg, err := r.config("")
	if err != nil {
		return r.fail(err)
	}
	p, err := client.LoadPinned(cfg)
	if err != nil {
		return r.fail(err)
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		r.errorf("can't open %s: %v", sigPath, err)
		return exitRefused
	}
	var pkt *packet.Signature
	if data == "-" {
		pkt, err = client.Verify(p, r.stdin, "standard input", sig)
	} else {
		pkt, err = client.VerifyFile(p, data, sig)
	}
	if err != nil {
		var ue *client.UntrustedError
		if errors.As(err, &ue) {
			r.errorf("BAD signature: %v", err)
			return exitFailed
		}
		r.errorf("can't check signature: %v", err)
		return exitRefused
	}
	fmt.Fprintf(r.stderr, "%sSignature made %s\n", r.prefix, pkt.CreationTime.UTC().Format(time.RFC3339))
	fmt.Fprintf(r.stderr, "%sGood signature from %q by the pinned certificate %s\n", r.prefix, strings.Join(p.UserIDs(), ", "), p.Fingerprint())
	return exitOK
}

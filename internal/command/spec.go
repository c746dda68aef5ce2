package command

import (
	"strings"

	"github.com/signstar/signstar/internal/config"
)

// This file is the table of signstar's commands and options. The remote
// parser (ParseWords), the local commands in cmd/signstar, the usage text,
// the man page signstar(1) and the shell completions are all made from it
// (internal/docgen), so a command or option exists in every one of them or
// in none.

// Completion kinds of an option's value, for the shell completions.
const (
	CompleteFile    = "file"
	CompleteProfile = "profile"
)

// Flag is one option.
type Flag struct {
	// Name is the option with its dashes: "--profile".
	Name string
	// Value names the option's value in the synopsis ("NAME"); "" for a
	// switch, which takes none.
	Value string
	// Choices are the only values accepted, when the set is fixed.
	Choices []string
	// Complete says what completes the value: CompleteFile,
	// CompleteProfile, or "" (Choices, or nothing).
	Complete string
	// Required options are shown without brackets in the synopsis.
	Required bool
	// Group names mutually exclusive options: the synopsis joins the
	// options of one group with "|".
	Group string
	Desc  string
}

// Spec is one command: a word, or a word and a subcommand.
type Spec struct {
	Name string // "sign", "audit"
	Sub  string // "verify" for "audit verify"; "" when there is none
	// Remote commands are accepted from a client; the others only
	// locally.
	Remote bool
	// Args is the synopsis of the positional arguments, e.g. "[FILE]".
	Args string
	// ArgsFile says the positional argument is a path (completions).
	ArgsFile bool
	Flags    []Flag
	// Config is true when the command reads the configuration (and so
	// takes the global --config).
	Config bool
	// Stdin and Stdout are shown in the synopsis: "< FILE > FILE.sig".
	Redirect string
	Desc     string
}

// Word is the command as typed: "audit verify".
func (s *Spec) Word() string {
	if s.Sub == "" {
		return s.Name
	}
	return s.Name + " " + s.Sub
}

// Flag returns the option called name, or nil.
func (s *Spec) Flag(name string) *Flag {
	for i := range s.Flags {
		if s.Flags[i].Name == name {
			return &s.Flags[i]
		}
	}
	return nil
}

// Synopsis is the command's line in the usage text and the man page,
// without the global options.
func (s *Spec) Synopsis() string {
	parts := []string{s.Word()}
	for i := 0; i < len(s.Flags); i++ {
		f := s.Flags[i]
		if f.Group != "" {
			var alts []string
			j := i
			for ; j < len(s.Flags) && s.Flags[j].Group == f.Group; j++ {
				alts = append(alts, s.Flags[j].usage())
			}
			i = j - 1
			g := strings.Join(alts, " | ")
			if f.Required {
				parts = append(parts, "("+g+")")
			} else {
				parts = append(parts, "["+g+"]")
			}
			continue
		}
		if f.Required {
			parts = append(parts, f.usage())
		} else {
			parts = append(parts, "["+f.usage()+"]")
		}
	}
	if s.Args != "" {
		parts = append(parts, s.Args)
	}
	if s.Redirect != "" {
		parts = append(parts, s.Redirect)
	}
	return strings.Join(parts, " ")
}

func (f *Flag) usage() string {
	switch {
	case f.Value == "":
		return f.Name
	case len(f.Choices) > 0:
		return f.Name + " " + strings.Join(f.Choices, "|")
	}
	return f.Name + " " + f.Value
}

// Global are the options that stand before the command (and, for a remote
// process, are given by the server: the ForceCommand line or a login-shell
// wrapper).
var Global = []Flag{
	{Name: "--config", Value: "P", Complete: CompleteFile,
		Desc: "the configuration file; default " + config.DefaultPath},
	{Name: "--profile", Value: "N", Complete: CompleteProfile,
		Desc: "the server's profile: used when the client names none"},
	{Name: "-c", Value: "CMD",
		Desc: "login-shell mode: CMD is the client's command string, as sshd passes it to the user's shell; makes the process remote"},
}

var profileFlag = Flag{Name: "--profile", Value: "NAME", Complete: CompleteProfile,
	Desc: "the profile to use; honoured only when the caller is allowed it (users, ssh_keys)"}

// Commands are all the commands, remote ones first.
var Commands = []Spec{
	{Name: Sign, Remote: true, Config: true, Redirect: "< FILE > FILE.sig",
		Flags: []Flag{
			{Name: "--armor", Desc: "ASCII-armored signature instead of binary (repo-add refuses armored package signatures); with --tar, members named MEMBER.asc"},
			{Name: "--tar", Desc: "stdin is a tar (ustar or pax, as GNU tar and bsdtar write it) of regular files; stdout is a tar of one signature per member, MEMBER.sig, in input order. Each member is checked against the profile and audited on its own; if any is refused or fails, no signature is written"},
			profileFlag,
			{Name: "--expect", Value: "ALGO:HEX",
				Desc: "refuse, without a signature, unless the bytes received hash to exactly this (sha256:HEX or sha512:HEX); with --tar, the whole tar stream as sent"},
		},
		Desc: "reads the artifact from stdin to its end and writes one detached OpenPGP signature to stdout, after its audit record is on disk. The default command: an empty command string means sign, except to a profile with accept = [\"signstar-v1\"], where it means a signstar-v1 request: stdin is the JSON request of Arch Linux's signstar-request-signature (the client's SHA-512 state of the file) and stdout its JSON response."},
	{Name: Pubkey, Remote: true, Config: true,
		Flags: []Flag{profileFlag},
		Desc:  "writes the profile's ASCII-armored public certificate to stdout; with a next_key, its certificate from old_key_until on."},
	{Name: Checkpoint, Remote: true, Config: true,
		Flags: []Flag{
			{Name: "--from", Value: "N", Desc: "also the consistency proof from the tree of size N (a checkpoint held earlier) to this one, as C2SP tlog-witness's add-checkpoint body"},
		},
		Desc: "writes the audit log's latest signed checkpoint (C2SP tlog-checkpoint: origin, tree size, root hash, signed by [audit] checkpoint_key). Not recorded when served; refusals and failures are."},
	{Name: Proof, Remote: true, Config: true, Args: "SEQ",
		Desc: "writes a proof file (C2SP tlog-proof) for record SEQ: the record's line, its inclusion proof and the signed checkpoint of the tree it is proven in; only for records of a profile the caller may use. Not recorded when served; refusals and failures are."},
	{Name: Version, Remote: true,
		Desc: "writes one line, signstar VERSION."},
	{Name: "keygen",
		Flags: []Flag{
			{Name: "--uid", Value: `"Name <mail>"`, Required: true, Desc: "the user ID of the new key"},
			{Name: "--out", Value: "FILE", Required: true, Complete: CompleteFile, Desc: "where the armored secret key goes (mode 0600; an existing file is refused)"},
			{Name: "--algo", Value: "ALGO", Choices: []string{"ed25519", "rsa3072", "rsa4096"}, Desc: "the key type; ed25519 (legacy EdDSA, algorithm 22) by default"},
			{Name: "--revocation", Value: "FILE", Complete: CompleteFile, Desc: "where the new key's armored revocation certificate goes (mode 0600; an existing file is refused); default: --out with .rev appended. Keep it offline: gpg --import of it revokes the key"},
			{Name: "--certify-with", Value: "KEYFILE", Complete: CompleteFile, Desc: "the secret key file of the key being replaced (a profile's key): it certifies the new key's user ID (a 0x10 certification in the certificate on stdout), so keyring maintainers can check the hand-over with gpg --check-sigs"},
			{Name: "--certify-passphrase-file", Value: "F", Complete: CompleteFile, Desc: "the passphrase of the --certify-with key"},
		},
		Desc: "writes a new v4 secret signing key to --out, its revocation certificate to --revocation, and its armored public certificate to stdout; with --certify-with, certified by the old key, for a key transition (next_key in signstar.toml(5))."},
	{Name: "audit", Sub: "verify", Config: true, Args: "[LOG...]", ArgsFile: true,
		Flags: []Flag{
			{Name: "--checkpoint", Value: "FILE", Complete: CompleteFile, Desc: "an older signed checkpoint, held outside the host: the log must extend it"},
			{Name: "--verifier", Value: "KEY", Desc: "the log's verifier key (audit keygen printed it), or a file holding it, to check --checkpoint with; default: the one of [audit] checkpoint_key"},
			{Name: "--signatures", Value: "SIG...", Complete: CompleteFile, Desc: "signatures held outside the host: each one's record must be in the log, its notation must match the log's tree; the words after it up to the next option (or a lone double dash, after which the log files follow) are signatures"},
		},
		Desc: "checks the audit log: the hash chain, each signed record's signature, the tree, each signature's notation against the tree of the records before it, and the log against what is held outside (an older checkpoint, signatures). LOG... are the log's files in order, rotated ones first; default the configured [audit] path. Prints ok: N records and what it checked, or names the first bad record (or line) and exits 1."},
	{Name: "audit", Sub: "check-proof", Args: "SIG FILE", ArgsFile: true,
		Flags: []Flag{
			{Name: "--verifier", Value: "KEY", Required: true, Desc: "the log's verifier key (NAME+HASH+KEY), or a file holding it"},
			{Name: "--proof", Value: "FILE.proof", Required: true, Complete: CompleteFile, Desc: "the proof file (remote proof SEQ) kept with the signature"},
		},
		Desc: "checks a proof file against the signature SIG, the artifact FILE and the log's verifier key: the checkpoint is the log's, the record is in its tree, the record holds exactly SIG, SIG's notation commits to the tree before the record, and FILE hashes to the record's digest. Prints ok: and the record, or what does not match and exits 1. Checking SIG against the certificate is gpgv's or sqv's job."},
	{Name: "audit", Sub: "rebuild", Config: true, Args: "[FILE]", ArgsFile: true,
		Desc: "makes the audit log's side files, its index (FILE.idx) and its transparency tree (FILE.tree), agree with the log, which must verify: appends what each lacks, or writes it anew with the log's owner and mode (chattr -a it first if it is append-only); prints ok: N records indexed in FILE.idx and how, and the same of FILE.tree. Run it as root when signing stops on a missing or disagreeing index or tree, and once when creating the log."},
	{Name: "audit", Sub: "keygen",
		Flags: []Flag{
			{Name: "--origin", Value: "NAME", Required: true, Desc: "the log's origin, as [audit] origin will name it: e.g. example.org/signstar"},
			{Name: "--out", Value: "FILE", Required: true, Complete: CompleteFile, Desc: "where the note signer key goes (mode 0600; an existing file is refused); give it to the signing user and set [audit] checkpoint_key"},
		},
		Desc: "writes a new Ed25519 note key for the log's checkpoints (golang.org/x/mod/sumdb/note) to --out and prints its verifier key (NAME+HASH+KEY), which witnesses, mirrors and users check checkpoints and proofs with."},
	{Name: "audit", Sub: "checkpoint", Config: true,
		Desc: "prints the audit log's latest signed checkpoint, as the remote checkpoint command does, without a record."},
	{Name: "audit", Sub: "rotate", Config: true,
		Desc: "starts a new audit log file whose first record chains to the old file's last (seq, prev and the tree continue): waits (at most 60 s) until no request has the log open, new ones waiting meanwhile, renames the log and its side files to PATH.FIRST-LAST (.idx, .tree), puts an empty log with the side files carried over in its place, with the old owner, mode and append-only attribute (run it as root); prints ok: and the names. audit verify takes the files in order."},
	{Name: "sandbox", Sub: "check", Config: true,
		Desc: "prints what the sandbox can enforce on this kernel; exits 0 when the configured [sandbox] mode can be met."},
	{Name: "piv", Sub: "setup", Config: true,
		Flags: []Flag{
			{Name: "--reader", Value: "R", Required: true, Desc: "a substring of the PC/SC reader name; default: the profile's"},
			{Name: "--slot", Value: "SLOT", Required: true, Desc: "the PIV slot: 9a, 9c, 9d, 9e or 82-95; default: the profile's"},
			{Name: "--uid", Value: `"Name <mail>"`, Required: true, Desc: "the user ID of the certificate"},
			{Name: "--out", Value: "CERT", Required: true, Complete: CompleteFile, Desc: "where the OpenPGP certificate goes (an existing file is refused)"},
			{Name: "--generate", Value: "ALGO", Choices: []string{"ecc-p256", "ecc-p384", "rsa2048"}, Required: true, Group: "key", Desc: "generate the key on the card"},
			{Name: "--import", Value: "KEYFILE", Complete: CompleteFile, Required: true, Group: "key", Desc: "copy an OpenPGP secret key's signing key to the card, keeping its fingerprint"},
			{Name: "--passphrase-file", Value: "F", Complete: CompleteFile, Desc: "the passphrase of the --import key"},
			{Name: "--pin-file", Value: "F", Complete: CompleteFile, Desc: "the card's PIN; default: the profile's pin_file"},
			{Name: "--management-key-file", Value: "F", Complete: CompleteFile, Desc: "a non-default management key (hex)"},
			{Name: "--force", Desc: "replace a key already in the slot"},
		},
		Desc: "puts a key in a PIV slot, has the card self-sign an OpenPGP certificate for it and writes it to --out and stdout. --reader, --slot and --pin-file default to the [profile.piv] of --profile, or of the only piv profile."},
	{Name: "tpm", Sub: "setup", Config: true,
		Flags: []Flag{
			{Name: "--uid", Value: `"Name <mail>"`, Required: true, Desc: "the user ID of the certificate"},
			{Name: "--out", Value: "CERT", Complete: CompleteFile, Desc: "where the OpenPGP certificate goes; default: the profile's key"},
			{Name: "--algo", Value: "ALGO", Choices: []string{"ecc-p256", "rsa2048", "rsa3072"}, Desc: "the key type; ecc-p256 by default (rsa3072 only where the TPM has it)"},
			{Name: "--device", Value: "D", Complete: CompleteFile, Desc: "the TPM; default: the profile's device, else /dev/tpmrm0"},
			{Name: "--key-blob", Value: "F", Complete: CompleteFile, Desc: "where the key blob goes (mode 0600); default: the profile's key_blob"},
			{Name: "--auth-file", Value: "F", Complete: CompleteFile, Desc: "the key's auth value; default: the profile's auth_file"},
			{Name: "--pcrs", Value: "LIST", Desc: "the PCRs to bind the key to, e.g. 7,16 (\"\" for none); default: the profile's pcrs"},
			{Name: "--force", Desc: "replace an existing key blob and certificate (re-provisioning: a new key)"},
		},
		Desc: "makes a non-exportable signing key in the TPM, under its storage root key, bound by PolicyPCR to the current values of the profile's pcrs, writes its key blob and its OpenPGP certificate, self-signed through the TPM, to --out and stdout. The options default to the [profile.tpm] of --profile, or of the only tpm profile."},
	{Name: "doctor", Config: true,
		Flags: []Flag{
			{Name: "--sshd-config", Value: "F", Complete: CompleteFile, Desc: "the sshd configuration to test with sshd -T; default /etc/ssh/sshd_config"},
		},
		Desc: "checks the deployment: owners and modes of the configuration, keys, PIN and passphrase files, the log directory and the log, the log's append-only attribute, the sshd settings in force for each profile's users (sshd -T), that each profile's backend opens, that the sandbox mode can be met and that the audit log verifies. One line on stderr per finding, with the fix; exit 0 only when there is none."},
	{Name: "help",
		Desc: "prints the usage."},
}

// LookupWord returns the command typed as word ("audit rebuild"), or nil.
func LookupWord(word string) *Spec {
	for i := range Commands {
		if Commands[i].Word() == word {
			return &Commands[i]
		}
	}
	return nil
}

// Lookup returns the command named name (its first word; the first of
// several, as "audit verify" of "audit"), or nil.
func Lookup(name string) *Spec {
	for i := range Commands {
		if Commands[i].Name == name {
			return &Commands[i]
		}
	}
	return nil
}

// RemoteNames are the commands a client may send, in table order.
func RemoteNames() []string {
	var out []string
	for _, c := range Commands {
		if c.Remote {
			out = append(out, c.Name)
		}
	}
	return out
}

// Usage is the usage text: one line per command.
func Usage() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for i := range Commands {
		c := &Commands[i]
		b.WriteString("  signstar ")
		if c.Config {
			b.WriteString("[--config P] ")
		}
		if c.Flag("--profile") != nil {
			b.WriteString("[--profile N] ")
		}
		b.WriteString(c.Synopsis())
		b.WriteByte('\n')
	}
	b.WriteString("Over SSH (ForceCommand or login shell) only " + orList(RemoteNames()) + " are accepted.\n")
	return b.String()
}

func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

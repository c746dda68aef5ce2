package config

import (
	"slices"
	"strconv"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/digest"
	"github.com/signstar/signstar/internal/policy"
	"github.com/signstar/signstar/internal/sandbox"
)

// This file is the table of the configuration's keys. The checks in
// config.go take their defaults and accepted values from it, a test holds
// it equal to the Config struct's TOML tags, and signstar.toml(5) and the
// shell completions are made from it (internal/docgen).

// Table is one TOML table of the file.
type Table struct {
	Name   string // "audit", "profile", "profile.piv"
	Header string // as written: "[audit]", "[[profile]]"
	Desc   string
}

// Key is one key of a table.
type Key struct {
	Table string // Table.Name
	Name  string
	Type  string // "string", "array of strings"
	// Default is the value when the key is absent, as TOML; "" when there
	// is none.
	Default string
	// Choices are the only values accepted, when the set is fixed.
	Choices []string
	// Required says when the key must be present: "always", a condition,
	// or "" when it is optional.
	Required string
	Example  string
	Desc     string
	// Refused is what the checks refuse beyond Choices and Required.
	Refused string
}

// Tables are the file's tables, in the order the man page gives them.
var Tables = []Table{
	{Name: "audit", Header: "[audit]", Desc: "The audit log."},
	{Name: "sandbox", Header: "[sandbox]", Desc: "How much of the sandbox signing requires."},
	{Name: "profile", Header: "[[profile]]", Desc: "A signing profile: a key, who may use it and what it may sign. At least one is required; names are unique."},
	{Name: "profile.gpg_agent", Header: "[profile.gpg_agent]", Desc: "Only for backend = \"gpg-agent\"."},
	{Name: "profile.piv", Header: "[profile.piv]", Desc: "Only for backend = \"piv\"."},
	{Name: "profile.tpm", Header: "[profile.tpm]", Desc: "Only for backend = \"tpm\"."},
}

// Keys are every key the file may hold.
var Keys = []Key{
	{Table: "audit", Name: "path", Type: "string", Required: "always", Example: `"/var/log/signstar/audit.jsonl"`,
		Desc:    "The hash-chained audit log, JSON Lines: one record per request, signed, refused or failed, fsynced before a signature is written. Root-owned, group of the signing user, mode 0660 and append-only (chattr +a).",
		Refused: "a relative path"},
	{Table: "audit", Name: "origin", Type: "string", Required: "with checkpoint_key", Example: `"example.org/signstar"`,
		Desc:    "The transparency log's name: the first line of its signed checkpoints (C2SP tlog-checkpoint) and the name of the checkpoint key. Without it and checkpoint_key, the checkpoint and proof commands fail; the tree and the signatures' notation are kept all the same.",
		Refused: "an empty name, more than 255 bytes, spaces, '+' or non-printable bytes"},
	{Table: "audit", Name: "checkpoint_key", Type: "string", Required: "with origin", Example: `"/etc/signstar/log.key"`,
		Desc:    "The Ed25519 note key (signstar audit keygen --origin NAME --out FILE) that signs the log's checkpoints: owned by the signing user, mode 0400 or 0600, as a key file.",
		Refused: "a relative path; at use, a key open to group or others or named for another origin"},
	{Table: "audit", Name: "syslog", Type: "string", Example: `"/dev/log"`,
		Desc:    "The local syslog socket (journald's or rsyslog's /dev/log): every record, signed, refused or failed, is also sent there as one datagram once it is on disk, <PRI>TIMESTAMP signstar[PID]: followed by the record's line byte for byte (facility authpriv; severity info, notice or warning for signed, refused or failed). Connected before the lock-down. The syslog daemon forwards it off the host. Its directories must be root's, like the audit log's. None when absent.",
		Refused: "a relative path; more than 107 bytes"},
	{Table: "audit", Name: "syslog_required", Type: "boolean", Default: "false",
		Desc:    "When true, a record that does not reach the syslog socket fails the request: a socket that cannot be connected fails every sign request before stdin is read, and a signed record the socket did not take (waiting at most 5 s) is followed by a failed one saying so, and the signature is not released (exit 1). When false, a send never waits, and what the daemon does not take stays only in the local log.",
		Refused: "true without syslog"},
	{Table: "sandbox", Name: "mode", Type: "string", Default: `"` + sandbox.Enforce + `"`, Choices: sandbox.Modes,
		Desc: "enforce refuses to sign, with an audited failure, when any part of the sandbox (landlock, seccomp, no_new_privs) cannot be applied; best-effort signs and names what was missing in the record's sandbox field."},
	{Table: "profile", Name: "name", Type: "string", Required: "always", Example: `"repo"`,
		Desc:    "What clients and the server's --profile call the profile.",
		Refused: "anything but 1 to 64 letters, digits, '.', '_' and '-' starting with a letter or digit; a name used twice"},
	{Table: "profile", Name: "backend", Type: "string", Required: "always", Choices: []string{BackendKeyfile, BackendGPGAgent, BackendPIV, BackendTPM},
		Desc:    "Where the key is: a secret key file, a gpg-agent, a PIV card, or the host's TPM 2.0.",
		Refused: "a [profile.gpg_agent], [profile.piv] or [profile.tpm] table that does not belong to the backend"},
	{Table: "profile", Name: "key", Type: "string", Required: "always", Example: `"/etc/signstar/repo.key.asc"`,
		Desc:    "keyfile: the armored or binary secret key, owned by the signing user, mode 0400 or 0600. gpg-agent, piv and tpm: the public certificate.",
		Refused: "a relative path; at start-up, a secret key open to group or others, RSA under 2048 bits, an expired or revoked key"},
	{Table: "profile", Name: "passphrase_file", Type: "string", Example: `"/etc/signstar/repo.pass"`,
		Desc:    "The key's passphrase (keyfile) or the agent key's (gpg-agent, through loopback pinentry), first line; same owner and mode as a secret key.",
		Refused: "a relative path; in a piv or tpm profile"},
	{Table: "profile", Name: "hash", Type: "string", Default: `"sha256"`, Choices: digest.Names(),
		Desc: "The signature's hash. P-384 keys need sha512."},
	{Table: "profile", Name: "max_size", Type: "string", Example: `"4GiB"`,
		Desc:    "The largest input signed: a number with B, KiB, MiB, GiB, TiB (or K, M, G, T, binary; KB, MB, GB, TB, decimal). Reading stops as soon as it is passed. No limit when absent.",
		Refused: "zero, and more than 2^62 bytes"},
	{Table: "profile", Name: "kinds", Type: "array of strings", Default: `["any"]`, Choices: append(slices.Clone(policy.Kinds), policy.KindAny),
		Desc: "What the profile may sign, detected from the bytes as they stream past."},
	{Table: "profile", Name: "rate", Type: "string", Example: `"100/1h"`,
		Desc:    "At most N signatures per PERIOD (N/PERIOD, units s, m, h, d: \"1/30d\"), counted from the profile's signed records in the audit log. No limit when absent.",
		Refused: "zero, and a period longer than ten years"},
	{Table: "profile", Name: "max_files", Type: "integer", Default: strconv.Itoa(DefaultMaxFiles),
		Desc:    "The most members one sign --tar archive may hold; one more is refused, and nothing of the archive is signed. signstar holds each member's signature and record until the archive has ended (about 2 KiB each).",
		Refused: "0 or less, and more than " + strconv.Itoa(MaxMaxFiles)},
	{Table: "profile", Name: "users", Type: "array of strings", Required: "always", Example: `["signer"]`,
		Desc:    "The Unix users allowed this profile.",
		Refused: "an empty list; names that are not valid Unix user names"},
	{Table: "profile", Name: "ssh_keys", Type: "array of strings", Example: `["SHA256:..."]`,
		Desc:    "Only these SSH keys (the SHA256: fingerprints of ssh-keygen -lf) may use the profile; needs sshd's ExposeAuthInfo. Any key when absent.",
		Refused: "anything but SHA256: and 43 characters of base64"},
	{Table: "profile", Name: "quorum", Type: "integer", Example: `2`,
		Desc:    "Sign only bytes that this many distinct voters sent within quorum_window. A voter's request is hashed and sniffed as usual and recorded as a vote (outcome vote, exit 3, nothing on stdout); the request that meets the quorum, a voter's or a publisher's, gets the signature, and so does any later one while the votes stay in the window. A voter who sends again is not counted twice. No quorum when absent.",
		Refused: "less than 1, more than the voters listed; voters, publishers or quorum_window without it"},
	{Table: "profile", Name: "voters", Type: "array of strings", Required: "quorum is set", Example: `["SHA256:...", "builder2"]`,
		Desc:    "The builders whose requests are votes: SSH key fingerprints (SHA256:..., needs sshd's ExposeAuthInfo) or Unix users. A caller is the first entry that names its key or its user. Anyone else allowed the profile is refused, with the count of votes in the message.",
		Refused: "a name listed twice; a fingerprint the profile's ssh_keys do not admit; a user not among its users"},
	{Table: "profile", Name: "quorum_window", Type: "string", Required: "quorum is set", Example: `"2h"`,
		Desc:    "How long a vote counts: a count and a unit s, m, h or d (\"90m\", \"1d\"). Older votes are not counted, and messages say how many were left out.",
		Refused: "zero, and more than ten years"},
	{Table: "profile", Name: "publishers", Type: "array of strings", Example: `["SHA256:..."]`,
		Desc:    "Callers that do not vote but get the signature of bytes that already have a quorum (a release machine collecting the builders' result): named as voters are. Their request for bytes short of the quorum is refused, with the count.",
		Refused: "a name that is also a voter, or listed twice; as for voters"},
	{Table: "profile", Name: "next_key", Type: "string", Example: `"/etc/signstar/repo-2027.key.asc"`,
		Desc:    "A key transition: the profile's next key, in the same form as key (keyfile: the secret key; gpg-agent: its certificate, the key in the same agent) and opened with the same passphrase_file and [profile.gpg_agent]. From next_key_from on it signs beside key, each signature then holding two packets (key's first); from old_key_until on it signs alone. The switch needs no edit on the day. Only keyfile and gpg-agent profiles take one.",
		Refused: "a relative path; the same path as key; in a piv or tpm profile (the key is the card's slot or the key blob); without next_key_from and old_key_until"},
	{Table: "profile", Name: "next_key_from", Type: "string", Required: "next_key is set", Example: `"2027-01-01"`,
		Desc:    "When next_key starts to sign beside key: YYYY-MM-DD (midnight UTC) or an RFC 3339 time. Equal to old_key_until, the keys switch without an overlap, and every signature holds one packet (what pacman needs: README, Key transitions).",
		Refused: "anything but a date or an RFC 3339 time; without next_key"},
	{Table: "profile", Name: "old_key_until", Type: "string", Required: "next_key is set", Example: `"2027-02-01"`,
		Desc:    "When key stops signing and next_key signs alone (the instant itself is the next key's): YYYY-MM-DD (midnight UTC) or an RFC 3339 time.",
		Refused: "anything but a date or an RFC 3339 time; a time before next_key_from; without next_key"},
	{Table: "profile", Name: "accept", Type: "array of strings", Choices: []string{archreq.Accept}, Example: `["` + archreq.Accept + `"]`,
		Desc:    "Request protocols the profile takes besides the artifact on stdin. signstar-v1 is the JSON request of Arch Linux's Signstar client (signstar-request-signature): with an empty command, stdin is a request carrying the client's SHA-512 state of the file, and stdout gets the JSON response with an armored signature. None when absent.",
		Refused: "a value listed twice; signstar-v1 unless kinds = [\"any\"] and hash = \"sha512\", or with quorum"},
	{Table: "profile.gpg_agent", Name: "socket", Type: "string", Required: "backend = \"gpg-agent\"", Example: `"/run/signstar/S.gpg-agent"`,
		Desc:    "The agent's socket, or a socket redirection file naming an absolute path. The agent needs allow-loopback-pinentry when passphrase_file is set.",
		Refused: "a relative path"},
	{Table: "profile.gpg_agent", Name: "pin_file", Type: "string", Example: `"/etc/signstar/card.pin"`,
		Desc:    "The PIN of the OpenPGP card behind the agent, for a key the agent keeps on a card, first line; same owner and mode as a secret key. signstar reads the card's retry counter through the agent first and refuses, without sending the PIN, when only one attempt is left.",
		Refused: "a relative path"},
	{Table: "profile.piv", Name: "reader", Type: "string", Example: `"Yubico"`,
		Desc: "A substring of the PC/SC reader name; the first reader when empty."},
	{Table: "profile.piv", Name: "slot", Type: "string", Default: `"9c"`, Choices: piv.SlotNames,
		Desc: "The PIV slot holding the key."},
	{Table: "profile.piv", Name: "pin_file", Type: "string", Required: "backend = \"piv\"", Example: `"/etc/signstar/piv.pin"`,
		Desc:    "The card's PIN, first line, at most 8 characters; same owner and mode as a secret key. signstar reads the retries left first and refuses to sign, without trying the PIN, when only one is left.",
		Refused: "a relative path"},
	{Table: "profile.tpm", Name: "device", Type: "string", Default: `"` + DefaultTPMDevice + `"`,
		Desc:    "The TPM: the kernel's resource manager. Opened before the lock-down and kept. A unix socket here is taken as swtpm's command socket (--server type=unixio), for tests only.",
		Refused: "a relative path"},
	{Table: "profile.tpm", Name: "pcrs", Type: "array of integers", Example: `[7]`,
		Desc:    "The PCRs the key is bound to (PolicyPCR over their SHA-256 values at tpm setup); must be those of the key blob. When one changes, signing fails before stdin is read, naming it. Not bound when empty or absent.",
		Refused: "numbers outside 0 to 23; a PCR listed twice"},
	{Table: "profile.tpm", Name: "auth_file", Type: "string", Example: `"/etc/signstar/tpm.auth"`,
		Desc:    "The key's auth value, first line; same owner and mode as a secret key. signstar reads the TPM's dictionary-attack counter first and refuses to sign, without trying the value, with one failure left. None when absent.",
		Refused: "a relative path"},
	{Table: "profile.tpm", Name: "key_blob", Type: "string", Required: "backend = \"tpm\"", Example: `"/etc/signstar/repo.tpmkey"`,
		Desc:    "The key blob tpm setup wrote: the key wrapped by this TPM's storage root key, and the PCR values it is bound to. Mode 0600.",
		Refused: "a relative path; a blob open to group or others, edited, or made by another TPM"},
}

// The bounds of max_files: what signstar holds for each member of an
// archive until its end (a signature, a record) is a few KiB, so the most
// keeps a session within tens of MiB.
const (
	DefaultMaxFiles = 1000
	MaxMaxFiles     = 10000
)

// KeyInfo returns the entry of table.name; it panics on a key the table
// lacks, which a test of this package would catch.
func KeyInfo(table, name string) *Key {
	for i := range Keys {
		if Keys[i].Table == table && Keys[i].Name == name {
			return &Keys[i]
		}
	}
	panic("config: no key " + table + "." + name + " in the key table")
}

// unquote is the default of a string key without its quotes.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// defaultOf is the default of a string key, unquoted.
func defaultOf(table, name string) string { return unquote(KeyInfo(table, name).Default) }

package client

// Key is one key of client.toml. Parse takes the key names from this
// table, a test holds it equal to Config's TOML tags, and
// signstar-client(1) lists it (internal/docgen).
type Key struct {
	Name    string
	Type    string // "string", "integer", "boolean", "array of strings"
	Default string // as the man page says it; "" when none
	Example string
	Desc    string
}

// Keys are every key client.toml may hold, in the man page's order.
var Keys = []Key{
	{Name: "host", Type: "string", Example: `"signing-host"`,
		Desc: "Required. The signing host as ssh takes it: a name, an address or a Host alias of the ssh configuration. Refused: a value starting with '-' or holding '@'."},
	{Name: "user", Type: "string", Example: `"signer"`,
		Desc: "The signing user. When absent, ssh's configuration decides."},
	{Name: "port", Type: "integer", Example: "22",
		Desc: "The ssh port. When absent, ssh's configuration decides."},
	{Name: "profile", Type: "string", Example: `"repo"`,
		Desc: "Sent as --profile to sign and pubkey; when absent, the enclave picks the profile the server side names, or the caller's first."},
	{Name: "certificate", Type: "string", Default: "STATE_DIR/certificate.asc",
		Desc: "The pinned certificate: written once by pin, then every signature must verify with it."},
	{Name: "state_dir", Type: "string", Default: "$XDG_STATE_HOME/signstar, else ~/.local/state/signstar",
		Desc: "The client's state: the pinned certificate by default."},
	{Name: "ssh", Type: "string", Default: "ssh",
		Desc: "The OpenSSH client to start, looked up in PATH unless it holds a '/'."},
	{Name: "ssh_options", Type: "array of strings", Example: `["-o", "ControlMaster=auto"]`,
		Desc: "Arguments for ssh, placed before the destination; ssh's configuration, agent and known_hosts are used as they are."},
	{Name: "log_key", Type: "string", Example: `"example.org/signstar+1c8a4d5e+AbC...="`,
		Desc: "The verifier key of the enclave's transparency log, as signstar audit keygen printed it on the signing host. The client witnesses the log: it keeps the last checkpoint it verified (STATE_DIR/checkpoint), and on every sign checks that the enclave's newest checkpoint extends it (checkpoint --from N), that every signature's record is new and in it, and that the first signature's tree root is the log's; a rollback or fork stops it and no signature is written. Required unless witness = false."},
	{Name: "witness", Type: "boolean", Default: "true",
		Desc: "false signs without witnessing the log, for an enclave without a checkpoint key; log_key must then be absent."},
	{Name: "proofs", Type: "boolean", Default: "false",
		Desc: "Also fetch each record's proof file (proof SEQ: the record, its inclusion proof and the checkpoint), check that it holds this very signature and that its tree root is the notation's, and write it next to the signature as FILE.proof, the name the contract gives a mirror's proof files. One more ssh session per file."},
}

func keyNameList() []string {
	out := make([]string, len(Keys))
	for i, k := range Keys {
		out[i] = k.Name
	}
	return out
}

package docgen

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

const testConfig = `[audit]
path = "/var/log/signstar/audit.jsonl"

[[profile]]
name = "repo"
backend = "keyfile"

[[profile]]
  name   =   "iso-1"   # spaces and a comment
backend = "gpg-agent"
[profile.gpg_agent]
socket = "/run/signstar/S.gpg-agent"
`

func writeConfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bashComplete asks the generated bash completion, through complete and
// compgen in a real bash, for the words completing line (its last word is
// the one being completed).
func bashComplete(t *testing.T, words ...string) []string {
	t.Helper()
	bash := testenv.NeedTool(t, "bash", "bash")
	script := `source ../../completions/signstar.bash
# complete -p names the function bash would call for signstar.
fn=$(complete -p signstar | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" signstar "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
	out, err := exec.Command(bash, append([]string{"--norc", "--noprofile", "-c", script, "bash"}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

func TestBashCompletion(t *testing.T) {
	cfg := writeConfig(t)
	var all []string
	for _, n := range byName() {
		all = append(all, n.Name)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"signstar", ""}, all},
		{[]string{"signstar", "s"}, []string{"sign", "sandbox"}},
		{[]string{"signstar", "d"}, []string{"doctor"}},
		{[]string{"signstar", "-"}, []string{"--config", "--profile"}},
		{[]string{"signstar", "--config", cfg, "--profile", ""}, []string{"repo", "iso-1"}},
		{[]string{"signstar", "--config=" + cfg, "sign", "--profile", "i"}, []string{"iso-1"}},
		{[]string{"signstar", "--config", cfg, "pubkey", "--profile", ""}, []string{"repo", "iso-1"}},
		{[]string{"signstar", "--config", "/nonexistent.toml", "sign", "--profile", ""}, nil},
		{[]string{"signstar", "sign", "--"}, []string{"--armor", "--tar", "--profile", "--expect"}},
		{[]string{"signstar", "audit", ""}, auditSubs()},
		{[]string{"signstar", "audit", "reb"}, []string{"rebuild"}},
		{[]string{"signstar", "sandbox", ""}, []string{"check"}},
		{[]string{"signstar", "keygen", "--algo", ""}, []string{"ed25519", "rsa3072", "rsa4096"}},
		{[]string{"signstar", "piv", "setup", "--gen"}, []string{"--generate"}},
		{[]string{"signstar", "doctor", "--"}, []string{"--sshd-config"}},
		{[]string{"signstar", "version", ""}, nil},
	} {
		got := bashComplete(t, tc.words...)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("bash completes %q to %q, want %q", tc.words, got, tc.want)
		}
	}
	if !contains(all, "sign") || !contains(all, "doctor") {
		t.Fatalf("the command table lost sign or doctor: %v", all)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestFishCompletion asks a real fish, with complete -C.
func TestFishCompletion(t *testing.T) {
	fish := testenv.NeedTool(t, "fish", "fish")
	cfg := writeConfig(t)
	ask := func(line string) []string {
		out, err := exec.Command(fish, "--no-config", "-c", "source ../../completions/signstar.fish; complete -C "+shellQuote(line)).CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" {
				words = append(words, w)
			}
		}
		return words
	}
	if got := ask("signstar "); !contains(got, "sign") || !contains(got, "doctor") || len(got) != len(byName()) {
		t.Errorf("fish completes the commands to %q", got)
	}
	if got := ask("signstar --config " + cfg + " sign --profile "); !reflect.DeepEqual(got, []string{"iso-1", "repo"}) {
		t.Errorf("fish completes the profiles to %q", got)
	}
	want := auditSubs()
	sort.Strings(want)
	got := ask("signstar audit ")
	sort.Strings(got) // fish sorts its own way
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fish completes audit to %q", got)
	}
}

// auditSubs are the audit subcommands, in the table's order.
func auditSubs() []string {
	var out []string
	for _, c := range command.Commands {
		if c.Name == "audit" {
			out = append(out, c.Sub)
		}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestZshCompletionParses: zsh reads the file (driving zsh's completion
// system needs a terminal; the bash and fish tests cover the table).
func TestZshCompletionParses(t *testing.T) {
	zsh := testenv.NeedTool(t, "zsh", "zsh")
	if out, err := exec.Command(zsh, "-n", "../../completions/_signstar").CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}

// TestManLint runs Debian's mandoc -Tlint on both pages. The only message
// allowed is that each page's cross-reference to the other is not found
// among the installed pages: they are not installed yet (the packaging
// test lints the installed ones, where it is found).
func TestManLint(t *testing.T) {
	mandoc := testenv.NeedTool(t, "mandoc", "mandoc")
	out, _ := exec.Command(mandoc, "-Tlint", "../../docs/man/signstar.1", "../../docs/man/signstar.toml.5", "../../docs/man/signstar-client.1").CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case l == "":
		case strings.Contains(l, "outdated mandoc.db"): // about the system's database, not these pages
		case strings.Contains(l, "referenced manual not found: Xr signstar"):
		default:
			t.Errorf("mandoc -Tlint: %s", l)
		}
	}
}

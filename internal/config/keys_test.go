package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// tomlKeys walks t's fields and returns every leaf key as "table.key".
func tomlKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			tomlKeys(ft, strings.TrimPrefix(prefix+"."+tag, "."), out)
			continue
		}
		out[prefix+"."+tag] = true
	}
}

// TestKeyTableMatchesStruct holds the key table (the man page's source)
// equal to the keys the parser decodes.
func TestKeyTableMatchesStruct(t *testing.T) {
	want := map[string]bool{}
	tomlKeys(reflect.TypeOf(Config{}), "", want)
	got := map[string]bool{}
	tables := map[string]bool{}
	for _, tb := range Tables {
		tables[tb.Name] = true
	}
	for _, k := range Keys {
		name := k.Table + "." + k.Name
		if got[name] {
			t.Errorf("key %s is in the table twice", name)
		}
		got[name] = true
		if !tables[k.Table] {
			t.Errorf("key %s: table %q is not in Tables", name, k.Table)
		}
		if k.Desc == "" || k.Type == "" {
			t.Errorf("key %s has no description or type", name)
		}
	}
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("key table and Config differ: not in the table %v, not in Config %v", missing, extra)
	}
}

// TestKeyTableDefaults checks each documented default against what the
// parser fills in when the key is absent.
func TestKeyTableDefaults(t *testing.T) {
	const minimal = `[audit]
path = "/var/log/signstar/audit.jsonl"
[[profile]]
name = "card"
backend = "piv"
key = "/etc/signstar/card.pub.asc"
users = ["signer"]
[profile.piv]
pin_file = "/etc/signstar/piv.pin"
[[profile]]
name = "tpm"
backend = "tpm"
key = "/etc/signstar/tpm.pub.asc"
users = ["signer"]
[profile.tpm]
key_blob = "/etc/signstar/tpm.key"
`
	c, err := Parse("minimal.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]any{
		"audit.syslog_required": c.Audit.SyslogRequired,
		"sandbox.mode":          c.Sandbox.Mode,
		"profile.hash":          c.Profiles[0].Hash,
		"profile.kinds":         c.Profiles[0].Kinds,
		"profile.max_files":     c.Profiles[0].MaxFiles,
		"profile.piv.slot":      c.Profiles[0].PIV.Slot,
		"profile.tpm.device":    c.Profiles[1].TPM.Device,
	}
	for _, k := range Keys {
		if k.Default == "" {
			continue
		}
		name := k.Table + "." + k.Name
		got, ok := values[name]
		if !ok {
			t.Errorf("key %s has a default, but this test does not read it", name)
			continue
		}
		var doc struct{ V any }
		if _, err := toml.Decode("V = "+k.Default, &doc); err != nil {
			t.Errorf("key %s: default %s is not TOML: %v", name, k.Default, err)
			continue
		}
		if fmt.Sprint(doc.V) != fmt.Sprint(got) {
			t.Errorf("key %s: the table says the default is %s, the parser gives %v", name, k.Default, got)
		}
	}
}

// TestKeyTableChoices: every listed choice is accepted (for a plain key),
// and a value outside them is refused.
func TestKeyTableChoices(t *testing.T) {
	base := map[string]string{"backend": `"keyfile"`, "hash": `"sha256"`, "kinds": `["any"]`}
	for _, k := range []string{"backend", "hash", "kinds"} {
		for _, choice := range KeyInfo("profile", k).Choices {
			vals := map[string]string{}
			for kk, v := range base {
				vals[kk] = v
			}
			if k == "kinds" {
				vals[k] = fmt.Sprintf("[%q]", choice)
			} else {
				vals[k] = fmt.Sprintf("%q", choice)
			}
			cfg := "[audit]\npath = \"/l\"\n[[profile]]\nname = \"p\"\nkey = \"/k\"\nusers = [\"signer\"]\n"
			for kk, v := range vals {
				cfg += kk + " = " + v + "\n"
			}
			switch choice {
			case BackendGPGAgent:
				cfg += "[profile.gpg_agent]\nsocket = \"/s\"\n"
			case BackendPIV:
				cfg += "[profile.piv]\npin_file = \"/p\"\n"
			case BackendTPM:
				cfg += "[profile.tpm]\nkey_blob = \"/b\"\n"
			}
			if _, err := Parse("c.toml", []byte(cfg)); err != nil {
				t.Errorf("profile.%s = %q (a listed choice) refused: %v", k, choice, err)
			}
		}
	}
	for _, m := range KeyInfo("sandbox", "mode").Choices {
		cfg := fmt.Sprintf("[audit]\npath = \"/l\"\n[sandbox]\nmode = %q\n[[profile]]\nname = \"p\"\nbackend = \"keyfile\"\nkey = \"/k\"\nusers = [\"signer\"]\n", m)
		if _, err := Parse("c.toml", []byte(cfg)); err != nil {
			t.Errorf("sandbox.mode = %q refused: %v", m, err)
		}
	}
}

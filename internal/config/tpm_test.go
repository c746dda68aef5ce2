package config

import (
	"reflect"
	"strings"
	"testing"
)

const tpmBase = `[audit]
path = "/var/log/signstar/audit.jsonl"

[[profile]]
name = "tpm"
backend = "tpm"
key = "/etc/signstar/tpm.pub.asc"
users = ["signer"]
`

func TestTPMProfile(t *testing.T) {
	c, err := Parse("c.toml", []byte(tpmBase+"[profile.tpm]\npcrs = [16, 7]\nkey_blob = \"/etc/signstar/tpm.key\"\nauth_file = \"/etc/signstar/tpm.auth\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	tp := c.Profile("tpm").TPM
	if tp.Device != DefaultTPMDevice || !reflect.DeepEqual(tp.PCRs, []int{7, 16}) || tp.PCRList() != "7+16" || tp.AuthFile != "/etc/signstar/tpm.auth" {
		t.Errorf("got %+v", tp)
	}
	for _, tc := range []struct{ text, want string }{
		{tpmBase, "tpm.key_blob: missing"},
		{tpmBase + "[profile.tpm]\nkey_blob = \"k\"\n", `"k" must be an absolute path`},
		{tpmBase + "[profile.tpm]\nkey_blob = \"/k\"\npcrs = [24]\n", "24 is not a PCR"},
		{tpmBase + "[profile.tpm]\nkey_blob = \"/k\"\npcrs = [7, 7]\n", "PCR 7 is listed twice"},
		{tpmBase + "[profile.tpm]\nkey_blob = \"/k\"\ndevice = \"tpm\"\n", "must be an absolute path"},
		{tpmBase + "passphrase_file = \"/p\"\n[profile.tpm]\nkey_blob = \"/k\"\n", "auth_file, not passphrase_file"},
		{tpmBase + "[profile.tpm]\nkey_blob = \"/k\"\nslot = \"9c\"\n", "unknown key"},
		{strings.Replace(tpmBase, `"tpm"`+"\nkey", `"keyfile"`+"\nkey", 1) + "[profile.tpm]\nkey_blob = \"/k\"\n", "keyfile profiles take no [profile.tpm] table"},
	} {
		_, err := Parse("c.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

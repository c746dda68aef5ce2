package command

import (
	"crypto"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/config"
)

func TestParseRemote(t *testing.T) {
	ok := []struct {
		in   string
		want Request
	}{
		{"", Request{Name: Sign}},
		{"   ", Request{Name: Sign}},
		{"sign", Request{Name: Sign}},
		{"sign --armor", Request{Name: Sign, Armor: true}},
		{"sign\t--profile\trepo", Request{Name: Sign, Profile: "repo"}},
		{"sign --profile=iso --armor", Request{Name: Sign, Profile: "iso", Armor: true}},
		{"pubkey --profile repo", Request{Name: Pubkey, Profile: "repo"}},
		{"version", Request{Name: Version}},
	}
	for _, c := range ok {
		got, err := ParseRemote(c.in)
		if err != nil {
			t.Errorf("ParseRemote(%q): %v", c.in, err)
			continue
		}
		if got.Name != c.want.Name || got.Armor != c.want.Armor || got.Profile != c.want.Profile || got.Expect != nil {
			t.Errorf("ParseRemote(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	e, err := ParseRemote("sign --expect sha512:" + strings.Repeat("AB", 64))
	if err != nil || e.Expect.Hash != crypto.SHA512 || len(e.Expect.Digest) != 64 {
		t.Fatalf("--expect sha512: %+v, %v", e, err)
	}

	bad := map[string]string{
		"cat /etc/passwd":                     "unknown command",
		"sign; id":                            "shell syntax",
		"sign && id":                          "shell syntax",
		"sign $(id)":                          "shell syntax",
		"sign `id`":                           "shell syntax",
		"sign > /tmp/x":                       "shell syntax",
		"sign 'x'":                            "shell syntax",
		"sign \"x\"":                          "shell syntax",
		"sign\nid":                            "control",
		"sign\x00":                            "NUL",
		"sign\r":                              "control",
		"sign \xff":                           "non-ASCII",
		"keygen --uid x --out y":              "local administration",
		"audit verify":                        "local administration",
		"sandbox check":                       "local administration",
		"piv setup":                           "local administration",
		"tpm setup":                           "local administration",
		"sign --armor --armor":                "twice",
		"sign --profile":                      "needs a value",
		"sign --profile ../etc":               "not a profile name",
		"sign --armor=yes":                    "takes no value",
		"sign --expect sha1:00":               "sha256:HEX",
		"sign --expect sha256:00":             "64 hex digits",
		"sign --expect sha256:" + hex64("zz"): "64 hex digits",
		"sign extra":                          "unexpected argument",
		"version --armor":                     "does not take",
		"pubkey --armor":                      "does not take",
		"sign --config /etc/passwd":           "does not take",
		strings.Repeat("a", MaxLength+1):      "longer than 1024",
	}
	for in, want := range bad {
		_, err := ParseRemote(in)
		if err == nil {
			t.Errorf("ParseRemote(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRemote(%q) = %q, want it to mention %q", in, err, want)
		}
	}
}

func hex64(s string) string { return strings.Repeat(s, 32) }

// FuzzParseRemote: whatever the client sends, the parser either refuses or
// returns one of the three commands with only well-formed options, and never
// panics.
func FuzzParseRemote(f *testing.F) {
	for _, s := range []string{
		"", "sign", "sign --armor", "sign --profile repo --expect sha256:" + hex64("00"),
		"pubkey --profile repo", "version", "sign; id", "sign\x00", "keygen --uid x",
		"sign --expect=sha512:" + strings.Repeat("ab", 64), "sign\t\t--armor  ",
		"scp -t /tmp", "internal-sftp", "/usr/lib/openssh/sftp-server", "rsync --server . /",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		req, err := ParseRemote(s)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(s) > MaxLength {
			t.Fatalf("accepted %d bytes", len(s))
		}
		switch req.Name {
		case Sign, Pubkey, Version:
		default:
			t.Fatalf("accepted command %q", req.Name)
		}
		if req.Name != Sign && (req.Armor || req.Expect != nil) {
			t.Fatalf("%s with sign options", req.Name)
		}
		if req.Profile != "" && !config.ValidName(req.Profile) {
			t.Fatalf("bad profile %q", req.Profile)
		}
		for _, c := range []byte(s) {
			if c < 0x20 && c != '\t' || c >= 0x7f {
				t.Fatalf("accepted byte 0x%02x", c)
			}
		}
	})
}

// TestLogCommands: checkpoint and proof parse as strictly as sign.
func TestLogCommands(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		err  string
	}{
		{in: "checkpoint", want: Request{Name: Checkpoint}},
		{in: "checkpoint --from 0", want: Request{Name: Checkpoint, HasFrom: true}},
		{in: "checkpoint --from=17", want: Request{Name: Checkpoint, From: 17, HasFrom: true}},
		{in: "proof 1", want: Request{Name: Proof, Seq: 1}},
		{in: "proof 1234567", want: Request{Name: Proof, Seq: 1234567}},
		{in: "checkpoint --from", err: "option --from needs a value"},
		{in: "checkpoint --from 017", err: "N is a tree size"},
		{in: "checkpoint --from -1", err: "N is a tree size"},
		{in: "checkpoint --from 1 --from 2", err: "given twice"},
		{in: "checkpoint 5", err: "unexpected argument"},
		{in: "checkpoint --profile repo", err: "does not take option --profile"},
		{in: "proof", err: "proof needs SEQ"},
		{in: "proof 0", err: "a decimal number from 1"},
		{in: "proof 01", err: "a decimal number from 1"},
		{in: "proof 1 2", err: "unexpected argument"},
		{in: "proof 99999999999999999999", err: "a decimal number from 1"},
		{in: "proof +1", err: "a decimal number from 1"},
		{in: "proof --from 1 1", err: "does not take option --from"},
	} {
		got, err := ParseRemote(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || *got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

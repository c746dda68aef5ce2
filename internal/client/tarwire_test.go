package client

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

type member struct {
	name string
	body string
	typ  byte
}

func makeTar(t testing.TB, ms []member, end bool) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: m.name, Typeflag: typ, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(m.body))
		}
	}
	if end {
		tw.Close()
	} else {
		tw.Flush()
	}
	return b.Bytes()
}

func TestReadSignatureTar(t *testing.T) {
	names := []string{"a.db", "b.pkg"}
	good := []member{{"a.db.sig", "sig-a", 0}, {"b.pkg.sig", "sig-b", 0}}
	sigs, err := readSignatureTar(bytes.NewReader(makeTar(t, good, true)), names, ".sig", MaxSignature)
	if err != nil || len(sigs) != 2 || string(sigs[0]) != "sig-a" || string(sigs[1]) != "sig-b" {
		t.Fatalf("good answer: %q, %v", sigs, err)
	}
	padded := append(makeTar(t, good, true), make([]byte, 8192)...)
	if _, err := readSignatureTar(bytes.NewReader(padded), names, ".sig", MaxSignature); err != nil {
		t.Errorf("answer padded with zeros: %v", err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"swapped", makeTar(t, []member{good[1], good[0]}, true), `member 1 is "b.pkg.sig", not "a.db.sig"`},
		{"one missing", makeTar(t, good[:1], true), "holds 1 signatures for 2 files"},
		{"one more", makeTar(t, append(good, member{"c.sig", "x", 0}), true), "more members than the 2 files"},
		{"no end", makeTar(t, good, false), "cut short"},
		{"cut in a body", makeTar(t, good, true)[:1100], "unexpected EOF"},
		{"trailing data", append(makeTar(t, good, true), 'x'), "data after the end"},
		{"armored names", makeTar(t, []member{{"a.db.asc", "x", 0}, {"b.pkg.asc", "y", 0}}, true), `not "a.db.sig"`},
		{"empty member", makeTar(t, []member{{"a.db.sig", "", 0}, good[1]}, true), "0 bytes"},
		{"too large", makeTar(t, []member{{"a.db.sig", strings.Repeat("x", MaxSignature+1), 0}, good[1]}, true), "16385 bytes"},
		{"a link", makeTar(t, []member{{"a.db.sig", "", tar.TypeSymlink}, good[1]}, true), "not a regular file"},
		{"no tar", []byte("signstar: refused"), "no tar"},
		{"nothing", nil, "holds 0 signatures"},
	} {
		if _, err := readSignatureTar(bytes.NewReader(c.data), names, ".sig", MaxSignature); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func FuzzReadSignatureTar(f *testing.F) {
	f.Add(makeTar(f, []member{{"a.db.sig", "sig-a", 0}, {"b.pkg.sig", "sig-b", 0}}, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		sigs, err := readSignatureTar(bytes.NewReader(data), []string{"a.db", "b.pkg"}, ".sig", MaxSignature)
		if err == nil && (len(sigs) != 2 || len(sigs[0]) == 0 || len(sigs[0]) > MaxSignature) {
			t.Fatalf("accepted %d signatures", len(sigs))
		}
	})
}

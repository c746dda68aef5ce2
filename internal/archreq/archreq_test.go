package archreq

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "upstream", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(h interface{ Sum([]byte) []byte }) []byte { return h.Sum(nil) }

// TestUpstreamSample: upstream's sample request is SHA-512 over "this is
// sample text", and its optional fields are named, not understood.
func TestUpstreamSample(t *testing.T) {
	req, err := Parse(readFixture(t, "sample-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum512([]byte("this is sample text"))
	if got := sum(req.State); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest %x, want %x", got, want)
	}
	if req.Size != 19 || req.Version != "1.0.0" {
		t.Fatalf("size %d version %q", req.Size, req.Version)
	}
	if fmt.Sprint(req.Ignored) != "[XHy1dHj request-time]" {
		t.Fatalf("ignored %v", req.Ignored)
	}
}

// TestRequestDocExample: the illustration in upstream's request.md is 210
// bytes, not 208: after the block count it has an extra byte 64 (the
// output size, as a pre-release of sha2 0.11 serialized it) and one more
// byte of buffer. The release's layout, which sample-request.json and the
// client use, is 208 bytes, so it is refused; without those two bytes it is
// the state after "I like strawberries\n".
func TestRequestDocExample(t *testing.T) {
	doc := readFixture(t, "request.md")
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no json block in request.md")
	}
	if _, err := Parse(m[1]); err == nil || !strings.Contains(err.Error(), "210 bytes, not the 208") {
		t.Fatalf("request.md's 210-byte illustration: %v", err)
	}
	var raw struct {
		Required struct {
			Input struct {
				Content []int `json:"content"`
			} `json:"input"`
		} `json:"required"`
	}
	if err := json.Unmarshal(m[1], &raw); err != nil {
		t.Fatal(err)
	}
	c := raw.Required.Input.Content
	if len(c) != 210 || c[80] != 64 {
		t.Fatalf("request.md's illustration changed: %d bytes, byte 80 = %d", len(c), c[80])
	}
	st := make([]byte, 0, StateSize)
	for i, b := range c {
		if i != 80 && i != len(c)-1 {
			st = append(st, byte(b))
		}
	}
	h, size, err := ResumeSHA512(st)
	if err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum512([]byte("I like strawberries\n"))
	if got := sum(h); !bytes.Equal(got, want[:]) || size != 20 {
		t.Fatalf("digest %x size %d, want %x 20", got, size, want)
	}
}

// TestUpstreamBad: every bad fixture of upstream's is refused.
func TestUpstreamBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/upstream/bad-*.json")
	if len(files) != 6 {
		t.Fatalf("%d bad fixtures, want upstream's 6", len(files))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		_, err := Parse(data)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: %v, want a refusal", filepath.Base(f), err)
			continue
		}
		t.Logf("%s: %v", filepath.Base(f), err)
	}
}

// request is a compact request around state, with the sample's optional fields.
func request(state []byte) []byte {
	nums, _ := json.Marshal(toInts(state))
	return []byte(`{"version":"1.0.0","required":{"input":{"type":"sha2-0.11-SHA512-state","content":` + string(nums) + `},"output":{"type":"OpenPGPv4"}},"optional":{"request-time":1728913277}}`)
}

func toInts(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// TestStateRoundTrip: a crypto/sha512 state after n bytes, in sha2's form,
// resumes to the same digest and carries on hashing as the original does,
// across the block boundaries.
func TestStateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 111, 112, 127, 128, 129, 255, 256, 1000, 10 << 20} {
		data := make([]byte, n)
		rng.Read(data)
		h := sha512.New()
		h.Write(data)
		st, err := SerializeSHA512(h)
		if err != nil {
			t.Fatal(err)
		}
		if st[80] != byte(n%128) {
			t.Fatalf("%d: buffered %d", n, st[80])
		}
		req, err := Parse(request(st))
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		want := sha512.Sum512(data)
		if !bytes.Equal(sum(req.State), want[:]) || req.Size != uint64(n) {
			t.Fatalf("%d: digest or size differs", n)
		}
		req.State.Write([]byte("trailer"))
		h.Write([]byte("trailer"))
		if !bytes.Equal(sum(req.State), sum(h)) {
			t.Fatalf("%d: resumed state hashes on differently", n)
		}
	}
}

func sampleState(t testing.TB) []byte {
	h := sha512.New()
	h.Write([]byte("this is sample text"))
	st, err := SerializeSHA512(h)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRefusals: what request.md calls non-compliant, and what a signing
// server must not guess at.
func TestRefusals(t *testing.T) {
	st := sampleState(t)
	good := string(request(st))
	nums, _ := json.Marshal(toInts(st))
	content := string(nums)
	with := func(mut func([]byte)) string {
		s := append([]byte(nil), st...)
		mut(s)
		return string(request(s))
	}
	for name, c := range map[string]struct{ in, want string }{
		"major 2":             {strings.Replace(good, `"1.0.0"`, `"2.0.0"`, 1), "not understood"},
		"major 0":             {strings.Replace(good, `"1.0.0"`, `"0.0.2"`, 1), "not understood"},
		"no semver":           {strings.Replace(good, `"1.0.0"`, `"1"`, 1), "not a semantic version"},
		"v prefix":            {strings.Replace(good, `"1.0.0"`, `"v1.0.0"`, 1), "not a semantic version"},
		"version number":      {strings.Replace(good, `"1.0.0"`, `1`, 1), "version is not a string"},
		"no version":          {strings.Replace(good, `"version":"1.0.0",`, ``, 1), "no version"},
		"unknown top field":   {strings.Replace(good, `"version"`, `"extra":1,"version"`, 1), `unknown field "extra"`},
		"case variant":        {strings.Replace(good, `"version"`, `"Version"`, 1), `unknown field "Version"`},
		"unknown required":    {strings.Replace(good, `"output":`, `"digest":"x","output":`, 1), `required has the unknown field "digest"`},
		"unknown input field": {strings.Replace(good, `"content":`, `"hash":"sha512","content":`, 1), `required.input has the unknown field "hash"`},
		"unknown output":      {strings.Replace(good, `{"type":"OpenPGPv4"}`, `{"type":"OpenPGPv4","armor":false}`, 1), `required.output has the unknown field "armor"`},
		"output v6":           {strings.Replace(good, `OpenPGPv4`, `OpenPGPv6`, 1), `"OpenPGPv6" is not understood`},
		"required array":      {strings.Replace(good, `"required":{`, `"required":[{`, 1) + "]", "not JSON"},
		"optional not object": {strings.Replace(good, `{"request-time":1728913277}`, `[]`, 1), "optional is not a JSON object"},
		"duplicate name":      {strings.Replace(good, `"version":"1.0.0",`, `"version":"2.0.0","version":"1.0.0",`, 1), "twice"},
		"duplicate optional":  {strings.Replace(good, `{"request-time":1728913277}`, `{"a":1,"a":2}`, 1), "twice"},
		"trailing garbage":    {good + "x", "not JSON"},
		"two values":          {good + good, "not JSON"},
		"short content":       {strings.Replace(good, content, content[:strings.LastIndex(content, ",")]+"]", 1), "207 bytes"},
		"base64 content":      {strings.Replace(good, content, `"CMm88w=="`, 1), "not an array"},
		"byte 256":            {strings.Replace(good, content, "[256"+content[strings.Index(content, ","):], 1), "not an integer 0 to 255"},
		"byte 1.0":            {strings.Replace(good, content, "[8.0"+content[strings.Index(content, ","):], 1), "not an integer"},
		"byte -1":             {strings.Replace(good, content, "[-1"+content[strings.Index(content, ","):], 1), "not an integer"},
		"byte 1e0":            {strings.Replace(good, content, "[8e0"+content[strings.Index(content, ","):], 1), "not an integer"},
		"byte string":         {strings.Replace(good, content, `["8"`+content[strings.Index(content, ","):], 1), "not an integer"},
		"buffer 128":          {with(func(s []byte) { s[80] = 128 }), "buffers 128 bytes"},
		"after buffer":        {with(func(s []byte) { s[81+19] = 1 }), "non-zero byte 0x01 at offset 100"},
		"last byte":           {with(func(s []byte) { s[207] = 0xff }), "at offset 207"},
		"blocks over 2^64":    {with(func(s []byte) { s[72] = 1 }), "more than 2^63"},
		"blocks over 2^63":    {with(func(s []byte) { s[71] = 0x01 }), "more than 2^63"},
		"deep optional":       {strings.Replace(good, `{"request-time":1728913277}`, `{"a":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)+`}`, 1), "nests deeper"},
		"not an object":       {`[1,2,3]`, "not a JSON object"},
		"empty":               {``, "not JSON"},
	} {
		_, err := Parse([]byte(c.in))
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal with %q", name, err, c.want)
		}
	}
	// What request.md allows: any optional field, none at all, a later
	// 1.x version, white space around the value.
	for name, in := range map[string]string{
		"no optional":     strings.Replace(good, `,"optional":{"request-time":1728913277}`, ``, 1),
		"odd optional":    strings.Replace(good, `{"request-time":1728913277}`, `{"x":{"y":[1,{"z":null}]},"request-time":"soon"}`, 1),
		"minor version":   strings.Replace(good, `"1.0.0"`, `"1.7.2"`, 1),
		"pre-release":     strings.Replace(good, `"1.0.0"`, `"1.1.0-rc.1+build.5"`, 1),
		"white space":     "\n  " + good + "\n\n",
		"max blocks 2^56": with(func(s []byte) { s[71] = 0x00; s[70] = 0xff }),
	} {
		if _, err := Parse([]byte(in)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestReadBound: Read stops one byte past MaxRequest.
func TestReadBound(t *testing.T) {
	good := request(sampleState(t))
	pad := bytes.Repeat([]byte(" "), MaxRequest-len(good))
	if _, n, err := Read(bytes.NewReader(append(append([]byte(nil), good...), pad...))); err != nil || n != MaxRequest {
		t.Fatalf("a request of exactly MaxRequest: %d, %v", n, err)
	}
	_, n, err := Read(bytes.NewReader(append(append(append([]byte(nil), good...), pad...), make([]byte, 1<<20)...)))
	if err != ErrTooLarge || n != MaxRequest+1 {
		t.Fatalf("an oversized request: read %d, %v", n, err)
	}
}

// TestResponse: response.md's shape, the armor intact.
func TestResponse(t *testing.T) {
	armored := "-----BEGIN PGP SIGNATURE-----\n\nwnUE\n=XHyn\n-----END PGP SIGNATURE-----\n"
	var got map[string]string
	if err := json.Unmarshal(Response([]byte(armored)), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["version"] != "1.0.0" || got["signature"] != strings.TrimSuffix(armored, "\n") {
		t.Fatalf("%v", got)
	}
}

// FuzzParse: Parse never panics, and what it accepts is a state in sha2's
// canonical form (SerializeSHA512 of the resumed state gives back exactly
// the content), of the size it reports.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/upstream/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		var top struct {
			Required struct {
				Input struct {
					Content []int `json:"content"`
				} `json:"input"`
			} `json:"required"`
		}
		if err := json.Unmarshal(data, &top); err != nil {
			t.Fatalf("accepted, but encoding/json cannot read it: %v", err)
		}
		st, err := SerializeSHA512(req.State)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(toInts(st)) != fmt.Sprint(top.Required.Input.Content) {
			t.Fatalf("accepted a state that is not canonical:\n%v\n%v", top.Required.Input.Content, toInts(st))
		}
		if got := binary.LittleEndian.Uint64(st[64:])*128 + uint64(st[80]); got != req.Size {
			t.Fatalf("size %d, the state says %d", req.Size, got)
		}
	})
}

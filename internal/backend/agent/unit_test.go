package agent

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestParseRedirect(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"%Assuan%\nsocket=/run/user/1000/gnupg/S.gpg-agent\n", "/run/user/1000/gnupg/S.gpg-agent", true},
		{"%Assuan%\nsocket=/abs/S\r\n", "/abs/S", true},
		{"%Assuan%\nsocket=S.gpg-agent\n", "", false},
		{"%Assuan%\nsocket=${HOME}/S\n", "", false},
		{"%Assuan%\nsocket=/run/$X/S\n", "", false},
		{"%Assuan%\nnot-a-socket\n", "", false},
		{"socket=/abs/S\n", "", false},
		{"", "", false},
	} {
		got, err := parseRedirect([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRedirect(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind lineKind
		data string
		code uint32
		ok   bool
	}{
		{"OK", lineOK, "", 0, true},
		{"OK Pleased to meet you", lineOK, "", 0, true},
		{"ERR 67108875 Bad passphrase <GPG Agent>", lineERR, "", 67108875, true},
		{"ERR x", 0, "", 0, false},
		{"ERR 99999999999 big", 0, "", 0, false},
		{"D a%25b%0D%0Ac", lineData, "a%b\r\nc", 0, true},
		{"D %2", 0, "", 0, false},
		{"D %zz", 0, "", 0, false},
		{"D", 0, "", 0, false},
		{"S INQUIRE_MAXLEN 255", lineStatus, "", 0, true},
		{"INQUIRE PASSPHRASE", lineInquire, "", 0, true},
		{"INQUIRE", 0, "", 0, false},
		{"# comment", lineComment, "", 0, true},
		{"#comment", lineComment, "", 0, true},
		{"HELLO", 0, "", 0, false},
		{"", 0, "", 0, false},
	} {
		r, err := parseLine([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("parseLine(%q): err %v", tc.in, err)
			continue
		}
		if err == nil && (r.kind != tc.kind || string(r.data) != tc.data || r.code != tc.code) {
			t.Errorf("parseLine(%q) = %+v", tc.in, r)
		}
	}
}

func TestReadReplyLimits(t *testing.T) {
	long := append(bytes.Repeat([]byte("x"), maxLine+1), '\n')
	c, _ := replayConn(append([]byte("D "), long...))
	if _, err := c.readReply("PKSIGN", nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("over-long line: %v", err)
	}
	many := bytes.Repeat([]byte("S PROGRESS x\n"), maxReply/10)
	c, _ = replayConn(many)
	if _, err := c.readReply("PKSIGN", nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("endless status lines: %v", err)
	}
	c, _ = replayConn([]byte("D (1:a"))
	if _, err := c.readReply("PKSIGN", nil); !errors.Is(err, ErrAgentDead) {
		t.Errorf("cut off: %v", err)
	}
	c, sent := replayConn([]byte("INQUIRE NEEDPIN\nERR 83886179 Operation cancelled\n"))
	if _, err := c.readReply("PKSIGN", nil); err == nil || sent.String() != "CAN\n" {
		t.Errorf("unknown inquiry: %v, sent %q", err, sent)
	}
}

func TestConvert(t *testing.T) {
	rsaKey := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}
	s := &Signer{public: rsaKey}
	sig, err := s.convert(&sigVal{algo: "rsa", s: []byte{0, 1, 2}})
	if err != nil || len(sig) != 256 || sig[254] != 1 || sig[255] != 2 {
		t.Errorf("rsa: %x, %v", sig, err)
	}
	if _, err := s.convert(&sigVal{algo: "rsa", s: make([]byte, 257)}); err != nil {
		t.Errorf("rsa zeros: %v", err)
	}
	if _, err := s.convert(&sigVal{algo: "rsa", s: bytes.Repeat([]byte{1}, 257)}); !errors.Is(err, ErrProtocol) {
		t.Errorf("rsa too long: %v", err)
	}
	if _, err := s.convert(&sigVal{algo: "eddsa", r: []byte{1}, s: []byte{1}}); !errors.Is(err, ErrProtocol) {
		t.Errorf("rsa key, eddsa sig: %v", err)
	}

	s = &Signer{public: ed25519.PublicKey(make([]byte, 32))}
	sig, err = s.convert(&sigVal{algo: "eddsa", r: []byte{0, 7}, s: bytes.Repeat([]byte{9}, 32)})
	if err != nil || len(sig) != 64 || sig[31] != 7 || sig[30] != 0 || sig[32] != 9 {
		t.Errorf("eddsa: %x, %v", sig, err)
	}

	s = &Signer{public: &ecdsa.PublicKey{Curve: elliptic.P256()}}
	der, err := s.convert(&sigVal{algo: "ecdsa", r: []byte{0, 0x80}, s: []byte{5}})
	want := []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x05}
	if err != nil || !bytes.Equal(der, want) {
		t.Errorf("ecdsa: %x, %v", der, err)
	}
}

func TestParseSigVal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		algo string
		ok   bool
	}{
		{"(7:sig-val(3:rsa(1:s2:\x01\x02)))", "rsa", true},
		{"(7:sig-val(5:ecdsa(1:r1:\x01)(1:s1:\x02)))", "ecdsa", true},
		{"(7:sig-val(5:flags5:eddsa)(5:eddsa(1:r1:\x01)(1:s1:\x02)))", "eddsa", true},
		{"(7:sig-val(3:dsa(1:r1:\x01)(1:s1:\x02)))", "", false},
		{"(7:sig-val(5:ecdsa(1:r1:\x01)))", "", false},
		{"(7:sig-val(3:rsa(1:s0:)))", "", false},
		{"(7:enc-val(3:rsa(1:s1:\x01)))", "", false},
		{"(7:sig-val(3:rsa(1:s1:\x01)))x", "", false},
		{"(7:sig-val(3:rsa(1:s9:\x01)))", "", false},
		{"(7:sig-val(3:rsa(1:s01:\x01)))", "", false},
		{"(7:sig-val[1:h]3:rsa)", "", false},
		{"3:abc", "", false},
		{"((((((((((1:a))))))))))", "", false},
	} {
		sv, err := parseSigVal([]byte(tc.in))
		if (err == nil) != tc.ok || (err == nil && sv.algo != tc.algo) {
			t.Errorf("parseSigVal(%q) = %+v, %v", tc.in, sv, err)
		}
	}
}

func TestSignRefusesBadDigest(t *testing.T) {
	s := &Signer{pub: &packet.PublicKey{PubKeyAlgo: packet.PubKeyAlgoRSA}, public: &rsa.PublicKey{}}
	if _, err := s.Sign(nil, make([]byte, 20), crypto.SHA256); err == nil {
		t.Error("20-byte digest signed as SHA-256")
	}
	if _, err := s.Sign(nil, make([]byte, 32), crypto.Hash(0)); err == nil {
		t.Error("RSA without a hash")
	}
}

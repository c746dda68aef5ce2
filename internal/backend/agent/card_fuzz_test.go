package agent

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCardStatus feeds whole replies to KEYINFO and to scdaemon commands
// through the agent (seeds recorded from a real gpg-agent and scdaemon
// with the emulated card: go test -run TestCardPINGuard -capture-seeds DIR,
// files keyinfo-* and scd-*) through the Assuan reader, the status
// unescaping and the KEYINFO and CHV-STATUS parsers. Whatever the bytes,
// the result is in range or one of the package's errors.
func FuzzCardStatus(f *testing.F) {
	f.Add([]byte("S CHV-STATUS +0+127+127+127+3+0+3\nOK\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		c, _ := replayConn(reply)
		var lines [][2]string
		c.status = func(kw, args string) { lines = append(lines, [2]string{kw, args}) }
		if _, err := c.readReply("SCD", nil); err != nil {
			var ae *AgentError
			if !errors.As(err, &ae) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrAgentDead) {
				t.Fatalf("untyped error: %v", err)
			}
		}
		for _, l := range lines {
			switch l[0] {
			case "KEYINFO":
				f := strings.Fields(l[1])
				if len(f) == 0 {
					continue
				}
				typ, serial, idstr, err := parseKeyInfo(l[1], f[0])
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("untyped error: %v", err)
					}
					continue
				}
				if typ == "T" && (!validSerial(serial) || !printableToken(idstr)) {
					t.Fatalf("card key %q %q accepted", serial, idstr)
				}
			case "CHV-STATUS", "SERIALNO":
				s, err := unescapeStatus(l[1])
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("untyped error: %v", err)
					}
					continue
				}
				if strings.ContainsAny(s, "\n\r") {
					t.Fatalf("line break in %q", s)
				}
				if l[0] != "CHV-STATUS" {
					continue
				}
				n, err := parseCHVStatus(s)
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("untyped error: %v", err)
					}
					continue
				}
				if n < 0 || n > 255 {
					t.Fatalf("counter %d from %q", n, s)
				}
			}
		}
	})
}

package agent

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
)

// BenchmarkSign1KiB signs 1 KiB through a real gpg-agent and, for the same
// key, through the key file backend: the difference is what the agent round
// trips (SIGKEY, SETHASH, PKSIGN) cost per signature.
//
//	go test ./internal/backend/agent -run '^$' -bench Sign1KiB
func BenchmarkSign1KiB(b *testing.B) {
	g := startAgent(b)
	data := bytes.Repeat([]byte{0xa5}, 1024)
	keys := []struct {
		name string
		cfg  *packet.Config
	}{
		{"ed25519", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}},
		{"rsa3072", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072}},
	}
	opened := map[string]map[string]*backend.Key{"agent": {}, "keyfile": {}}
	for _, k := range keys {
		e := newKey(b, k.name, k.cfg)
		g.importSecret(e)
		ak, err := Open(Options{Cert: writeCert(b, e), Socket: g.socket}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ak.Close() })
		opened["agent"][k.name] = ak
		fk, err := keyfile.Open(keyfile.Options{Key: writeSecret(b, e)}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		opened["keyfile"][k.name] = fk
	}
	for _, backendName := range []string{"agent", "keyfile"} {
		b.Run(backendName, func(b *testing.B) {
			for _, k := range keys {
				key := opened[backendName][k.name]
				b.Run(k.name, func(b *testing.B) {
					b.SetBytes(int64(len(data)))
					for b.Loop() {
						in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
						if err != nil {
							b.Fatal(err)
						}
						if _, err := signer.Sign(in, key, time.Now()); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// writeSecret writes e's secret key, armored, to a 0600 file.
func writeSecret(tb testing.TB, e *openpgp.Entity) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "secret.asc")
	if err := os.WriteFile(p, armoredSecret(tb, e), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkCardSign1KiB signs 1 KiB with a key generated on the emulated
// OpenPGP card (agent, scdaemon, pcscd, vpcd, card: the PIN guard's two
// reads, the PIN sent once, the card's RSA-2048 signature) and, in the
// same agent, with a soft RSA-2048 key.
//
//	go test ./internal/backend/agent -run '^$' -bench CardSign1KiB
func BenchmarkCardSign1KiB(b *testing.B) {
	r := newCardRig(b)
	card, err := r.open(r.pin)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { card.Close() })
	e := newKey(b, "soft-rsa2048", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048})
	r.g.GPG(armoredSecret(b, e), "--import")
	soft, err := Open(Options{Cert: writeCert(b, e), Socket: r.g.Socket}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { soft.Close() })
	data := bytes.Repeat([]byte{0xa5}, 1024)
	for _, k := range []struct {
		name string
		key  *backend.Key
	}{{"card-rsa2048", card}, {"agent-rsa2048", soft}} {
		b.Run(k.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := signer.Sign(in, k.key, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

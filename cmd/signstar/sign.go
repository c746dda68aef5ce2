package main

import (
	"bytes"
	_ "crypto/sha256" // registers crypto.SHA256 for --expect
	_ "crypto/sha512" // registers crypto.SHA512 for --expect
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/signer"
)

// selectProfile applies the contract: a client's --profile only if the
// caller is allowed it; else the server's --profile; else the first profile
// the caller is allowed.
func (r *run) selectProfile(cfg *config.Config, asked string) (*config.Profile, error) {
	allowed := func(p *config.Profile) bool {
		return p.Allows(r.rec.User) && p.AllowsSSHKey(r.rec.SSHKey)
	}
	name := asked
	if name == "" {
		name = r.inv.serverProfile
	}
	if name != "" {
		p := cfg.Profile(name)
		// The same words whether the profile is missing or forbidden, so a
		// client cannot list the profiles by trying names.
		if p == nil || !allowed(p) {
			return nil, fmt.Errorf("profile %q is not available to user %s%s", name, r.rec.User, keyHint(r.rec.SSHKey))
		}
		return p, nil
	}
	for i := range cfg.Profiles {
		if p := &cfg.Profiles[i]; allowed(p) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no profile is available to user %s%s: add the user to a profile's users", r.rec.User, keyHint(r.rec.SSHKey))
}

func keyHint(fp string) string {
	if fp == "" {
		return ""
	}
	return " with SSH key " + fp
}

func (r *run) pubkey(cfg *config.Config, req *command.Request) int {
	p, err := r.selectProfile(cfg, req.Profile)
	if err != nil {
		return r.refuse(err.Error())
	}
	r.rec.Profile = p.Name
	out, err := loadCertificate(p)
	if err != nil {
		return r.failed(err.Error())
	}
	return r.output(out)
}

// interrupted holds the signal that asked us to stop, if any.
var interrupted atomic.Value

func (r *run) sign(cfg *config.Config, req *command.Request) int {
	// SIGHUP, SIGINT and SIGTERM are ignored for the first signalGrace, and
	// after that turned into an audited failure of the read (stopOnSignal).
	// Catching them costs three threads (os/signal's), a tenth of a small
	// request's time; a request done within the grace is done, and audited,
	// before anyone could have meant to stop it. Before this line a signal
	// kills the process, before any key or input was touched.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if isTerminal(r.stdin) {
		return r.refuse("stdin is a terminal: pipe the artifact in (signstar sign < FILE > FILE.sig)")
	}
	upload, err := newUploadReader(r.stdin, overridden(idleTimeout, idleTimeoutForTests))
	if err != nil {
		return r.failed(err.Error())
	}
	time.AfterFunc(overridden(signalGrace, signalGraceForTests), upload.stopOnSignal)
	p, err := r.selectProfile(cfg, req.Profile)
	if err != nil {
		return r.refuse(err.Error())
	}
	r.rec.Profile = p.Name
	r.rec.Sandbox = withEnforced(r.rec.Sandbox, p)
	h, err := signer.ParseHash(p.Hash)
	if err != nil {
		return r.failed(err.Error())
	}

	key, err := openBackend(p, now())
	if err != nil {
		return r.failed(backendMessage(p, err))
	}
	defer key.Close()
	r.rec.Key = backend.Fingerprint(key.Public)
	if err := signer.CheckHash(key.Public, h); err != nil {
		return r.failed(fmt.Sprintf("profile %s: %v", p.Name, err))
	}

	report, err := lockdown(cfg, r.log, key.FDs)
	r.rec.Sandbox = withEnforced(report, p)
	if err != nil {
		return r.failed(err.Error())
	}

	det := newKindDetector(p)
	defer det.Close()
	var extra hash.Hash // --expect with another algorithm than the profile's
	if req.Expect != nil && req.Expect.Hash != h {
		extra = req.Expect.Hash.New()
	}
	observe := func(b []byte) {
		det.Write(b)
		if extra != nil {
			extra.Write(b)
		}
	}
	in, err := signer.Read(upload, h, p.MaxSize, observe)
	if err != nil {
		var part *signer.Partial
		if errors.As(err, &part) {
			r.rec.Size, r.rec.Digest = part.Input.Size, part.Input.DigestString()
		}
		if signer.IsTooLarge(err) {
			return r.refuse(fmt.Sprintf("input larger than max_size %s of profile %s", p.MaxSizeText, p.Name))
		}
		if sig := interrupted.Load(); sig != nil {
			return r.failed(fmt.Sprintf("interrupted by %v while reading the artifact", sig))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return r.failed(fmt.Sprintf("no data from the client for %v after %d bytes; nothing was signed", upload.idle, r.rec.Size))
		}
		return r.failed("cannot read the artifact from stdin: " + errText(err))
	}
	r.rec.Size, r.rec.Digest = in.Size, in.DigestString()
	r.rec.Kind = det.Kind()
	if sig := interrupted.Load(); sig != nil {
		return r.failed(fmt.Sprintf("interrupted by %v while reading the artifact", sig))
	}
	if clientGone(r.stdout) {
		return r.failed("the client disconnected before the upload finished; nothing was signed")
	}

	if req.Expect != nil {
		got := in.Digest()
		if extra != nil {
			got = extra.Sum(nil)
		}
		if subtle.ConstantTimeCompare(got, req.Expect.Digest) != 1 {
			return r.refuse(fmt.Sprintf("digest mismatch: expected %s, received %d bytes hashing to %s:%x", req.Expect, in.Size, signer.HashName(req.Expect.Hash), got))
		}
	}
	if err := checkKind(p, r.rec.Kind); err != nil {
		return r.refuse(err.Error())
	}

	// With a rate, the log stays locked from the count to the append, so
	// two signers cannot both take the last slot. Without one the lock is
	// taken for the append only, and signers do not queue behind each
	// other's (RSA, agent, card) signing.
	var tx *audit.Tx
	if p.Rate != nil {
		if tx, err = r.log.Lock(); err != nil {
			return r.fail(exitFailed, err.Error())
		}
		defer tx.Unlock()
		if err := checkRate(tx, p, now()); err != nil {
			if isRateRefusal(err) {
				return r.finishTx(tx, audit.Refused, exitRefused, err.Error())
			}
			return r.finishTx(tx, audit.Failed, exitFailed, err.Error())
		}
	}
	created := now()
	sig, err := signer.Sign(in, key, created)
	if err != nil {
		return r.finishTx(tx, audit.Failed, exitFailed, backendMessage(p, err))
	}
	if clientGone(r.stdout) {
		return r.finishTx(tx, audit.Failed, exitFailed, "the client disconnected before the signature could be sent; it was discarded")
	}
	out := sig
	if req.Armor {
		out, err = armorSignature(sig)
		if err != nil {
			return r.finishTx(tx, audit.Failed, exitFailed, "cannot armor the signature: "+err.Error())
		}
	}
	if tx == nil {
		if tx, err = r.log.Lock(); err != nil {
			return r.fail(exitFailed, "not signing: "+err.Error())
		}
		defer tx.Unlock()
	}
	r.rec.Outcome, r.rec.Reason = audit.Signed, ""
	r.rec.Signature = base64.StdEncoding.EncodeToString(sig)
	r.rec.Time = created.UTC().Format(audit.TimeFormat)
	if err := tx.Append(r.rec); err != nil {
		return r.fail(exitFailed, "not signing: "+err.Error())
	}
	tx.Unlock()
	if _, err := r.stdout.Write(out); err != nil {
		// The record says signed; say that it never arrived.
		r.rec.Signature = ""
		return r.failed("the signature was made and audited but could not be written to stdout: " + errText(err))
	}
	return exitOK
}

// finishTx is finish for a request that may hold the log lock (tx not nil).
func (r *run) finishTx(tx *audit.Tx, outcome string, code int, reason string) int {
	if tx == nil {
		return r.finish(outcome, code, reason)
	}
	return r.finishWith(tx.Append, outcome, code, reason)
}

func armorSignature(sig []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP SIGNATURE", nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(sig); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// idleTimeout bounds how long an upload may stall. A client that keeps the
// connection open without sending would otherwise hold the process, and
// with a PIV profile the card, for ever.
var idleTimeout = 10 * time.Minute

// idleTimeoutForTests, set with -ldflags -X, replaces idleTimeout.
var idleTimeoutForTests string

// signalGrace is how long a sign request runs before SIGHUP, SIGINT and
// SIGTERM stop it (see sign).
var signalGrace = 10 * time.Millisecond

// signalGraceForTests, set with -ldflags -X, replaces signalGrace so that a
// test can see both phases.
var signalGraceForTests string

// overridden is d, or the duration a test set with -ldflags -X.
func overridden(d time.Duration, forTests string) time.Duration {
	if t, err := time.ParseDuration(forTests); err == nil {
		return t
	}
	return d
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// loadCertificate reads the profile's certificate, armored, as given: the
// public part of the key file, or the certificate file of an agent or card
// profile.
func loadCertificate(p *config.Profile) ([]byte, error) {
	e, err := backend.ReadPublic(p.Key)
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("cannot read key %s: %s", p.Key, errText(err))
	}
	return e, err
}

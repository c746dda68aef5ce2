// Package tpm signs with a key held in the host's TPM 2.0, through go-tpm
// (pure Go): `signstar tpm setup` (Setup) makes a non-exportable signing key
// as a child of the TPM's storage root key, optionally bound to a PCR
// policy, and writes its key blob and OpenPGP certificate; Open loads the
// key and refuses when the PCRs no longer hold the values it was made with.
//
// The key blob, not a persistent handle: persistent handles are few (seven
// for the owner on many TPMs), shared with every other TPM user on the host
// and need the owner's auth to evict; a blob is a file next to the
// configuration, one per profile, removed with it, useless on any other TPM
// (its private part is encrypted under this TPM's storage root key, which is
// derived from the owner seed and made again, the same, at each Open).
//
// The dictionary-attack guard: a key with an auth value is protected by the
// TPM's lockout counter. Before presenting the auth value the counter is
// read, and with one failure left (or the TPM in lockout) nothing is
// presented (LockoutError), so a stale auth_file cannot lock the TPM out for
// every user of the host.
package tpm

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
)

// Options are a tpm profile's: [profile] key and [profile.tpm] (see
// config.TPM for each).
type Options struct {
	Cert     string
	Device   string
	PCRs     []int
	AuthFile string
	KeyBlob  string
}

// Open reads the certificate o.Cert and the key blob o.KeyBlob,
// opens the TPM at o.Device, loads the key and checks, before any
// artifact is read, that the certificate's signing key is the TPM's key and
// that the PCRs it is bound to still hold their values (PCRError). The
// returned key holds the TPM open (its descriptor in Key.FDs) until Close.
func Open(o Options, now time.Time) (*backend.Key, error) {
	e, keys, err := backend.CertSigningKeys(o.Cert, now)
	if err != nil {
		return nil, err
	}
	blob, err := ReadBlob(o.KeyBlob)
	if err != nil {
		return nil, err
	}
	pa, err := parsePublic(blob.Public)
	if err != nil {
		return nil, fmt.Errorf("key blob %s: %v", o.KeyBlob, err)
	}
	if got, want := joinInts(blob.Indices(), ","), joinInts(o.PCRs, ","); got != want {
		return nil, fmt.Errorf("key blob %s is bound to PCRs [%s] but [profile.tpm] pcrs says [%s]: fix pcrs, or re-provision with 'signstar tpm setup'", o.KeyBlob, got, want)
	}
	var auth []byte
	if o.AuthFile != "" {
		if auth, err = backend.ReadPassphrase(o.AuthFile); err != nil {
			return nil, err
		}
	}
	if err := checkPolicy(pa, blob, auth != nil); err != nil {
		clear(auth)
		return nil, fmt.Errorf("key blob %s: %v", o.KeyBlob, err)
	}
	c, err := dial(o.Device)
	if err != nil {
		clear(auth)
		return nil, err
	}
	s := &tpmSigner{c: c, pa: pa, blob: blob, blobPath: o.KeyBlob, auth: auth, authFile: o.AuthFile}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.checkPCRs(); err != nil {
		s.Close()
		return nil, err
	}
	if s.cert, err = s.match(keys); err != nil {
		s.Close()
		return nil, err
	}
	// SigningKeys leaves the algorithm to the chosen key: the TPM's.
	if err := backend.CheckAlgorithm(s.cert); err != nil {
		s.Close()
		return nil, err
	}
	if s.needsGuard() {
		// Refuse early, before the artifact is read; Sign checks again.
		st, err := readDA(c)
		if err == nil {
			err = st.guard()
		}
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	k := &backend.Key{Cert: e, Public: s.cert, Signer: s, Closer: s}
	if c.fd >= 0 {
		k.FDs = []int{c.fd}
	}
	return k, nil
}

// ReadBlob reads and parses a key blob file, which must not be open to group
// or others.
func ReadBlob(path string) (*Blob, error) {
	if err := backend.CheckPrivate(path); err != nil {
		return nil, err
	}
	data, err := backend.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := ParseBlob(data)
	if err != nil {
		return nil, fmt.Errorf("key blob %s: %v", path, err)
	}
	return b, nil
}

// checkPolicy checks that the key's authPolicy is what its PCR values (and
// an auth value, if any) give, and that an unbound key takes its auth value
// directly; a key blob edited by hand fails here, not in the TPM.
func checkPolicy(pa *publicArea, b *Blob, withAuth bool) error {
	if len(b.PCRs) == 0 {
		if len(pa.AuthPolicy.Buffer) != 0 || !pa.ObjectAttributes.UserWithAuth {
			return errors.New("the key has a policy but the blob lists no PCRs: the blob was edited; re-provision with 'signstar tpm setup'")
		}
		return nil
	}
	if pa.ObjectAttributes.UserWithAuth {
		return errors.New("the key is usable without its PCR policy: not a key signstar made; re-provision with 'signstar tpm setup'")
	}
	want, err := policyDigest(b.PCRs, withAuth)
	if err != nil {
		return err
	}
	if string(want) == string(pa.AuthPolicy.Buffer) {
		return nil
	}
	if other, err := policyDigest(b.PCRs, !withAuth); err == nil && string(other) == string(pa.AuthPolicy.Buffer) {
		if withAuth {
			return errors.New("the key was made without an auth value, but auth_file is set: remove auth_file, or re-provision")
		}
		return errors.New("the key was made with an auth value: set auth_file")
	}
	return errors.New("the PCR values in the blob do not give the key's policy: the blob was edited; re-provision with 'signstar tpm setup'")
}

// tpmSigner signs with the loaded key. It is the crypto.Signer of
// backend.Key and its Closer.
type tpmSigner struct {
	mu       sync.Mutex
	c        *conn
	pa       *publicArea
	blob     *Blob
	blobPath string
	auth     []byte
	authFile string
	cert     *packet.PublicKey

	handle tpm2.TPMHandle // the loaded key; 0 when not loaded
	name   []byte
}

// load makes the storage root key, checks that it is the blob's parent and
// loads the key under it.
func (s *tpmSigner) load() error {
	srk, srkName, err := createSRK(s.c)
	if err != nil {
		return s.busy(err)
	}
	defer flush(s.c, srk)
	if string(srkName) != string(s.blob.Parent) {
		return &ForeignBlobError{Path: s.blobPath}
	}
	rsp, err := run(func() (*tpm2.LoadResponse, error) {
		return tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: srk, Name: tpm2.TPM2BName{Buffer: srkName}, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: s.blob.Private},
			InPublic:     tpm2.New2B(s.pa.TPMTPublic),
		}.Execute(s.c)
	})
	if err != nil {
		if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCSize) || errors.Is(err, tpm2.TPMRCValue) {
			return &ForeignBlobError{Path: s.blobPath}
		}
		return s.busy(fmt.Errorf("loading the key from %s: %w", s.blobPath, err))
	}
	if string(rsp.Name.Buffer) != string(s.pa.name()) {
		flush(s.c, rsp.ObjectHandle)
		return fmt.Errorf("the TPM loaded %s under another name than its public area gives", s.blobPath)
	}
	s.handle, s.name = rsp.ObjectHandle, rsp.Name.Buffer
	return nil
}

func (s *tpmSigner) busy(err error) error {
	var be *BusyError
	if errors.As(err, &be) {
		return be
	}
	return err
}

// checkPCRs compares the bound PCRs with the values in the blob.
func (s *tpmSigner) checkPCRs() error {
	if len(s.blob.PCRs) == 0 {
		return nil
	}
	cur, err := readPCRs(s.c, s.blob.Indices())
	if err != nil {
		return s.busy(err)
	}
	var changed []int
	for _, v := range s.blob.PCRs {
		if cur[v.Index] != v.Digest {
			changed = append(changed, v.Index)
		}
	}
	if len(changed) > 0 {
		return &PCRError{Changed: changed}
	}
	return nil
}

// match returns the certificate key that is the TPM's key.
func (s *tpmSigner) match(keys []*packet.PublicKey) (*packet.PublicKey, error) {
	for _, k := range keys {
		pk, _, err := signer.PublicKey(s.pa.pub, k.CreationTime)
		if err != nil {
			return nil, err
		}
		if pk.PubKeyAlgo == k.PubKeyAlgo && string(pk.Fingerprint) == string(k.Fingerprint) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("the key in %s is not the certificate's signing key %s: give the certificate tpm setup wrote for this blob", s.blobPath, backend.Fingerprint(keys[0]))
}

func (s *tpmSigner) needsGuard() bool {
	return s.auth != nil && !s.pa.ObjectAttributes.NoDA
}

// Public is the key's public key.
func (s *tpmSigner) Public() crypto.PublicKey { return s.pa.pub }

// Sign signs digest with TPM2_Sign: RSASSA (PKCS #1 v1.5) or ECDSA with
// opts.HashFunc() (SHA-256, SHA-384 or SHA-512, as the TPM supports them).
// A PCR-bound key is authorized by a policy session (PolicyPCR over the
// values at setup, PolicyAuthValue when it has an auth value); an unbound
// one by an HMAC session over its auth value. The signature is verified
// before it is returned.
func (s *tpmSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle == 0 {
		return nil, errors.New("the TPM key is closed")
	}
	h := opts.HashFunc()
	var alg tpm2.TPMIAlgHash
	switch h {
	case crypto.SHA256:
		alg = tpm2.TPMAlgSHA256
	case crypto.SHA384:
		alg = tpm2.TPMAlgSHA384
	case crypto.SHA512:
		alg = tpm2.TPMAlgSHA512
	default:
		return nil, fmt.Errorf("the TPM backend signs SHA-256, SHA-384 or SHA-512 digests, not %v", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("a %v digest has %d bytes, not %d", h, h.Size(), len(digest))
	}
	if s.needsGuard() {
		st, err := readDA(s.c)
		if err == nil {
			err = st.guard()
		}
		if err != nil {
			return nil, s.busy(err)
		}
	}
	scheme := tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgRSASSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSchemeHash{HashAlg: alg})}
	if s.pa.ecc {
		scheme = tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: alg})}
	}
	rsp, err := run(func() (*tpm2.SignResponse, error) {
		return tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: s.handle, Name: tpm2.TPM2BName{Buffer: s.name}, Auth: s.session()},
			Digest:     tpm2.TPM2BDigest{Buffer: digest},
			InScheme:   scheme,
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(s.c)
	})
	if err != nil {
		return nil, s.signErr(err)
	}
	sig, err := signatureBytes(rsp, s.pa.ecc, alg)
	if err != nil {
		return nil, err
	}
	if !checkSignature(s.pa.pub, h, digest, sig) {
		return nil, errors.New("the TPM returned a signature that does not verify with its key")
	}
	return sig, nil
}

// session authorizes one use of the key.
func (s *tpmSigner) session() tpm2.Session {
	if len(s.blob.PCRs) == 0 {
		if s.auth == nil {
			return tpm2.PasswordAuth(nil)
		}
		return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(s.auth))
	}
	vals, withAuth := s.blob.PCRs, s.auth != nil
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(t transport.TPM, sess tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		ind := make([]int, len(vals))
		for i, v := range vals {
			ind[i] = v.Index
		}
		if _, err := (tpm2.PolicyPCR{PolicySession: sess, PcrDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(vals)}, Pcrs: pcrSelection(ind)}).Execute(t); err != nil {
			return err
		}
		if withAuth {
			if _, err := (tpm2.PolicyAuthValue{PolicySession: sess}).Execute(t); err != nil {
				return err
			}
		}
		return nil
	}, tpm2.Auth(s.auth))
}

// signErr words a failed TPM2_Sign.
func (s *tpmSigner) signErr(err error) error {
	switch {
	case errors.Is(err, tpm2.TPMRCAuthFail), errors.Is(err, tpm2.TPMRCBadAuth):
		left := -1
		if st, derr := readDA(s.c); derr == nil && st.max > 0 {
			left = st.max - st.counter
		}
		if s.pa.ObjectAttributes.NoDA {
			left = -1
		}
		return &AuthError{File: s.authFile, Left: left}
	case errors.Is(err, tpm2.TPMRCLockout):
		return &LockoutError{InLockout: true}
	case errors.Is(err, tpm2.TPMRCValue), errors.Is(err, tpm2.TPMRCPolicyFail):
		// PolicyPCR refuses a pcrDigest the PCRs no longer give.
		if perr := s.checkPCRs(); perr != nil {
			return perr
		}
	}
	return s.busy(fmt.Errorf("TPM2_Sign: %w", err))
}

// signatureBytes returns the signature in backend.Key's conventions: the
// PKCS #1 v1.5 signature for RSA, ASN.1 DER (r, s) for ECDSA.
func signatureBytes(rsp *tpm2.SignResponse, ecc bool, alg tpm2.TPMIAlgHash) ([]byte, error) {
	if ecc {
		if rsp.Signature.SigAlg != tpm2.TPMAlgECDSA {
			return nil, errors.New("the TPM returned no ECDSA signature")
		}
		e, err := rsp.Signature.Signature.ECDSA()
		if err != nil || e.Hash != alg {
			return nil, errors.New("the TPM returned a malformed ECDSA signature")
		}
		r, ss := new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer)
		if r.Sign() == 0 || ss.Sign() == 0 || len(e.SignatureR.Buffer) > 32 || len(e.SignatureS.Buffer) > 32 {
			return nil, errors.New("the TPM returned a malformed ECDSA signature")
		}
		return asn1.Marshal(struct{ R, S *big.Int }{r, ss})
	}
	if rsp.Signature.SigAlg != tpm2.TPMAlgRSASSA {
		return nil, errors.New("the TPM returned no RSASSA signature")
	}
	r, err := rsp.Signature.Signature.RSASSA()
	if err != nil || r.Hash != alg {
		return nil, errors.New("the TPM returned a malformed RSA signature")
	}
	return r.Sig.Buffer, nil
}

// Close flushes the key from the TPM and closes it.
func (s *tpmSigner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != 0 && s.c.rw != nil {
		flush(s.c, s.handle)
	}
	s.handle = 0
	clear(s.auth)
	return s.c.Close()
}

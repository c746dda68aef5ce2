package tpm

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
)

// SetupOptions say what `tpm setup` makes.
type SetupOptions struct {
	Device   string // the TPM device, or swtpm's command socket in tests
	Algo     string // ecc-p256 (default), rsa2048 or rsa3072
	UID      string // "Name <mail>"
	PCRs     []int  // PCRs to bind the key to; empty means not bound
	AuthFile string // the key's auth value; "" means none
	// KeyBlob names the blob in messages; Setup does not write it.
	KeyBlob string
	// Now is the key's creation time and the self-signature's.
	Now time.Time
}

// Setup is the output of Setup: the armored certificate and the key blob
// file's contents.
type SetupResult struct {
	Cert []byte
	Blob []byte
}

// UsageError means the options are wrong (exit 2), not the TPM.
type UsageError = backend.UsageError

// Setup makes a new signing key in the TPM as a child of its storage root
// key, bound to the current values of o.PCRs if any, and returns its key
// blob and its OpenPGP certificate, self-signed through the TPM along the
// same path as every signature (the blob is loaded as Open loads it).
func Setup(o SetupOptions) (*SetupResult, error) {
	if err := backend.CheckUID(o.UID); err != nil {
		return nil, err
	}
	if o.Algo == "" {
		o.Algo = "ecc-p256"
	}
	tmpl, ok := algorithms[o.Algo]
	if !ok {
		return nil, &UsageError{Msg: fmt.Sprintf("--algo %q: use ecc-p256, rsa2048 or rsa3072", o.Algo)}
	}
	for i, n := range o.PCRs {
		if n < 0 || n > maxPCR || (i > 0 && n <= o.PCRs[i-1]) {
			return nil, &UsageError{Msg: "the PCRs must be distinct numbers from 0 to 23, ascending"}
		}
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	created := o.Now.Truncate(time.Second)
	var auth []byte
	if o.AuthFile != "" {
		var err error
		if auth, err = backend.ReadPassphrase(o.AuthFile); err != nil {
			return nil, err
		}
		defer clear(auth)
	}

	c, err := dial(o.Device)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srk, srkName, err := createSRK(c)
	if err != nil {
		return nil, err
	}
	srkLoaded := true
	defer func() {
		if srkLoaded {
			flush(c, srk)
		}
	}()

	pub := tmpl()
	// Without an auth value there is nothing to guess: keep the key out
	// of the dictionary-attack logic, so a lockout caused by another
	// program does not stop signing.
	pub.ObjectAttributes.NoDA = auth == nil
	var vals []PCRValue
	if len(o.PCRs) > 0 {
		cur, err := readPCRs(c, o.PCRs)
		if err != nil {
			return nil, err
		}
		for _, i := range o.PCRs {
			vals = append(vals, PCRValue{Index: i, Digest: cur[i]})
		}
		pol, err := policyDigest(vals, auth != nil)
		if err != nil {
			return nil, err
		}
		pub.AuthPolicy = tpm2.TPM2BDigest{Buffer: pol}
		pub.ObjectAttributes.UserWithAuth = false
	}
	rsp, err := run(func() (*tpm2.CreateResponse, error) {
		return tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk, Name: tpm2.TPM2BName{Buffer: srkName}, Auth: tpm2.PasswordAuth(nil)},
			InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: auth}}},
			InPublic:     tpm2.New2B(pub),
		}.Execute(c)
	})
	if err != nil {
		if errors.Is(err, tpm2.TPMRCKeySize) || errors.Is(err, tpm2.TPMRCCurve) || errors.Is(err, tpm2.TPMRCValue) {
			return nil, &UsageError{Msg: fmt.Sprintf("this TPM cannot make %s keys (%v): try --algo ecc-p256 or rsa2048", o.Algo, err)}
		}
		return nil, fmt.Errorf("creating the key in the TPM: %w", err)
	}
	// Load makes the storage root key again: free the slot (a TPM
	// without a resource manager holds as few as three objects).
	flush(c, srk)
	srkLoaded = false
	outPub, err := rsp.OutPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("the TPM's new key: %v", err)
	}
	blob := &Blob{Parent: srkName, Public: tpm2.Marshal(outPub), Private: rsp.OutPrivate.Buffer, PCRs: vals}
	pa, err := parsePublic(blob.Public)
	if err != nil {
		return nil, fmt.Errorf("the TPM made a key signstar does not accept: %v", err)
	}
	if err := checkPolicy(pa, blob, auth != nil); err != nil {
		return nil, err
	}
	data := blob.Marshal()
	if _, err := ParseBlob(data); err != nil {
		return nil, fmt.Errorf("the key blob does not parse back: %v", err)
	}

	s := &tpmSigner{c: c, pa: pa, blob: blob, blobPath: o.KeyBlob, auth: auth, authFile: o.AuthFile}
	if err := s.load(); err != nil {
		return nil, err
	}
	defer flush(c, s.handle)
	pk, raw, err := signer.PublicKey(pa.pub, created)
	if err != nil {
		return nil, err
	}
	cert, err := signer.Certify(pk, raw, o.UID, s, created)
	if err != nil {
		return nil, fmt.Errorf("self-signing the certificate in the TPM: %w", err)
	}
	e, err := backend.ParseEntity(cert)
	if err != nil {
		return nil, fmt.Errorf("the certificate made in the TPM does not parse: %v", err)
	}
	keys, err := backend.SigningKeys(e, created)
	if err != nil {
		return nil, fmt.Errorf("the certificate made in the TPM is not usable: %v", err)
	}
	if string(keys[0].Fingerprint) != string(pk.Fingerprint) {
		return nil, errors.New("the certificate made in the TPM signs with another key")
	}
	armored, err := backend.ArmoredCert(e)
	if err != nil {
		return nil, err
	}
	return &SetupResult{Cert: armored, Blob: data}, nil
}

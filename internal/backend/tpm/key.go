package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Algorithms `tpm setup --algo` offers. TPM 2.0 PC Client TPMs all have
// RSA-2048 and ECC P-256; RSA-3072 only some (swtpm has it).
var algorithms = map[string]func() tpm2.TPMTPublic{
	"ecc-p256": func() tpm2.TPMTPublic { return eccTemplate(tpm2.TPMECCNistP256) },
	"rsa2048":  func() tpm2.TPMTPublic { return rsaTemplate(2048) },
	"rsa3072":  func() tpm2.TPMTPublic { return rsaTemplate(3072) },
}

// The signing key is unrestricted (it signs digests it did not hash
// itself, as TPM2_Sign needs for OpenPGP's hash) and has no scheme of its
// own: each TPM2_Sign names RSASSA or ECDSA with the profile's hash.
// fixedTPM and fixedParent make it non-exportable: the TPM refuses to
// duplicate it, and its private part exists outside the TPM only
// encrypted by the storage root key.
func baseAttributes() tpm2.TPMAObject {
	return tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		SignEncrypt:         true,
		UserWithAuth:        true,
	}
}

func eccTemplate(curve tpm2.TPMECCCurve) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: baseAttributes(),
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   curve,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

func rsaTemplate(bits tpm2.TPMKeyBits) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgRSA,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: baseAttributes(),
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   bits,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
	}
}

// publicArea is a signing key's TPMT_PUBLIC, checked, with its public key.
type publicArea struct {
	tpm2.TPMTPublic
	pub crypto.PublicKey
	ecc bool
}

// parsePublic reads a TPMT_PUBLIC (from a key blob or the TPM) and accepts
// only what tpm setup makes: an unrestricted, non-exportable signing key,
// RSA-2048/3072 with exponent 65537 or ECC P-256, no scheme of its own,
// SHA-256 names, encoded exactly as the TPM encodes it.
func parsePublic(data []byte) (pa *publicArea, err error) {
	defer func() {
		if recover() != nil { // go-tpm's reflection on hostile bytes
			pa, err = nil, errors.New("malformed TPMT_PUBLIC")
		}
	}()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](data)
	if err != nil {
		return nil, fmt.Errorf("malformed TPMT_PUBLIC: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(p), data) {
		return nil, errors.New("TPMT_PUBLIC is not in its one encoding (trailing or changed bytes)")
	}
	a := p.ObjectAttributes
	if p.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("the key's name algorithm is %#x, not SHA-256", uint16(p.NameAlg))
	}
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt || a.Decrypt || a.Restricted {
		return nil, errors.New("the key is not an unrestricted, non-exportable signing key made in the TPM")
	}
	if len(p.AuthPolicy.Buffer) != 0 && len(p.AuthPolicy.Buffer) != sha256.Size {
		return nil, errors.New("the key's policy is not a SHA-256 digest")
	}
	pa = &publicArea{TPMTPublic: *p}
	switch p.Type {
	case tpm2.TPMAlgRSA:
		d, err := p.Parameters.RSADetail()
		if err != nil {
			return nil, errors.New("RSA key without RSA parameters")
		}
		u, err := p.Unique.RSA()
		if err != nil {
			return nil, errors.New("RSA key without a modulus")
		}
		if d.Scheme.Scheme != tpm2.TPMAlgNull || d.Symmetric.Algorithm != tpm2.TPMAlgNull {
			return nil, errors.New("the RSA key has a scheme or symmetric algorithm of its own")
		}
		if d.KeyBits != 2048 && d.KeyBits != 3072 {
			return nil, fmt.Errorf("RSA of %d bits: signstar makes 2048 or 3072", d.KeyBits)
		}
		if d.Exponent != 0 && d.Exponent != 65537 {
			return nil, fmt.Errorf("RSA exponent %d: signstar makes 65537", d.Exponent)
		}
		if len(u.Buffer) != int(d.KeyBits)/8 || u.Buffer[0]&0x80 == 0 {
			return nil, fmt.Errorf("the RSA modulus is not %d bits", d.KeyBits)
		}
		pub, err := tpm2.RSAPub(d, u)
		if err != nil {
			return nil, fmt.Errorf("the RSA key: %v", err)
		}
		pa.pub = pub
	case tpm2.TPMAlgECC:
		d, err := p.Parameters.ECCDetail()
		if err != nil {
			return nil, errors.New("ECC key without ECC parameters")
		}
		u, err := p.Unique.ECC()
		if err != nil {
			return nil, errors.New("ECC key without a point")
		}
		if d.Scheme.Scheme != tpm2.TPMAlgNull || d.Symmetric.Algorithm != tpm2.TPMAlgNull || d.KDF.Scheme != tpm2.TPMAlgNull {
			return nil, errors.New("the ECC key has a scheme, KDF or symmetric algorithm of its own")
		}
		if d.CurveID != tpm2.TPMECCNistP256 {
			return nil, fmt.Errorf("ECC curve %#x: signstar makes NIST P-256 keys", uint16(d.CurveID))
		}
		if len(u.X.Buffer) != 32 || len(u.Y.Buffer) != 32 {
			return nil, errors.New("the ECC point is not two 32-byte coordinates")
		}
		pt := append(append([]byte{4}, u.X.Buffer...), u.Y.Buffer...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return nil, errors.New("the ECC point is not on P-256")
		}
		pa.pub, pa.ecc = pub, true
	default:
		return nil, fmt.Errorf("key type %#x: signstar makes RSA or ECC keys", uint16(p.Type))
	}
	return pa, nil
}

// name is the TPM name of the key: its name algorithm and the hash of its
// public area.
func (pa *publicArea) name() []byte {
	h := sha256.Sum256(tpm2.Marshal(&pa.TPMTPublic))
	return append([]byte{0x00, 0x0b}, h[:]...)
}

// pcrSelection selects the SHA-256 bank's PCRs in indices.
func pcrSelection(indices []int) tpm2.TPMLPCRSelection {
	sel := make([]byte, 3)
	for _, i := range indices {
		sel[i/8] |= 1 << (i % 8)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel}}}
}

// pcrDigest is TPM2_PolicyPCR's pcrDigest: SHA-256 over the values in
// ascending index order, as the TPM concatenates them.
func pcrDigest(vals []PCRValue) []byte {
	h := sha256.New()
	for _, v := range vals {
		h.Write(v.Digest[:])
	}
	return h.Sum(nil)
}

// policyDigest is the authPolicy of a key bound to vals:
// PolicyPCR(vals), then PolicyAuthValue when the key has an auth value.
func policyDigest(vals []PCRValue, withAuth bool) ([]byte, error) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	ind := make([]int, len(vals))
	for i, v := range vals {
		ind[i] = v.Index
	}
	pp := tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(vals)}, Pcrs: pcrSelection(ind)}
	if err := pp.Update(calc); err != nil {
		return nil, err
	}
	if withAuth {
		if err := (tpm2.PolicyAuthValue{}).Update(calc); err != nil {
			return nil, err
		}
	}
	return calc.Hash().Digest, nil
}

// readPCRs reads the SHA-256 values of indices. A TPM returns at most eight
// per TPM2_PCR_Read, and may return fewer; each answer is checked against
// what was asked.
func readPCRs(t transport.TPM, indices []int) (map[int][32]byte, error) {
	out := map[int][32]byte{}
	for round := 0; len(out) < len(indices); round++ {
		if round > len(indices) {
			return nil, errors.New("the TPM does not return the PCRs asked for")
		}
		var want []int
		for _, i := range indices {
			if _, ok := out[i]; !ok {
				want = append(want, i)
			}
		}
		rsp, err := run(func() (*tpm2.PCRReadResponse, error) {
			return tpm2.PCRRead{PCRSelectionIn: pcrSelection(want)}.Execute(t)
		})
		if err != nil {
			return nil, fmt.Errorf("reading PCRs: %w", err)
		}
		got, err := pcrValues(rsp, want)
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, errors.New("the TPM returned no PCR values: is its SHA-256 PCR bank active?")
		}
		for i, d := range got {
			out[i] = d
		}
	}
	return out, nil
}

// pcrValues matches a TPM2_PCR_Read response to the PCRs asked for: the
// selection out must be a subset of want in the SHA-256 bank, and there
// must be exactly one 32-byte digest per selected PCR.
func pcrValues(rsp *tpm2.PCRReadResponse, want []int) (map[int][32]byte, error) {
	var got []int
	for _, s := range rsp.PCRSelectionOut.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			return nil, fmt.Errorf("the TPM returned PCRs of bank %#x, not SHA-256", uint16(s.Hash))
		}
		for byteIdx, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) == 0 {
					continue
				}
				i := byteIdx*8 + bit
				if !containsInt(want, i) || containsInt(got, i) {
					return nil, fmt.Errorf("the TPM returned PCR %d, which was not asked for", i)
				}
				got = append(got, i)
			}
		}
	}
	if len(rsp.PCRValues.Digests) != len(got) {
		return nil, fmt.Errorf("the TPM returned %d PCR values for %d PCRs", len(rsp.PCRValues.Digests), len(got))
	}
	out := map[int][32]byte{}
	for k, i := range got {
		d := rsp.PCRValues.Digests[k].Buffer
		if len(d) != 32 {
			return nil, fmt.Errorf("the TPM returned a %d-byte value for SHA-256 PCR %d", len(d), i)
		}
		out[i] = [32]byte(d)
	}
	return out, nil
}

func containsInt(l []int, x int) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

// run runs one go-tpm command. go-tpm decodes the response by
// reflection; a hostile TPM or socket must not crash signstar, so a panic
// in the decoder is an error.
func run[R any](f func() (*R, error)) (r *R, err error) {
	defer func() {
		if recover() != nil {
			r, err = nil, errors.New("the TPM sent a malformed response")
		}
	}()
	return f()
}

// createSRK makes the storage root key: the primary key of the owner
// hierarchy from the TCG's ECC P-256 SRK template (TCG TPM v2.0 Provisioning
// Guidance), the one tpm2-tools and systemd-cryptenroll use. It is the same
// key each time for the same owner seed, so nothing needs to be persisted.
// The owner hierarchy's auth is the empty default.
func createSRK(t transport.TPM) (tpm2.TPMHandle, []byte, error) {
	rsp, err := run(func() (*tpm2.CreatePrimaryResponse, error) {
		return tpm2.CreatePrimary{
			PrimaryHandle: tpm2.TPMRHOwner,
			InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
		}.Execute(t)
	})
	if err != nil {
		if errors.Is(err, tpm2.TPMRCBadAuth) || errors.Is(err, tpm2.TPMRCAuthFail) {
			return 0, nil, errors.New("creating the storage root key: the TPM's owner hierarchy has an auth value: signstar needs the default empty one")
		}
		return 0, nil, fmt.Errorf("creating the storage root key: %w", err)
	}
	if len(rsp.Name.Buffer) != nameLen {
		flush(t, rsp.ObjectHandle)
		return 0, nil, errors.New("the TPM's storage root key has no SHA-256 name")
	}
	return rsp.ObjectHandle, rsp.Name.Buffer, nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	run(func() (*tpm2.FlushContextResponse, error) {
		return tpm2.FlushContext{FlushHandle: h}.Execute(t)
	})
}

// daState is the TPM's dictionary-attack state.
type daState struct {
	counter, max int
	inLockout    bool
}

func readDA(t transport.TPM) (daState, error) {
	var st daState
	rsp, err := run(func() (*tpm2.GetCapabilityResponse, error) {
		return tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTPermanent), PropertyCount: 1}.Execute(t)
	})
	if err != nil {
		return st, fmt.Errorf("reading the TPM's lockout state: %w", err)
	}
	perm, err := property(rsp, tpm2.TPMPTPermanent)
	if err != nil {
		return st, err
	}
	st.inLockout = perm&(1<<9) != 0 // TPMA_PERMANENT inLockout
	rsp, err = run(func() (*tpm2.GetCapabilityResponse, error) {
		return tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 2}.Execute(t)
	})
	if err != nil {
		return st, fmt.Errorf("reading the TPM's lockout counter: %w", err)
	}
	c, err := property(rsp, tpm2.TPMPTLockoutCounter)
	if err != nil {
		return st, err
	}
	m, err := property(rsp, tpm2.TPMPTMaxAuthFail)
	if err != nil {
		return st, err
	}
	if c > 1<<16 || m > 1<<16 {
		return st, errors.New("the TPM reports an implausible lockout counter")
	}
	st.counter, st.max = int(c), int(m)
	return st, nil
}

// property finds pt in a TPM_CAP_TPM_PROPERTIES answer.
func property(rsp *tpm2.GetCapabilityResponse, pt tpm2.TPMPT) (uint32, error) {
	if rsp.CapabilityData.Capability != tpm2.TPMCapTPMProperties {
		return 0, errors.New("the TPM answered another capability than asked")
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return 0, errors.New("the TPM sent malformed properties")
	}
	for _, p := range props.TPMProperty {
		if p.Property == pt {
			return p.Value, nil
		}
	}
	return 0, fmt.Errorf("the TPM does not report property %#x", uint32(pt))
}

// guard refuses to present the auth value when that could lock the TPM
// out: in lockout already, or one failure left.
func (st daState) guard() error {
	if st.inLockout {
		return &LockoutError{Counter: st.counter, Max: st.max, InLockout: true}
	}
	if st.max > 0 && st.max-st.counter <= 1 {
		return &LockoutError{Counter: st.counter, Max: st.max}
	}
	return nil
}

// checkSignature verifies sig (backend.Key conventions) over digest.
func checkSignature(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	}
	return false
}

package request

import (
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/signer"
)

// DataDigestNotation is the notation upstream's Signstar server puts in
// the hashed area of the signatures it makes from a client's state: the
// file's SHA-512 as the server derived it, 64 bytes, not human-readable,
// not critical. gpgv, sqv and pacman ignore it (a non-critical notation);
// it lets anyone holding only the signature and the file compare the
// digest the enclave signed for with sha512sum, without trusting the
// state's conversion, and it keeps these signatures the shape Arch's own
// are.
const DataDigestNotation = "data-digest@archlinux.org"

// receiveRequest is the receive step of a signstar-v1 request: stdin is
// the client's JSON (at most archreq.MaxRequest bytes), which carries its
// SHA-512 state of the file instead of the file. The kind is unknown (the
// profile's kinds are ["any"], config makes sure); max_size applies to the
// bytes the state says were hashed.
func (s *session) receiveRequest() (*artifact, *stop) {
	req, n, err := archreq.Read(s.upload)
	if err != nil {
		var re *archreq.Error
		if errors.As(err, &re) {
			return nil, halt(RefusedRequest, fmt.Sprintf("not a signstar-v1 request (%d bytes read): %s; nothing was signed (to sign a file itself, send the command sign)", n, err))
		}
		if sig := s.upload.interrupted(); sig != nil {
			return nil, halt(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the request", sig))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, halt(FailedIdle, fmt.Sprintf("no data from the client for %v after %d bytes of the request; nothing was signed", s.upload.idle, n))
		}
		return nil, halt(FailedUpload, "cannot read the request from stdin: "+errText(err))
	}
	in, err := signer.Resumed(crypto.SHA512, req.State, int64(req.Size))
	if err != nil {
		return nil, halt(FailedInternal, err.Error())
	}
	s.size, s.digest = in.Size, in.DigestString()
	p := s.profile
	if p.MaxSize > 0 && in.Size > p.MaxSize {
		return nil, halt(RefusedTooLarge, fmt.Sprintf("the client hashed %d bytes, more than max_size %s of profile %s", in.Size, p.MaxSizeText, p.Name))
	}
	if sig := s.upload.interrupted(); sig != nil {
		return nil, halt(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the request", sig))
	}
	if clientGone(s.Stdout) {
		return nil, halt(FailedClientGone, "the client disconnected before the request was read; nothing was signed")
	}
	return &artifact{
		in:    in,
		notes: []signer.Notation{{Name: DataDigestNotation, Value: string(in.Digest()), Binary: true}},
		respond: func(sig []byte) []byte {
			return archreq.Response(armorSignature(sig))
		},
	}, nil
}

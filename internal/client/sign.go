package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Item is one file to sign.
type Item struct {
	// Path is the file; Out its signature's file (Path + ".sig" unless
	// told otherwise).
	Path, Out string
	// Name is its tar member name: the file's base name.
	Name    string
	Size    int64
	ModTime time.Time
}

// Result is one verified signature.
type Result struct {
	*Item
	Sig    []byte
	Packet *packet.Signature
	// Proof is the record's proof file, when asked for.
	Proof []byte
}

// Request is a batch to sign.
type Request struct {
	// Paths are the files; Outs, when set, their signatures' files.
	Paths, Outs []string
	// Armor asks for ASCII-armored signatures (FILE.asc by default).
	Armor bool
	// Stdout, when true, makes the one signature go to Writer instead of
	// a file (gpg -o -).
	Writer io.Writer
}

// Signer signs batches through one enclave.
type Signer struct {
	Config *Config
	Remote *Remote
	Pinned *Pinned
	// Witness checks the log around each batch; nil when off.
	Witness *Witness
}

// measure stats each file, and hashes what the session will send: the
// file itself when it goes alone, else the whole tar stream (--expect
// covers the bytes as sent).
func measure(req *Request) ([]*Item, string, error) {
	if len(req.Paths) == 0 {
		return nil, "", errors.New("no file to sign")
	}
	ext := ".sig"
	if req.Armor {
		ext = ".asc"
	}
	seen := map[string]string{}
	outs := map[string]bool{}
	items := make([]*Item, 0, len(req.Paths))
	for i, p := range req.Paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, "", fmt.Errorf("cannot read %s: %v", p, pathErr(err))
		}
		if !st.Mode().IsRegular() {
			return nil, "", fmt.Errorf("%s is not a regular file", p)
		}
		name := filepath.Base(p)
		if prev, dup := seen[name]; dup {
			return nil, "", fmt.Errorf("%s and %s have the same name %q: a batch's members are named by the file's base name; sign them in separate runs", prev, p, name)
		}
		seen[name] = p
		it := &Item{Path: p, Out: p + ext, Name: name, Size: st.Size(), ModTime: st.ModTime().Truncate(time.Second)}
		if i < len(req.Outs) && req.Outs[i] != "" {
			it.Out = req.Outs[i]
		}
		if outs[it.Out] {
			return nil, "", fmt.Errorf("two signatures would be written to %s", it.Out)
		}
		outs[it.Out] = true
		items = append(items, it)
	}
	h := sha256.New()
	if len(items) == 1 {
		f, err := os.Open(items[0].Path)
		if err != nil {
			return nil, "", fmt.Errorf("cannot read %s: %v", items[0].Path, pathErr(err))
		}
		n, err := io.CopyBuffer(h, f, make([]byte, 256<<10))
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("cannot read %s: %v", items[0].Path, pathErr(err))
		}
		items[0].Size = n
	} else if err := writeTar(h, items); err != nil {
		return nil, "", err
	}
	return items, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Sign signs the files of req in one session, verifies every signature
// against the pinned certificate and, with the witness on, against the
// log, and only then writes them all (or, on any failure, none).
func (s *Signer) Sign(ctx context.Context, req *Request) ([]*Result, error) {
	items, digest, err := measure(req)
	if err != nil {
		return nil, err
	}
	if req.Writer != nil && len(items) != 1 {
		return nil, errors.New("a signature to stdout is for one file")
	}
	var witnessed *Witnessed
	if s.Witness != nil {
		if witnessed, err = s.Witness.Load(); err != nil {
			return nil, err
		}
	}
	sigs, err := s.session(ctx, items, digest, req.Armor)
	if err != nil {
		return nil, err
	}
	results, err := verifyAll(s.Pinned, items, sigs)
	if err != nil {
		return nil, err
	}
	if s.Witness != nil {
		if err := s.Witness.Check(ctx, witnessed, results); err != nil {
			return nil, err
		}
	}
	if req.Writer != nil {
		_, err := req.Writer.Write(results[0].Sig)
		return results, err
	}
	var st Staged
	for _, r := range results {
		err := st.Add(r.Out, r.Sig, 0o644)
		if err == nil && r.Proof != nil {
			err = st.Add(ProofPath(r.Out), r.Proof, 0o644)
		}
		if err != nil {
			st.Abort()
			return nil, fmt.Errorf("writing %s: %v (no signature written)", r.Out, pathErr(err))
		}
	}
	if err := ctx.Err(); err != nil {
		st.Abort()
		return nil, err
	}
	if err := st.Commit(); err != nil {
		return nil, fmt.Errorf("writing the signatures: %v (none was kept)", pathErr(err))
	}
	if s.Witness != nil {
		if err := s.Witness.Commit(); err != nil {
			return results, err
		}
	}
	return results, nil
}

// signWords is the remote command for items.
func (s *Signer) signWords(items []*Item, digest string, armor bool) []string {
	w := []string{"sign"}
	if len(items) > 1 {
		w = append(w, "--tar")
	}
	if armor {
		w = append(w, "--armor")
	}
	if s.Config.Profile != "" {
		w = append(w, "--profile", s.Config.Profile)
	}
	return append(w, "--expect", digest)
}

// session sends the items and returns one signature per item, in order.
// One file goes as `sign --expect`, several as one `sign --tar` stream.
func (s *Signer) session(ctx context.Context, items []*Item, digest string, armor bool) ([][]byte, error) {
	words := s.signWords(items, digest, armor)
	limit := int64(MaxSignature)
	if armor {
		limit = maxArmoredSignature
	}
	if len(items) == 1 {
		// The file itself is ssh's stdin, as in the bare ssh line: bytes
		// that changed since they were measured fail the --expect.
		f, err := os.Open(items[0].Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var out limitBuffer
		out.max = limit
		if err := s.Remote.Run(ctx, words, f, &out); err != nil {
			return nil, err
		}
		if out.over {
			return nil, untrusted("the enclave answered more than a signature (%d bytes) for %s", limit, items[0].Path)
		}
		if out.Len() == 0 {
			return nil, fmt.Errorf("the enclave answered no signature for %s", items[0].Path)
		}
		return [][]byte{out.Bytes()}, nil
	}
	// An OS pipe that ssh reads as its stdin itself, with no copying
	// goroutine between (exec.Cmd adds one for any other reader).
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	growPipe(pw)
	sendErr := make(chan error, 1)
	go func() {
		err := writeTar(pw, items)
		pw.Close()
		sendErr <- err
	}()
	var out limitBuffer
	out.max = int64(len(items))*(limit+3*512) + 64<<10
	err = s.Remote.Run(ctx, words, pr, &out)
	// The enclave may stop reading early (a refusal): the writer then
	// fails on the closed pipe, which is not the error to report.
	pr.Close()
	serr := <-sendErr
	if serr != nil && !errors.Is(serr, syscall.EPIPE) && !errors.Is(serr, os.ErrClosed) {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	if out.over {
		return nil, untrusted("the enclave answered more than %d signatures take", len(items))
	}
	ext := ".sig"
	if armor {
		ext = ".asc"
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Name
	}
	sigs, err := readSignatureTar(bytes.NewReader(out.Bytes()), names, ext, limit)
	if err != nil {
		return nil, untrusted("`%s`: %v", strings.Join(words, " "), err)
	}
	return sigs, nil
}

// verifyAll checks every signature, on every CPU: the session is over, and
// a batch's checks are its largest cost after it.
func verifyAll(p *Pinned, items []*Item, sigs [][]byte) ([]*Result, error) {
	results := make([]*Result, len(items))
	errs := make([]error, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pkt, err := VerifyFile(p, items[i].Path, sigs[i])
				results[i], errs[i] = &Result{Item: items[i], Sig: sigs[i], Packet: pkt}, err
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	// The first failure in the batch's order, whatever finished first.
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// Copyright 2026 The signstar Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     https://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//go:build linux

package piv

// Fuzz tests of everything that reads bytes from pcscd. The seed corpora in
// testdata/fuzz are replies pcscd 1.9.9 (Debian 12) sent to piv-go through
// the vsmartcard-vpcd reader and signstar's card emulator, recorded by a
// proxy on pcscd's socket (see SIGNSTAR.md).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The fixed-size replies, by the kind FuzzReply takes.
func replyOfKind(kind byte) any {
	switch kind % 8 {
	case 0:
		return &versionStruct{}
	case 1:
		return &establishStruct{}
	case 2:
		return &releaseStruct{}
	case 3:
		return &connectStruct{}
	case 4:
		return &disconnectStruct{}
	case 5:
		return &beginStruct{}
	case 6:
		return &endStruct{}
	}
	return &transmitStruct{}
}

func FuzzReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		v := replyOfKind(kind)
		err := decodeReply(data, v)
		if (err == nil) != (len(data) == binary.Size(v)) {
			t.Fatalf("%d bytes into %T: %v", len(data), v, err)
		}
		if err != nil {
			return
		}
		// Every byte is a field: the reply encodes back to itself.
		if b, _ := binary.Append(nil, hostOrder, v); !bytes.Equal(b, data) {
			t.Fatalf("%T: %x encodes back to %x", v, data, b)
		}
		if tr, ok := v.(*transmitStruct); ok {
			n, err := transmitLength(tr, maxBufferSizeExtended)
			if n < 0 || n > maxBufferSizeExtended || (err != nil && n != 0) || (tr.RV != 0 && n != 0) {
				t.Fatalf("transmit reply %+v: %d, %v", tr, n, err)
			}
		}
	})
}

func FuzzReaderStates(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		readers, err := decodeReaderStates(data)
		if (err == nil) != (len(data) == readerStatesSize) {
			t.Fatalf("%d bytes: %v", len(data), err)
		}
		if err != nil {
			return
		}
		// What libpcsclite would list, strnlen-style.
		var want []string
		for i := 0; i < maxReadersContexts; i++ {
			name := data[i*readerStateSize : i*readerStateSize+maxReaderName]
			n := 0
			for n < len(name) && name[n] != 0 {
				n++
			}
			if n > 0 {
				want = append(want, string(name[:n]))
			}
		}
		if len(readers) != len(want) {
			t.Fatalf("readers %q, want %q", readers, want)
		}
		for i := range want {
			if readers[i] != want[i] || len(readers[i]) > maxReaderName {
				t.Fatalf("readers %q, want %q", readers, want)
			}
		}
	})
}

// fuzzPeer is a pcscd that sends stream, whatever it is asked, and then
// stops sending. Only the first connection gets the stream.
func fuzzPeer(t *testing.T, stream []byte) {
	t.Helper()
	oldDial, oldReply, oldTransmit, oldPoll := pcscDial, pcscReplyTimeout, pcscTransmitTimeout, pcscLockPollRate
	t.Cleanup(func() {
		pcscDial, pcscReplyTimeout, pcscTransmitTimeout, pcscLockPollRate = oldDial, oldReply, oldTransmit, oldPoll
		negotiatedMinor.Store(0)
	})
	// Nothing should wait: the peer's end of stream ends every read.
	pcscReplyTimeout, pcscTransmitTimeout, pcscLockPollRate = 5*time.Second, 5*time.Second, 0
	negotiatedMinor.Store(0)
	first := true
	pcscDial = func() (*os.File, error) {
		client, server := socketPair(t)
		t.Cleanup(func() { server.Close() })
		send := stream
		if !first {
			send = nil
		}
		first = false
		go func() {
			server.Write(send)
			if rc, err := server.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
			}
		}()
		return client, nil
	}
}

// FuzzTransmit reads a SCARD_TRANSMIT reply and the response after it.
func FuzzTransmit(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		fuzzPeer(t, stream)
		client, err := pcscDial()
		if err != nil {
			t.Fatal(err)
		}
		c := &scContext{conn: pcscConn{f: client}, handles: map[int32]bool{1: true}}
		defer c.conn.close()
		resp, err := (&scTx{c: c, h: 1}).exchange([]byte{0x00, 0xa4, 0x04, 0x00})
		if err != nil {
			return
		}
		// Success is a reply whose length the stream holds, and no more
		// than asked for; sharing violations before it were skipped.
		off := 0
		for hostOrder.Uint32(stream[off+28:]) == scardESharingViolation {
			off += 32
		}
		var tr transmitStruct
		if decodeReply(stream[off:off+32], &tr) != nil || tr.RV != 0 || int(tr.RecvLength) != len(resp) ||
			len(resp) > maxBufferSizeExtended || !bytes.Equal(resp, stream[off+32:off+32+len(resp)]) {
			t.Fatalf("response %x from %x", resp, stream)
		}
	})
}

// FuzzSession runs piv.go's calls (Cards, then Open) on what a peer sends.
func FuzzSession(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		fuzzPeer(t, stream)
		c, err := newSCContext()
		if err != nil {
			return
		}
		defer c.Close()
		readers, err := c.ListReaders()
		if err != nil {
			return
		}
		for _, r := range readers {
			if r == "" || len(r) > maxReaderName || bytes.IndexByte([]byte(r), 0) >= 0 {
				t.Fatalf("reader %q", r)
			}
		}
		name := "Virtual PCD 00 00"
		if len(readers) > 0 {
			name = readers[0]
		}
		h, err := c.Connect(name)
		if err != nil {
			return
		}
		defer h.Close()
		tx, err := h.Begin()
		if err != nil {
			return
		}
		defer tx.Close()
		_, resp, err := tx.transmit([]byte{0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08})
		if err == nil && len(resp) > maxBufferSizeExtended-2 {
			t.Fatalf("response of %d bytes", len(resp))
		}
	})
}

// corpusBytes reads the []byte of a one-value seed file in testdata/fuzz.
func corpusBytes(t *testing.T, fuzz, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/" + fuzz + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lit, ok := strings.CutPrefix(lines[len(lines)-1], "[]byte(")
	if !ok || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s/%s: not a []byte seed", fuzz, name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// The recorded sessions end as they did with libpcsclite.
func TestRecordedSessions(t *testing.T) {
	if hostOrder.Uint16([]byte{1, 0}) != 1 {
		t.Skip("recorded on a little-endian host")
	}
	for _, tc := range []struct {
		seed, err string
		more      bool
	}{
		{"pcscd-open-select", "", true},
		{"pcscd-open-9000", "", false},
		{"pcscd-busy", "the smart card cannot be accessed because of other connections outstanding", false},
		{"pcscd-no-card", "the operation requires a Smart Card, but no Smart Card is currently in the device", false},
		{"pcscd-card-gone", "scard response too short: 0", false},
		// What pcscd 1.9.9 answered a 4:5 client: it speaks 4:4, which was
		// asked, so it is no older protocol to fall back to.
		{"pcscd-version-mismatch", "the Smart card resource manager has shut down", false},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			fuzzPeer(t, corpusBytes(t, "FuzzSession", tc.seed))
			err := func() error {
				c, err := newSCContext()
				if err != nil {
					return err
				}
				defer c.Close()
				readers, err := c.ListReaders()
				if err != nil {
					return err
				}
				if len(readers) != 2 || readers[0] != "Virtual PCD 00 00" || readers[1] != "Virtual PCD 00 01" {
					t.Fatalf("readers %q", readers)
				}
				h, err := c.Connect(readers[0])
				if err != nil {
					return err
				}
				defer h.Close()
				tx, err := h.Begin()
				if err != nil {
					return err
				}
				defer tx.Close()
				more, resp, err := tx.transmit([]byte{0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08})
				if err == nil && (more != tc.more || more && len(resp) == 0) {
					t.Errorf("more %v, %x", more, resp)
				}
				return err
			}()
			if got := fmt.Sprint(err); (tc.err == "" && err != nil) || !strings.HasSuffix(got, tc.err) {
				t.Errorf("error %q, want %q", got, tc.err)
			}
		})
	}
}

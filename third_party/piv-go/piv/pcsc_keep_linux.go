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

// PreparePCSC (signstar patch, see SIGNSTAR.md): one pcscd connection kept
// for later contexts, so a process can release a card and claim it again
// after it may no longer open sockets (signstar's sandbox).

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// kept is the idle kept connection, nil while a context uses it or when
// there is none.
var kept struct {
	mu sync.Mutex
	f  *os.File
}

// PreparePCSC connects to pcscd and keeps the connection: the next context
// (Cards, Open) uses it instead of a new one, and gives it back when it is
// closed, so claiming a card again later needs no new socket. pcscd serves
// one context at a time per connection (src/winscard_svc.c keeps one
// hContext per client; SCardReleaseContext clears it, and the next
// SCardEstablishContext on the connection sets it again), so only one
// context at a time uses the kept connection; contexts opened while it is
// in use connect as usual. An earlier kept connection, if idle, is closed
// (it may lead to a pcscd that has since restarted); a kept connection that
// fails is closed, and the context that found out connects as usual.
func PreparePCSC() error {
	minor := negotiatedMinor.Load()
	if minor == 0 {
		minor = protocolMinor
	}
	conn, server, err := dialVersion(minor)
	if err != nil && server.Major == protocolMajor && server.Minor != minor &&
		(server.Minor == protocolMinor || server.Minor == protocolMinorNew) {
		minor = server.Minor
		conn, _, err = dialVersion(minor)
	}
	if err != nil {
		return err
	}
	negotiatedMinor.Store(minor)
	kept.mu.Lock()
	old := kept.f
	kept.f = conn.f
	kept.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// takeKeptConn returns the idle kept connection, and takes it, or nil.
func takeKeptConn() *os.File {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	f := kept.f
	kept.f = nil
	return f
}

// putKeptConn gives a kept connection back; when another one was kept
// meanwhile, f is closed.
func putKeptConn(f *os.File) {
	kept.mu.Lock()
	if kept.f == nil {
		kept.f, f = f, nil
	}
	kept.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// errKeptBroken: the kept connection failed; it is closed and forgotten.
var errKeptBroken = errors.New("the kept pcscd connection failed")

// establishOnKept establishes a context on the kept connection f. When
// pcscd refuses the context the connection goes back; when the stream
// failed it is closed (errKeptBroken).
func establishOnKept(f *os.File) (*scContext, error) {
	c := &scContext{conn: pcscConn{f: f}, handles: map[int32]bool{}, kept: true}
	if err := c.establish(); err != nil {
		if c.conn.broken {
			c.conn.close()
			return nil, fmt.Errorf("%w: %w", errKeptBroken, err)
		}
		putKeptConn(f)
		return nil, err
	}
	return c, nil
}

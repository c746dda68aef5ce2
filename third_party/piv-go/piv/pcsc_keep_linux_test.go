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

import (
	"errors"
	"os"
	"testing"
)

// dropKept forgets the kept connection at the end of a test.
func dropKept(t *testing.T) {
	t.Cleanup(func() {
		if f := takeKeptConn(); f != nil {
			f.Close()
		}
	})
}

// noDial makes any new connection fail the test, until it ends.
func noDial(t *testing.T) {
	old := pcscDial
	pcscDial = func() (*os.File, error) {
		t.Error("dialed pcscd")
		return nil, errors.New("no new socket")
	}
	t.Cleanup(func() { pcscDial = old })
}

// session is what piv.go's Open and Close do with a context.
func session(t *testing.T) error {
	t.Helper()
	c, err := newSCContext()
	if err != nil {
		return err
	}
	h, err := c.Connect("Yubico YubiKey")
	if err != nil {
		c.Close()
		return err
	}
	tx, err := h.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tx.transmit([]byte{0, 0xa4, 4, 0}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return c.Close()
}

// After PreparePCSC, contexts one after the other use its connection and
// dial none.
func TestPreparePCSC(t *testing.T) {
	dropKept(t)
	f := &fakePCSCD{t: t}
	f.use()
	if err := PreparePCSC(); err != nil {
		t.Fatal(err)
	}
	noDial(t)
	for range 3 {
		if err := session(t); err != nil {
			t.Fatal(err)
		}
	}
	// A refused connect (a busy card) gives the connection back too.
	f.mu.Lock()
	f.rvs[cmdConnect] = []uint32{scardESharingViolation}
	f.mu.Unlock()
	wantRC(t, session(t), scardESharingViolation)
	if err := session(t); err != nil {
		t.Fatal(err)
	}
	got := f.commands()
	if got[0] != cmdVersion || len(got) != 1+4*6+3 || f.dials != 1 {
		t.Fatalf("commands %x after %d dials, want one version and then only sessions", got, f.dials)
	}
	for _, c := range got[1:] {
		if c == cmdVersion {
			t.Fatalf("commands %x: version asked again", got)
		}
	}
}

// While the kept connection serves a context, another context connects
// as usual; a kept connection that failed is replaced by a new one.
func TestPreparePCSCBusyOrBroken(t *testing.T) {
	dropKept(t)
	f := &fakePCSCD{t: t}
	f.use()
	if err := PreparePCSC(); err != nil {
		t.Fatal(err)
	}
	c1, err := newSCContext()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := newSCContext()
	if err != nil {
		t.Fatal(err)
	}
	if !c1.kept || c2.kept || f.dials != 2 {
		t.Fatalf("kept %v %v after %d dials", c1.kept, c2.kept, f.dials)
	}
	c2.Close()
	c1.Close()
	// pcscd went away: the next context connects anew.
	if f := takeKeptConn(); f == nil {
		t.Fatal("the kept connection was not given back")
	} else {
		f.Close()
		putKeptConn(f)
	}
	if err := session(t); err != nil {
		t.Fatal(err)
	}
	if f.dials != 3 {
		t.Fatalf("%d dials, want 3", f.dials)
	}
}

// Without PreparePCSC nothing is kept.
func TestNothingKept(t *testing.T) {
	dropKept(t)
	f := &fakePCSCD{t: t}
	f.use()
	for range 2 {
		if err := session(t); err != nil {
			t.Fatal(err)
		}
	}
	if k := takeKeptConn(); f.dials != 2 || k != nil {
		t.Fatalf("%d dials, kept %v", f.dials, k)
	}
}

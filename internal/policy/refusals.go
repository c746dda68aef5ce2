package policy

import (
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// How fast refusals and failures may grow the log. Every request is
// audited (the contract), so a client cannot be kept out of the log; it is
// slowed down instead. Once a client address (an IPv6 one by its /64) has
// RefusalsPerClient records that are not signatures within RefusalWindow,
// each further such record of it waits until RefusalSpacing has passed since
// its previous one; once all remote clients together have RefusalsInWindow,
// every further one waits RefusalSpacing after the previous one of anyone.
// A signature is never held back, and local requests are not counted.
//
// So one client adds at most RefusalsPerClient records per window and then
// one per RefusalSpacing for each request it keeps waiting (each a process
// and an ssh session of its own); all clients together at most
// RefusalsInWindow and then the same. A request is held back at most
// MaxRefusalWait and then recorded anyway.
var (
	RefusalWindow     = 10 * time.Minute
	RefusalsPerClient = 60
	RefusalsInWindow  = 1000
	RefusalSpacing    = 10 * time.Second
	MaxRefusalWait    = 10 * time.Minute
)

// RefusalWait is how long a refusal or failure of client (the record's
// client field; "" for a local request) must wait before it is appended,
// from tx's index: 0 when it may be appended now. It walks back the chain of
// refused and failed records (audit.Entry.PrevNonSigned), at most
// RefusalsInWindow entries. why says what held it back.
func RefusalWait(tx *audit.Tx, client string, now time.Time) (wait time.Duration, why string, err error) {
	if client == "" {
		return 0, "", nil
	}
	last, ok := tx.LastEntry()
	if !ok {
		return 0, "", nil
	}
	seq := last.Seq
	if !last.RefusedOrFailed() {
		seq = last.PrevNonSigned
	}
	cid := audit.ClientID(client)
	since := now.Add(-RefusalWindow).UnixMicro()
	var mine, all int
	var mineNewest, newest int64
	for seq != 0 && all < RefusalsInWindow {
		e, err := tx.Entry(seq)
		if err != nil {
			return 0, "", err
		}
		if e.Time < since {
			break
		}
		all++
		newest = max(newest, e.Time)
		if e.Client == cid {
			mine++
			mineNewest = max(mineNewest, e.Time)
		}
		seq = e.PrevNonSigned
	}
	var next int64
	switch {
	case mine >= RefusalsPerClient:
		next = mineNewest
		why = fmt.Sprintf("%d refused or failed requests from %s in %v", mine, client, RefusalWindow)
	case all >= RefusalsInWindow:
		next = newest
		why = fmt.Sprintf("%d refused or failed requests from all clients in %v", all, RefusalWindow)
	default:
		return 0, "", nil
	}
	wait = time.UnixMicro(next).Add(RefusalSpacing).Sub(now)
	if wait <= 0 {
		return 0, why, nil
	}
	return wait, why, nil
}

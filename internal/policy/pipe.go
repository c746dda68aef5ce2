package policy

import (
	"errors"
	"io"
	"sync"
)

// pipeDepth is how many chunks may wait for the decompressing goroutine.
// With signer.BufferSize chunks that is 2 MiB: enough to let hashing and
// decompression run side by side, small enough to bound memory.
const pipeDepth = 8

var errStopped = errors.New("policy: detection stopped")

// pipe hands copies of the observed chunks to the goroutine that
// decompresses them. The writer blocks while the queue is full, so the
// queue is bounded; it stops blocking, and copying, once the reader is done.
type pipe struct {
	ch        chan []byte
	free      chan []byte
	done      chan struct{} // closed when the reader needs no more input
	abort     chan struct{} // closed to make Read fail at once
	doneOnce  sync.Once
	abortOnce sync.Once
	closeOnce sync.Once
	cur       []byte
	off       int
}

func newPipe() *pipe {
	return &pipe{
		ch:    make(chan []byte, pipeDepth),
		free:  make(chan []byte, pipeDepth+2),
		done:  make(chan struct{}),
		abort: make(chan struct{}),
	}
}

// write queues a copy of b; it does not keep b.
func (p *pipe) write(b []byte) {
	if len(b) == 0 {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	var buf []byte
	select {
	case buf = <-p.free:
	default:
	}
	if cap(buf) < len(b) {
		// Sized to the chunk: signer.Read's chunks are all the same size,
		// so the free list recycles them.
		buf = make([]byte, len(b), max(len(b), 4096))
	}
	buf = buf[:len(b)]
	copy(buf, b)
	select {
	case p.ch <- buf:
	case <-p.done:
	}
}

// closeWrite marks the end of the input.
func (p *pipe) closeWrite() { p.closeOnce.Do(func() { close(p.ch) }) }

// finish tells writers the reader wants no more.
func (p *pipe) finish() { p.doneOnce.Do(func() { close(p.done) }) }

// stop makes the reader's next Read fail.
func (p *pipe) stop() { p.abortOnce.Do(func() { close(p.abort) }) }

func (p *pipe) Read(b []byte) (int, error) {
	for p.off >= len(p.cur) {
		if p.cur != nil {
			select {
			case p.free <- p.cur[:0]:
			default:
			}
			p.cur = nil
		}
		select {
		case buf, ok := <-p.ch:
			if !ok {
				return 0, io.EOF
			}
			p.cur, p.off = buf, 0
		case <-p.abort:
			return 0, errStopped
		}
	}
	n := copy(b, p.cur[p.off:])
	p.off += n
	return n, nil
}

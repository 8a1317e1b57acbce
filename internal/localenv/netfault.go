package localenv

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// NetFault is what an endpoint does to the connection of one request, the
// ways networks and servers really stop: a NAT or load balancer that drops a
// flow without a reset leaves the connection open and silent.
type NetFault int

const (
	NetServe        NetFault = iota // serve it
	NetStallHeaders                 // take the request, never answer; the connection stays open
	NetStallBody                    // send the headers and half the body, then nothing; the connection stays open
	NetStallUpload                  // read half the request body, then stop reading; no answer
	NetCutBody                      // send the headers and half the body, then drop the connection
)

// netFaults are an endpoint's NetFault hooks.
type netFaults struct {
	mu    sync.Mutex
	next  int
	hooks map[int]func(*http.Request) NetFault
}

func (n *netFaults) set(f func(*http.Request) NetFault) {
	n.mu.Lock()
	n.hooks = nil
	n.mu.Unlock()
	if f != nil {
		n.add(f)
	}
}

func (n *netFaults) add(f func(*http.Request) NetFault) (remove func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hooks == nil {
		n.hooks = map[int]func(*http.Request) NetFault{}
	}
	id := n.next
	n.next++
	n.hooks[id] = f
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.hooks, id)
	}
}

// decide asks the hooks in the order they were added; the first fault wins.
func (n *netFaults) decide(r *http.Request) NetFault {
	n.mu.Lock()
	ids := slices.Sorted(maps.Keys(n.hooks))
	hooks := make([]func(*http.Request) NetFault, len(ids))
	for i, id := range ids {
		hooks[i] = n.hooks[id]
	}
	n.mu.Unlock()
	for _, f := range hooks {
		if fault := f(r); fault != NetServe {
			return fault
		}
	}
	return NetServe
}

// maxHold bounds a stall for a client that never gives up, so a forgotten
// fault cannot hold a test for good.
const maxHold = 10 * time.Minute

// errStalled ends a stalled transfer once the client has gone.
var errStalled = errors.New("localenv: transfer stalled on purpose")

// hold blocks until the client goes away (ctx), the endpoint closes (done)
// or maxHold passes.
func hold(ctx context.Context, done <-chan struct{}) {
	t := time.NewTimer(maxHold)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-done:
	case <-t.C:
	}
}

// halfOf is the number of bytes sent or read before a fault strikes: half of
// a known length, else 32 KiB.
func halfOf(length string) int64 {
	if n, err := strconv.ParseInt(length, 10, 64); err == nil && n > 1 {
		return n / 2
	}
	return 32 << 10
}

// applyNetFault prepares a request for fault: it returns the writer and
// request to serve with. A stall before the headers never returns: it ends
// the handler when the client gives up.
func applyNetFault(fault NetFault, w http.ResponseWriter, r *http.Request, done <-chan struct{}) (http.ResponseWriter, *http.Request) {
	switch fault {
	case NetStallHeaders:
		hold(r.Context(), done)
		panic(http.ErrAbortHandler) // never a response, not even an empty one
	case NetStallBody, NetCutBody:
		return &faultyWriter{ResponseWriter: w, cut: fault == NetCutBody, budget: -1, hold: func() { hold(r.Context(), done) }}, r
	case NetStallUpload:
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &stallingBody{rc: r.Body, budget: halfOf(r.Header.Get("Content-Length")), hold: func() { hold(r.Context(), done) }}
		}
	}
	return w, r
}

// faultyWriter passes half the response body through, then stalls (holds
// the connection open, sending nothing) or cuts the connection.
type faultyWriter struct {
	http.ResponseWriter
	cut    bool
	budget int64 // bytes still to send; -1 until the headers are known
	hold   func()
}

func (f *faultyWriter) Write(b []byte) (int, error) {
	if f.budget < 0 {
		f.budget = halfOf(f.Header().Get("Content-Length"))
	}
	if int64(len(b)) <= f.budget {
		n, err := f.ResponseWriter.Write(b)
		f.budget -= int64(n)
		return n, err
	}
	_, _ = f.ResponseWriter.Write(b[:f.budget])
	f.budget = 0
	_ = http.NewResponseController(f.ResponseWriter).Flush()
	if !f.cut {
		f.hold()
	}
	panic(http.ErrAbortHandler) // the client sees the connection drop (or the stream reset on h2)
}

// Unwrap lets http.ResponseController reach Flush.
func (f *faultyWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// stallingBody reads the first budget bytes of a request body, then stops
// reading, as a registry whose backend hung does: the client's writes fill
// the socket buffers (or the HTTP/2 flow-control window) and block.
type stallingBody struct {
	rc     io.ReadCloser
	budget int64
	hold   func()
}

func (s *stallingBody) Read(p []byte) (int, error) {
	if s.budget <= 0 {
		s.hold()
		return 0, errStalled
	}
	if int64(len(p)) > s.budget {
		p = p[:s.budget]
	}
	n, err := s.rc.Read(p)
	s.budget -= int64(n)
	return n, err
}

func (s *stallingBody) Close() error { return s.rc.Close() }

package network

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"
)

// StallError is a request that made no progress for the idle timeout: the
// server sent nothing, or stopped reading what was sent to it.
type StallError struct {
	Host  string
	Phase string // what the request was doing, e.g. "reading the response body"
	Idle  time.Duration
	// Sent is when the request was sent: requests sent before an earlier
	// stall was seen stalled with it (one HTTP/2 connection, one outage).
	Sent time.Time
}

func (e *StallError) Error() string {
	return fmt.Sprintf("no progress with %s for %s while %s", e.Host, e.Idle, e.Phase)
}

// BrokenError is a response body whose connection failed before its end
// (reset, closed early, an HTTP/2 connection found dead by its pings).
type BrokenError struct {
	Host string
	Err  error
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("the connection to %s broke off while reading the response body: %v", e.Host, e.Err)
}

func (e *BrokenError) Unwrap() error { return e.Err }

// Timeout and Temporary make a stall a net.Error: another attempt may work.
func (e *StallError) Timeout() bool   { return true }
func (e *StallError) Temporary() bool { return true }

// Phases of a request, as StallError names them.
const (
	phaseConnecting = "connecting"
	phaseSending    = "sending the request"
	phaseWaiting    = "waiting for the response headers"
	phaseReading    = "reading the response body"
)

// stallTransport ends a request that makes no progress for idle. The clock
// runs while the transport waits on the network (connecting, sending,
// waiting for the answer, reading the body) and stops while it waits on
// the caller: for the next piece of a request body, or for the caller to
// read the response, so a slow consumer is never taken for a stall.
type stallTransport struct {
	base http.RoundTripper
	idle time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := newWatch(req.URL.Host, t.idle, cancel)
	r := req.WithContext(httptrace.WithClientTrace(ctx, w.trace()))
	if req.Body != nil && req.Body != http.NoBody {
		r.Body = &watchedRequestBody{ReadCloser: req.Body, w: w}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return &watchedRequestBody{ReadCloser: b, w: w}, nil
			}
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		w.pause()
		cancel()
		return nil, w.stallOr(err)
	}
	w.gotAnswer()
	if resp.Body == http.NoBody { // a HEAD, an empty answer: nothing left to watch
		cancel()
		return resp, nil
	}
	resp.Body = &watchedResponseBody{ReadCloser: resp.Body, w: w, cancel: cancel}
	return resp, nil
}

// watch is the idle clock of one request.
type watch struct {
	host  string
	idle  time.Duration
	sent  time.Time
	timer *time.Timer

	mu       sync.Mutex
	phase    string
	fired    bool
	answered bool // response headers arrived
	cancel   context.CancelFunc
}

func newWatch(host string, idle time.Duration, cancel context.CancelFunc) *watch {
	w := &watch{host: host, idle: idle, sent: time.Now(), phase: phaseConnecting, cancel: cancel}
	w.timer = time.AfterFunc(idle, w.fire)
	return w
}

func (w *watch) fire() {
	w.mu.Lock()
	w.fired = true
	w.mu.Unlock()
	w.cancel()
}

// progress restarts the clock; phase, if set, says what is being waited for.
func (w *watch) progress(phase string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fired {
		return // the phase stays the one that stalled
	}
	if phase != "" {
		w.phase = phase
	}
	w.timer.Reset(w.idle)
}

// pause stops the clock while the caller, not the network, is awaited.
func (w *watch) pause() { w.timer.Stop() }

func (w *watch) gotAnswer() {
	w.timer.Stop()
	w.mu.Lock()
	w.answered, w.phase = true, phaseReading
	w.mu.Unlock()
}

// sendingBody reports whether the request is still being sent; once the
// answer came, body reads by the transport no longer restart the clock.
func (w *watch) sendingBody() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.answered
}

// stallOr is a StallError when the clock ran out (or the transport's own
// wait for the response headers did), else err.
func (w *watch) stallOr(err error) error {
	w.mu.Lock()
	fired, phase := w.fired, w.phase
	w.mu.Unlock()
	if fired || isHeaderTimeout(err) {
		if !fired {
			phase = phaseWaiting
		}
		return &StallError{Host: w.host, Phase: phase, Idle: w.idle, Sent: w.sent}
	}
	return err
}

func isHeaderTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout awaiting response headers")
}

// trace names the phase of the request as it goes.
func (w *watch) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn:          func(httptrace.GotConnInfo) { w.progress(phaseSending) },
		TLSHandshakeDone: func(tls.ConnectionState, error) { w.progress("") },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				w.progress(phaseWaiting)
			}
		},
		GotFirstResponseByte: func() { w.progress("") },
	}
}

// watchedRequestBody restarts the clock whenever the transport takes more
// of the body; while it waits for the caller's reader, the clock stops.
type watchedRequestBody struct {
	io.ReadCloser
	w *watch
}

func (b *watchedRequestBody) Read(p []byte) (int, error) {
	if !b.w.sendingBody() {
		return b.ReadCloser.Read(p)
	}
	b.w.pause()
	n, err := b.ReadCloser.Read(p)
	if b.w.sendingBody() {
		b.w.progress("")
	}
	return n, err
}

// watchedResponseBody runs the clock only while a read waits on the network.
type watchedResponseBody struct {
	io.ReadCloser
	w      *watch
	cancel context.CancelFunc
}

func (b *watchedResponseBody) Read(p []byte) (int, error) {
	b.w.progress(phaseReading)
	n, err := b.ReadCloser.Read(p)
	b.w.pause()
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.w.stallOr(err)
	}
	return n, err
}

func (b *watchedResponseBody) Close() error {
	b.w.pause()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

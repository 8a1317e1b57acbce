package network

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testIdle is short so the tests run fast; nothing asserts on timing.
const testIdle = 300 * time.Millisecond

// stallingServer answers with handler, and releases handlers still blocked
// when the test ends.
func stallingServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler(w, r, release) }))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func testClient() *http.Client {
	return &http.Client{Transport: Settings{IdleTimeout: testIdle}.NewTransport()}
}

// guard fails the test if the request did not end by itself: a hung
// request would otherwise hold the test until go test's own timeout.
func guard(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantStall(t *testing.T, err error, phase string) {
	t.Helper()
	var stall *StallError
	if !errors.As(err, &stall) {
		t.Fatalf("error = %v; want a StallError", err)
	}
	if stall.Phase != phase || stall.Idle != testIdle {
		t.Errorf("stall = %+v; want phase %q after %s", stall, phase, testIdle)
	}
	if f, ok := Explain(err); !ok || f.Kind != KindStall || f.Host != stall.Host {
		t.Errorf("Explain = %+v, %v; want a stall on %s", f, ok, stall.Host)
	}
}

func TestStallReadingBody(t *testing.T) {
	srv := stallingServer(t, func(w http.ResponseWriter, _ *http.Request, release <-chan struct{}) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write(make([]byte, 400))
		_ = http.NewResponseController(w).Flush() // the read below shows what arrived
		<-release
	})
	req, _ := http.NewRequestWithContext(guard(t), http.MethodGet, srv.URL, nil)
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	n, err := io.Copy(io.Discard, resp.Body)
	if n != 400 {
		t.Errorf("read %d bytes before the stall; want 400", n)
	}
	wantStall(t, err, phaseReading)
}

func TestStallWaitingForHeaders(t *testing.T) {
	srv := stallingServer(t, func(_ http.ResponseWriter, _ *http.Request, release <-chan struct{}) { <-release })
	req, _ := http.NewRequestWithContext(guard(t), http.MethodHead, srv.URL, nil)
	err := failedRequest(testClient(), req)
	wantStall(t, err, phaseWaiting)
	if !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("error %q does not name the host", err)
	}
}

// endless is a request body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestStallSendingBody(t *testing.T) {
	// The registry takes the request and then reads nothing of its body.
	srv := stallingServer(t, func(_ http.ResponseWriter, _ *http.Request, release <-chan struct{}) { <-release })
	req, _ := http.NewRequestWithContext(guard(t), http.MethodPut, srv.URL, io.NopCloser(endless{}))
	err := failedRequest(testClient(), req)
	wantStall(t, err, phaseSending)
}

// slowReader hands out its bytes one piece at a time, pausing before each.
type slowReader struct {
	pieces int
	pause  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.pieces == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	s.pieces--
	p[0] = 'x'
	return 1, nil
}

func TestSlowCallerIsNoStall(t *testing.T) {
	srv := stallingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	})
	// The request body's source pauses longer than the idle timeout, and so
	// does the reader of the response: neither is the network stalling.
	req, _ := http.NewRequestWithContext(guard(t), http.MethodPut, srv.URL, &slowReader{pieces: 2, pause: 2 * testIdle})
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	time.Sleep(2 * testIdle)
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "xx" {
		t.Errorf("body %q, %v; want xx", body, err)
	}
}

func TestCancelledRequestIsNoStall(t *testing.T) {
	srv := stallingServer(t, func(_ http.ResponseWriter, _ *http.Request, release <-chan struct{}) { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	err := failedRequest(testClient(), req)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v; want context.Canceled", err)
	}
}

func TestStallReadingBodyHTTP2(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(make([]byte, 400))
		_ = http.NewResponseController(w).Flush() // the read below shows what arrived
		<-release
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() { close(release); srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	s, err := NewSettings(testIdle, CAFile{Path: caFile, From: "test"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(guard(t), http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: s.NewTransport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s; want HTTP/2", resp.Proto)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if n != 400 {
		t.Errorf("read %d bytes before the stall; want 400", n)
	}
	wantStall(t, err, phaseReading)
}

// failedRequest sends a request expected to fail and returns its error.
func failedRequest(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err == nil {
		closeBody(resp)
	}
	return err
}

func closeBody(resp *http.Response) { _ = resp.Body.Close() }

package mirror

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// blobRegistries is an ECR that serves one blob and an open GitLab registry
// that answers uploads as answer says, counting the requests of each.
type blobRegistries struct {
	blob   []byte
	desc   descriptor.Descriptor
	answer func(put int) (status int, retryAfter, body string)

	// Faults: the first stallDownloads blob GETs send half the blob and then
	// nothing, the first stallUploads PUTs read nothing of their body, until
	// the test ends; idle is the engine's idle timeout.
	stallDownloads, stallUploads int
	idle                         time.Duration
	release                      chan struct{}
	// overHTTP2: ECR serves over TLS with HTTP/2, and the first
	// resetDownloads blob GETs are reset (RST_STREAM) halfway.
	overHTTP2      bool
	resetDownloads int
	// hangHeads: GitLab takes HEAD requests and never answers, until
	// answerHeads is set.
	hangHeads   bool
	answerHeads atomic.Bool

	mu       sync.Mutex
	calls    map[string]int
	times    map[string][]time.Time
	ranges   []string // Range headers of the blob GETs
	received []string // digests of the blobs GitLab received
}

type blobOpt func(*blobRegistries)

func newBlobRegistries(t *testing.T, answer func(put int) (int, string, string), opts ...blobOpt) (*blobRegistries, *copier) {
	t.Helper()
	b := &blobRegistries{blob: []byte(strings.Repeat("layer bytes ", 1000)), answer: answer, calls: map[string]int{}, times: map[string][]time.Time{}, release: make(chan struct{})}
	for _, opt := range opts {
		opt(b)
	}
	sum := sha256.Sum256(b.blob)
	b.desc = descriptor.Descriptor{MediaType: mediatype.OCI1LayerGzip, Digest: digest.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(b.blob))}
	ecrSrv := httptest.NewUnstartedServer(http.HandlerFunc(b.serveECR))
	nets := network.Settings{IdleTimeout: b.idle}
	if b.overHTTP2 {
		ecrSrv.EnableHTTP2 = true
		ecrSrv.StartTLS()
		nets.RootCAs = x509.NewCertPool()
		nets.RootCAs.AddCert(ecrSrv.Certificate())
	} else {
		ecrSrv.Start()
	}
	gitlabSrv := httptest.NewServer(http.HandlerFunc(b.serveGitLab))
	t.Cleanup(func() { close(b.release); ecrSrv.Close(); gitlabSrv.Close() })

	e := New(Config{ECR: &fakeCredentials{}, ECREndpoint: ecrSrv.URL, ECRNetwork: nets, GitLabNetwork: network.Settings{IdleTimeout: b.idle}})
	u, _ := url.Parse(gitlabSrv.URL)
	e.AddGitLabRegistry(u.Host, true)
	c, err := e.newCopier(context.Background(), Request{Source: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api", Target: u.Host + "/group/project/api"})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func (b *blobRegistries) count(side string, r *http.Request) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := side + " " + r.Method
	b.calls[key]++
	b.times[key] = append(b.times[key], time.Now())
	return b.calls[key]
}

// serveECR serves the blob, or the part a Range asks for, stalling as told.
func (b *blobRegistries) serveECR(w http.ResponseWriter, r *http.Request) {
	n := b.count("ECR", r)
	body, status := b.blob, http.StatusOK
	var from int
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from); err == nil {
		b.mu.Lock()
		b.ranges = append(b.ranges, r.Header.Get("Range"))
		b.mu.Unlock()
		body, status = b.blob[from:], http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(b.blob)-1, len(b.blob)))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Docker-Content-Digest", b.desc.Digest.String())
	w.WriteHeader(status)
	if n <= b.resetDownloads {
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // over HTTP/2, the stream is reset
	}
	if n <= b.stallDownloads {
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush() // the client's read shows what arrived
		<-b.release
		return
	}
	_, _ = w.Write(body)
}

func (b *blobRegistries) serveGitLab(w http.ResponseWriter, r *http.Request) {
	n := b.count("GitLab", r)
	if r.Method == http.MethodHead && b.hangHeads && !b.answerHeads.Load() {
		<-b.release
		return
	}
	switch r.Method {
	case http.MethodPost:
		w.Header().Set("Location", "/v2/group/project/api/blobs/uploads/1")
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut, http.MethodPatch:
		if r.Method == http.MethodPut && n <= b.stallUploads {
			<-b.release
			return
		}
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		b.mu.Lock()
		b.received = append(b.received, "sha256:"+hex.EncodeToString(h.Sum(nil)))
		b.mu.Unlock()
		status, retryAfter, body := b.answer(n)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	default:
		w.WriteHeader(http.StatusOK) // the login ping of an open registry, an upload's cancel
	}
}

// TestRefusedBlobUploadSentOnce: a blob upload GitLab answers with 500 is
// neither replayed nor resent in chunks by regclient, each of which read the
// blob from ECR again while the host backed off (a permanent refusal took
// many minutes to fail); copyDigest's retry is the one retry.
func TestRefusedBlobUploadSentOnce(t *testing.T) {
	b, c := newBlobRegistries(t, func(int) (int, string, string) {
		return http.StatusInternalServerError, "", `{"errors":[{"code":"UNKNOWN","message":"storage unavailable"}]}`
	})
	err := c.streamBlob(context.Background(), b.desc)
	if answer, ok := Answer(err); !ok || answer.Side != SideGitLab || answer.Status != http.StatusInternalServerError || answer.Message != "storage unavailable" {
		t.Fatalf("streamBlob error %v, want GitLab's 500 quoted", err)
	}
	if !isTransient(err) {
		t.Errorf("a 500 on an upload is not retried by copyDigest: %v", err)
	}
	if b.calls["ECR GET"] != 1 || b.calls["GitLab PUT"] != 1 || b.calls["GitLab PATCH"] != 0 {
		t.Errorf("requests %v, want the blob read from ECR once and PUT to GitLab once, no chunks", b.calls)
	}
}

// TestRateLimitedBlobUploadSentAgainAfterRetryAfter: a 429 is the registry
// asking to come back later; the blob is read and sent again once the
// Retry-After has passed, not before.
func TestRateLimitedBlobUploadSentAgainAfterRetryAfter(t *testing.T) {
	b, c := newBlobRegistries(t, func(put int) (int, string, string) {
		if put == 1 {
			return http.StatusTooManyRequests, "1", `{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}`
		}
		return http.StatusCreated, "", ""
	})
	if err := c.streamBlob(context.Background(), b.desc); err != nil {
		t.Fatalf("streamBlob after one 429: %v", err)
	}
	if b.calls["ECR GET"] != 2 || b.calls["GitLab PUT"] != 2 {
		t.Fatalf("requests %v, want the blob read and sent twice", b.calls)
	}
	puts, gets := b.times["GitLab PUT"], b.times["ECR GET"]
	if wait := gets[1].Sub(puts[0]); wait < 900*time.Millisecond {
		t.Errorf("read from ECR again %s after the 429, want after its Retry-After of 1 s", wait)
	}
}

// testIdle is short so the tests run fast, long enough for a busy machine.
const testIdle = time.Second

func stalling(downloads, uploads int) blobOpt {
	return func(b *blobRegistries) { b.stallDownloads, b.stallUploads, b.idle = downloads, uploads, testIdle }
}

// TestStalledDownloadResumesWithRange: a download that stops sending ends
// after the idle timeout and goes on with a Range request from the last
// byte received; GitLab gets the blob whole.
func TestStalledDownloadResumesWithRange(t *testing.T) {
	b, c := newBlobRegistries(t, created, stalling(1, 0))
	if err := c.streamBlob(context.Background(), b.desc); err != nil {
		t.Fatalf("streamBlob with a stalled download: %v", err)
	}
	half := len(b.blob) / 2
	if want := fmt.Sprintf("bytes=%d-%d", half, len(b.blob)); len(b.ranges) != 1 || b.ranges[0] != want {
		t.Errorf("Range requests %q; want one, %q", b.ranges, want)
	}
	if b.calls["ECR GET"] != 2 || len(b.received) != 1 || b.received[0] != b.desc.Digest.String() {
		t.Errorf("requests %v, GitLab received %d blobs; want two GETs and the blob whole", b.calls, len(b.received))
	}
}

// TestDownloadThatNeverRecovers: the resume stalls too; the error names
// ECR's host, the digest and what was tried, and the call is not tried again.
func TestDownloadThatNeverRecovers(t *testing.T) {
	b, c := newBlobRegistries(t, created, stalling(1000, 0))
	err := c.streamBlob(context.Background(), b.desc)
	var stall *network.StallError
	if SideOf(err) != SideECR || !errors.As(err, &stall) || stall.Phase != "reading the response body" {
		t.Fatalf("error %v; want ECR's stall reading the body", err)
	}
	for _, want := range []string{stall.Host, b.desc.Digest.String(), "resumed with Range from byte 6000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if isTransient(err) {
		t.Errorf("a download that stalled twice is tried again, for two more idle timeouts: %v", err)
	}
	t.Log(err)
}

// TestStalledUploadEnds: a registry that stops reading an upload's body
// ends the upload after the idle timeout, as a GitLab failure another
// attempt may get past; the next attempt sends the blob.
func TestStalledUploadEnds(t *testing.T) {
	b, c := newBlobRegistries(t, created, stalling(0, 1), func(b *blobRegistries) {
		b.blob = make([]byte, 16<<20) // more than the sockets' buffers hold
	})
	err := c.streamBlob(context.Background(), b.desc)
	var stall *network.StallError
	if SideOf(err) != SideGitLab || !errors.As(err, &stall) || stall.Phase != "sending the request" {
		t.Fatalf("error %v; want GitLab's stall while sending", err)
	}
	if !isTransient(err) {
		t.Errorf("a stalled upload is worth another attempt: %v", err)
	}
	t.Log(err)
	if err := c.streamBlob(context.Background(), b.desc); err != nil || len(b.received) != 1 || b.received[0] != b.desc.Digest.String() {
		t.Errorf("second attempt: %v, GitLab received %d blobs", err, len(b.received))
	}
}

func created(int) (int, string, string) { return http.StatusCreated, "", "" }

// TestResetDownloadResumesWithRange: an HTTP/2 stream reset halfway (not an
// EOF, on which alone regclient resumes) resumes with a Range request too.
func TestResetDownloadResumesWithRange(t *testing.T) {
	b, c := newBlobRegistries(t, created, func(b *blobRegistries) { b.overHTTP2, b.resetDownloads, b.idle = true, 1, testIdle })
	if err := c.streamBlob(context.Background(), b.desc); err != nil {
		t.Fatalf("streamBlob with a reset download: %v", err)
	}
	if len(b.ranges) != 1 || b.calls["ECR GET"] != 2 || len(b.received) != 1 || b.received[0] != b.desc.Digest.String() {
		t.Errorf("Range requests %q, requests %v, GitLab received %q; want one resume and the blob whole", b.ranges, b.calls, b.received)
	}
}

// TestHungRegistryStalledTwice: a registry that never answers costs a call
// two stalled requests, not regclient's every retry, each idle_timeout long.
func TestHungRegistryStalledTwice(t *testing.T) {
	b, c := newBlobRegistries(t, created, func(b *blobRegistries) { b.hangHeads, b.idle = true, testIdle })
	err := c.placeBlob(context.Background(), b.desc)
	var stall *network.StallError
	if SideOf(err) != SideGitLab || !errors.As(err, &stall) || stall.Phase != "waiting for the response headers" {
		t.Fatalf("error %v; want GitLab's stall waiting for the headers", err)
	}
	if b.calls["GitLab HEAD"] != maxStallsPerHost {
		t.Errorf("GitLab got %d HEADs; want %d", b.calls["GitLab HEAD"], maxStallsPerHost)
	}
	if isTransient(err) {
		t.Errorf("a registry that stalled twice in a row is asked again: %v", err)
	}
}

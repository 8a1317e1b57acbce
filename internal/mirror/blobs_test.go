package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
)

// blobRegistries is an ECR that serves one blob and an open GitLab registry
// that answers uploads as answer says, counting the requests of each.
type blobRegistries struct {
	blob   []byte
	desc   descriptor.Descriptor
	answer func(put int) (status int, retryAfter, body string)

	mu    sync.Mutex
	calls map[string]int
	times map[string][]time.Time
}

func newBlobRegistries(t *testing.T, answer func(put int) (int, string, string)) (*blobRegistries, *copier) {
	t.Helper()
	b := &blobRegistries{blob: []byte(strings.Repeat("layer bytes ", 1000)), answer: answer, calls: map[string]int{}, times: map[string][]time.Time{}}
	sum := sha256.Sum256(b.blob)
	b.desc = descriptor.Descriptor{MediaType: mediatype.OCI1LayerGzip, Digest: digest.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(b.blob))}
	ecrSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.count("ECR", r)
		w.Header().Set("Content-Length", strconv.Itoa(len(b.blob)))
		w.Header().Set("Docker-Content-Digest", b.desc.Digest.String())
		_, _ = w.Write(b.blob)
	}))
	t.Cleanup(ecrSrv.Close)
	gitlabSrv := httptest.NewServer(http.HandlerFunc(b.serveGitLab))
	t.Cleanup(gitlabSrv.Close)

	e := New(Config{ECR: &fakeCredentials{}, ECREndpoint: ecrSrv.URL})
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

func (b *blobRegistries) serveGitLab(w http.ResponseWriter, r *http.Request) {
	n := b.count("GitLab", r)
	switch r.Method {
	case http.MethodPost:
		w.Header().Set("Location", "/v2/group/project/api/blobs/uploads/1")
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut, http.MethodPatch:
		_, _ = io.Copy(io.Discard, r.Body)
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

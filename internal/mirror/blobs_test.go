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

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/mediatype"
)

// TestRefusedBlobUploadSentOnce: a blob upload GitLab answers with 500 is
// neither replayed nor resent in chunks by regclient, each of which reads the
// blob from ECR again while the host backs off (a permanent refusal crawled
// for minutes); copyDigest's retry is the one retry.
func TestRefusedBlobUploadSentOnce(t *testing.T) {
	blob := []byte(strings.Repeat("layer bytes ", 1000))
	sum := sha256.Sum256(blob)
	d := descriptor.Descriptor{MediaType: mediatype.OCI1LayerGzip, Digest: digest.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(blob))}
	var (
		mu    sync.Mutex
		calls = map[string]int{}
	)
	count := func(side string, r *http.Request) {
		mu.Lock()
		calls[side+" "+r.Method]++
		mu.Unlock()
	}
	ecrSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count("ECR", r)
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Header().Set("Docker-Content-Digest", d.Digest.String())
		_, _ = w.Write(blob)
	}))
	defer ecrSrv.Close()
	gitlabSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count("GitLab", r)
		switch {
		case r.Method == http.MethodPost:
			w.Header().Set("Location", "/v2/group/project/api/blobs/uploads/1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPut || r.Method == http.MethodPatch:
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"storage unavailable"}]}`)
		default:
			w.WriteHeader(http.StatusOK) // the login ping of an open registry, the upload's cancel
		}
	}))
	defer gitlabSrv.Close()

	e := New(Config{ECR: &fakeCredentials{}, ECREndpoint: ecrSrv.URL})
	u, _ := url.Parse(gitlabSrv.URL)
	e.AddGitLabRegistry(u.Host, true)
	c, err := e.newCopier(context.Background(), Request{Source: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api", Target: u.Host + "/group/project/api"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.streamBlob(context.Background(), d)
	if answer, ok := Answer(err); !ok || answer.Side != SideGitLab || answer.Status != http.StatusInternalServerError || answer.Message != "storage unavailable" {
		t.Fatalf("streamBlob error %v, want GitLab's 500 quoted", err)
	}
	if !isTransient(err) {
		t.Errorf("a 500 on an upload is not retried by copyDigest: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["ECR GET"] != 1 || calls["GitLab PUT"] != 1 || calls["GitLab PATCH"] != 0 {
		t.Errorf("requests %v, want the blob read from ECR once and PUT to GitLab once, no chunks", calls)
	}
}

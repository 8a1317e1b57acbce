package mirror

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// The blob bytes travel over HTTP/1.1 connections of their own, everything
// else over the registry's HTTP/2 connection: the protocol the server saw
// for each request tells.
func TestStreamSplit_protocols(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen[r.Method+" "+r.URL.Path] = r.ProtoMajor
		mu.Unlock()
		if r.URL.Path == "/v2/p/blobs/sha256:aa" {
			http.Redirect(w, r, "/bucket/object", http.StatusTemporaryRedirect)
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client := &http.Client{Transport: newStreamSplit(network.Settings{RootCAs: pool}, func(*http.Transport) {})}

	send := func(method, path, body string) {
		t.Helper()
		var rdr io.Reader
		if body != "" {
			rdr = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, rdr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_ = resp.Body.Close()
	}
	send(http.MethodGet, "/v2/p/manifests/v1", "")
	send(http.MethodHead, "/v2/p/blobs/sha256:bb", "")
	send(http.MethodPost, "/v2/p/blobs/uploads/", "")
	send(http.MethodGet, "/v2/p/blobs/sha256:aa", "") // redirected to /bucket/object
	send(http.MethodPut, "/v2/p/blobs/uploads/u1", "layer bytes")

	want := map[string]int{
		"GET /v2/p/manifests/v1":     2,
		"HEAD /v2/p/blobs/sha256:bb": 2,
		"POST /v2/p/blobs/uploads/":  2,
		"GET /v2/p/blobs/sha256:aa":  1,
		"GET /bucket/object":         1,
		"PUT /v2/p/blobs/uploads/u1": 1,
	}
	for req, proto := range want {
		if seen[req] != proto {
			t.Errorf("%s went over HTTP/%d, want HTTP/%d", req, seen[req], proto)
		}
	}
}

package gitlab

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// lookUpProject looks a project up in the GitLab API at baseURL over a
// transport with nets.
func lookUpProject(t *testing.T, baseURL string, nets network.Settings) error {
	t.Helper()
	c, err := New(Config{BaseURL: baseURL, Token: "glpat-x", HTTPClient: &http.Client{Transport: nets.NewTransport()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Project(ctx, "group/app")
	return err
}

// TestAPITrustsTheCACertFile: the GitLab API's connections trust the CA of
// cacert_file, and without it name the unknown authority and the host.
func TestAPITrustsTheCACertFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":7,"path_with_namespace":"group/app","container_registry_image_prefix":"registry.example.com/group/app","container_registry_enabled":true}`))
	}))
	t.Cleanup(srv.Close)
	lookup := func(nets network.Settings) error { return lookUpProject(t, srv.URL, nets) }
	err := lookup(network.Settings{})
	if f, ok := network.Explain(err); !ok || f.Kind != network.KindUnknownAuthority || f.Host != strings.TrimPrefix(srv.URL, "https://") {
		t.Errorf("without the CA: %+v (%v); want an unknown authority on the server's host", f, err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	nets, err := network.NewSettings(time.Second, network.CAFile{Path: caFile, From: "gitlab.cacert_file"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lookup(nets); err != nil {
		t.Errorf("with the CA trusted: %v", err)
	}
}

// TestAPIStallNotRetried: a GitLab API that takes the request and never
// answers gets it once, not once per retry of the client, each costing
// idle_timeout.
func TestAPIStallNotRetried(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1); <-release }))
	t.Cleanup(func() { close(release); srv.Close() })
	err := lookUpProject(t, srv.URL, network.Settings{IdleTimeout: time.Second})
	if f, ok := network.Explain(err); !ok || f.Kind != network.KindStall || requests.Load() != 1 {
		t.Errorf("error %v explained as %+v after %d requests; want a stall after one", err, f, requests.Load())
	}
}

package ecr

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

// apiClient is a client of the ECR API at endpoint with the given network
// settings and static credentials.
func apiClient(t *testing.T, endpoint string, nets network.Settings) *Client {
	t.Helper()
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	return apiClientWithRetries(t, endpoint, nets)
}

// apiClientWithRetries is apiClient with the SDK's own number of attempts.
func apiClientWithRetries(t *testing.T, endpoint string, nets network.Settings) *Client {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	c, err := New(context.Background(), Config{Region: "eu-west-1", Endpoint: endpoint, Network: nets})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listRepositories(t *testing.T, c *Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.DescribeRepositories(ctx, Filter{})
	return err
}

// TestAPITrustsTheCustomCABundle: the API's connections trust the CA of
// custom_ca_bundle, and without it name the unknown authority.
func TestAPITrustsTheCustomCABundle(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"repositories":[]}`))
	}))
	t.Cleanup(srv.Close)
	err := listRepositories(t, apiClient(t, srv.URL, network.Settings{}))
	if f, ok := network.Explain(err); !ok || f.Kind != network.KindUnknownAuthority || f.Host != strings.TrimPrefix(srv.URL, "https://") {
		t.Errorf("without the CA: %+v (%v); want an unknown authority on the server's host", f, err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	nets, err := network.NewSettings(time.Second, network.CAFile{Path: caFile, From: "ecr.custom_ca_bundle"})
	if err != nil {
		t.Fatal(err)
	}
	if err := listRepositories(t, apiClient(t, srv.URL, nets)); err != nil {
		t.Errorf("with the CA trusted: %v", err)
	}
	// AWS_CA_BUNDLE, which the SDK also reads and adds to the same pool.
	t.Setenv("AWS_CA_BUNDLE", caFile)
	if err := listRepositories(t, apiClient(t, srv.URL, nets)); err != nil {
		t.Errorf("with AWS_CA_BUNDLE set too: %v", err)
	}
}

// TestAPIStallNotRetried: with the SDK's default attempts, an ECR API that
// never answers gets one request, not one idle timeout per attempt.
func TestAPIStallNotRetried(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1); <-release }))
	t.Cleanup(func() { close(release); srv.Close() })
	err := listRepositories(t, apiClientWithRetries(t, srv.URL, network.Settings{IdleTimeout: time.Second}))
	if f, ok := network.Explain(err); !ok || f.Kind != network.KindStall || requests.Load() != 1 {
		t.Errorf("error %v explained as %+v after %d requests; want a stall after one", err, f, requests.Load())
	}
}

// TestAPIStallEnds: an ECR API that accepts the request and never answers
// fails after the idle timeout, as a stall.
func TestAPIStallEnds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(func() { close(release); srv.Close() })
	err := listRepositories(t, apiClient(t, srv.URL, network.Settings{IdleTimeout: time.Second}))
	if f, ok := network.Explain(err); !ok || f.Kind != network.KindStall {
		t.Errorf("error %v explained as %+v; want a stall", err, f)
	}
}

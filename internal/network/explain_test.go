package network

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA made for one test, and the PEM file that holds it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imagesync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// serve starts an HTTPS server (HTTP/2 offered) whose certificate the CA
// issued for names, valid until notAfter.
func (ca *testCA) serve(t *testing.T, notAfter time.Time, names ...string) *httptest.Server {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto) //nolint:gosec // the request's protocol name, for the test
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, s Settings, rawURL string, opts ...func(*http.Transport)) (string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(guard(t), http.MethodGet, rawURL, nil)
	resp, err := (&http.Client{Transport: s.NewTransport(opts...)}).Do(req)
	if err != nil {
		return "", err
	}
	defer closeBody(resp)
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestPrivateCA(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.serve(t, time.Now().Add(time.Hour), "registry.test")
	host := strings.TrimPrefix(srv.URL, "https://")

	_, err := get(t, Settings{}, srv.URL)
	wantFailure(t, err, KindUnknownAuthority, host, `signed by an unknown authority (issued by "CN=imagesync test CA")`)

	trusted, err := NewSettings(testIdle, CAFile{Path: ca.file, From: "gitlab.cacert_file"})
	if err != nil {
		t.Fatal(err)
	}
	if proto, err := get(t, trusted, srv.URL); err != nil || proto != "HTTP/2.0" {
		t.Errorf("with the CA trusted: %q, %v; want HTTP/2.0 and no error", proto, err)
	}
	// The system's CAs stay trusted beside the file's.
	system, _ := x509.SystemCertPool()
	if system != nil && len(system.Subjects()) > 0 && len(trusted.RootCAs.Subjects()) != len(system.Subjects())+1 { //nolint:staticcheck // counting is all this needs
		t.Errorf("pool holds %d subjects; want the system's %d and the file's", len(trusted.RootCAs.Subjects()), len(system.Subjects())) //nolint:staticcheck // see above
	}

	// The certificate names registry.test and 127.0.0.1, not localhost.
	_, err = get(t, trusted, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	wantFailure(t, err, KindHostname, strings.Replace(host, "127.0.0.1", "localhost", 1), "not valid for the name localhost (it names registry.test, 127.0.0.1)")
}

func TestExpiredCertificate(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.serve(t, time.Now().Add(-time.Hour), "registry.test")
	trusted, _ := NewSettings(testIdle, CAFile{Path: ca.file, From: "test"})
	_, err := get(t, trusted, srv.URL)
	wantFailure(t, err, KindExpired, strings.TrimPrefix(srv.URL, "https://"), "expired on ")
}

func TestPlainHTTPServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, err := get(t, Settings{}, strings.Replace(srv.URL, "http://", "https://", 1))
	wantFailure(t, err, KindPlainHTTP, strings.TrimPrefix(srv.URL, "http://"), "plain HTTP")
}

func TestCAFileErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.pem")
	_ = os.WriteFile(empty, []byte("not a certificate"), 0o600)
	for file, want := range map[string]string{
		empty:                     "holds no PEM certificate",
		filepath.Join(empty, "x"): "not a directory",
	} {
		_, err := NewSettings(0, CAFile{Path: file, From: "ecr.custom_ca_bundle"})
		if !errors.Is(err, ErrCAFile) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "ecr.custom_ca_bundle") {
			t.Errorf("%s: error = %v; want ErrCAFile naming ecr.custom_ca_bundle and %q", file, err, want)
		}
	}
}

func TestProxyRefusesTunnel(t *testing.T) {
	for _, status := range []int{http.StatusProxyAuthRequired, http.StatusForbidden} {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodConnect {
				t.Errorf("proxy got %s; want CONNECT", r.Method)
			}
			w.Header().Set("Proxy-Authenticate", `Basic realm="corp"`)
			w.WriteHeader(status)
		}))
		t.Cleanup(proxy.Close)
		proxyURL, _ := url.Parse(proxy.URL)
		_, err := get(t, Settings{}, "https://registry.test/v2/", func(tr *http.Transport) { tr.Proxy = http.ProxyURL(proxyURL) })
		f := wantFailure(t, err, KindProxyRefused, "registry.test:443", "refused to open a tunnel to registry.test:443")
		if f.Status != status {
			t.Errorf("status = %d; want %d", f.Status, status)
		}
	}
}

func TestProxyFromEnvironment(t *testing.T) {
	tr := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // the standard library's own type
	tr.Proxy = nil
	Settings{}.Apply(tr)
	if tr.Proxy == nil || tr.OnProxyConnectResponse == nil {
		t.Error("Apply left the proxy settings out")
	}
}

func TestDNSFailure(t *testing.T) {
	_, err := get(t, Settings{}, "https://registry.invalid/v2/")
	wantFailure(t, err, KindDNS, "registry.invalid", "could not be resolved")
}

func TestConnectionRefused(t *testing.T) {
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, err = get(t, Settings{}, "https://"+addr+"/v2/")
	wantFailure(t, err, KindRefused, addr, "refused the connection")
}

func wantFailure(t *testing.T, err error, kind Kind, host, what string) Failure {
	t.Helper()
	f, ok := Explain(err)
	if !ok || f.Kind != kind || f.Host != host || !strings.Contains(f.What, what) {
		t.Errorf("Explain(%v) = %+v, %v; want kind %d on %s saying %q", err, f, ok, kind, host, what)
	}
	return f
}

func TestHostIsTheInnermostRequests(t *testing.T) {
	login := &url.Error{Op: "Get", URL: "https://gitlab.corp.example/jwt/auth?scope=x", Err: x509.UnknownAuthorityError{}}
	err := &url.Error{Op: "Head", URL: "https://registry.corp.example/v2/a/manifests/v1", Err: fmt.Errorf("getting a token: %w", login)}
	wantFailure(t, err, KindUnknownAuthority, "gitlab.corp.example", "gitlab.corp.example is signed by an unknown authority")
}

// TestNeedsSettingsChange: certificates, plain HTTP and a proxy's refusal
// are fixed by the configuration; a server away or stalled may come back.
func TestNeedsSettingsChange(t *testing.T) {
	settings := []Kind{KindUnknownAuthority, KindHostname, KindExpired, KindCertificate, KindPlainHTTP, KindProxyRefused}
	passing := []Kind{KindUnknown, KindDNS, KindRefused, KindConnectTimeout, KindReset, KindProxyUnreachable, KindStall}
	for _, k := range settings {
		if !(Failure{Kind: k}).NeedsSettingsChange() {
			t.Errorf("kind %d: want a settings change", k)
		}
	}
	for _, k := range passing {
		if (Failure{Kind: k}).NeedsSettingsChange() {
			t.Errorf("kind %d: may pass by itself, want no settings change", k)
		}
	}
}

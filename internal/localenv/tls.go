package localenv

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
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

// CAFileName is the environment's CA certificate (PEM) in its work dir.
const CAFileName = "localenv-ca.pem"

// serverNames are the names every server certificate holds: the loopback
// address and name the environment hands out, and the test names only the
// forward proxy resolves (see forwardproxy.go).
var serverNames = []string{"localhost", "*.test", "ecr.test", "ecr-api.test", "s3.test", "gitlab.test", "registry.test"}

// certAuthority is the environment's own CA, made at start: what a company's
// private CA is to a self-managed GitLab.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(name string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"imagesync localenv"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// leaf is a server certificate for names (an IP address or DNS names),
// valid from notBefore to notAfter.
func (ca *certAuthority) leaf(names []string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Errorf("crypto/rand: %w", err))
	}
	return n
}

// servingTLS is how the environment's servers speak TLS: one certificate
// from its CA for every endpoint. A nil *servingTLS serves plain HTTP.
type servingTLS struct {
	ca   *certAuthority
	cert tls.Certificate
}

func newServingTLS() (*servingTLS, error) {
	ca, err := newCA("imagesync localenv CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.leaf(append([]string{"127.0.0.1"}, serverNames...), time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	if err != nil {
		return nil, err
	}
	return &servingTLS{ca: ca, cert: cert}, nil
}

// protocols says whether a server offers HTTP/2 beside HTTP/1.1.
type protocols bool

const (
	http1Only protocols = false
	http2Too  protocols = true // where the real service offers h2: GitLab.com, S3
)

// serve starts srv on a free port of 127.0.0.1, its connections behind
// network (nil: loopback), and returns its URL under host ("127.0.0.1",
// "localhost"): https with s's certificate, or http when s is nil (plain
// HTTP, for debugging).
func (s *servingTLS) serve(srv *http.Server, host string, protos protocols, network *wan.Shaper) (string, error) {
	l, err := listenLocal()
	if err != nil {
		return "", err
	}
	l = network.Listen(l)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if s == nil {
		go func() { _ = srv.Serve(l) }()
		return "http://" + net.JoinHostPort(host, port), nil
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(bool(protos))
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return "https://" + net.JoinHostPort(host, port), nil
}

// writeCA writes the CA certificate into dir, and as certs.d/ca.crt, and
// returns its path.
func (s *servingTLS) writeCA(dir string) (string, error) {
	if s == nil {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "certs.d"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "certs.d", "ca.crt"), s.ca.pem, 0o600); err != nil {
		return "", err
	}
	path := filepath.Join(dir, CAFileName)
	return path, os.WriteFile(path, s.ca.pem, 0o600)
}

// clientTLS is a client configuration that trusts only the CA in caPEM (nil
// when there is none: plain HTTP). It never reads the system pool, so a test
// process can still point SSL_CERT_FILE at the CA after Start.
func clientTLS(caPEM []byte) *tls.Config {
	if len(caPEM) == 0 {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// makeCA makes the CA and the servers' certificate and writes the CA into
// the work dir; with plainHTTP it makes nothing and every server speaks
// plain HTTP.
func (e *Env) makeCA(plainHTTP bool) (err error) {
	if !plainHTTP {
		if e.serving, err = newServingTLS(); err != nil {
			return err
		}
		e.caPEM = e.serving.ca.pem
	}
	e.client = newClient(e.caPEM)
	e.CAFile, err = e.serving.writeCA(e.WorkDir)
	return err
}

// CertDir is a directory holding the CA as ca.crt, the layout of skopeo's
// --cert-dir and containers-certs.d; "" with plain HTTP.
func (e *Env) CertDir() string {
	if e.CAFile == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(e.CAFile), "certs.d")
}

// SkopeoTLSFlags are skopeo's flags for the environment's registries, with
// prefix "" (inspect), "src-" or "dest-" (copy, sync).
func (e *Env) SkopeoTLSFlags(prefix string) []string {
	if e.CAFile == "" {
		return []string{"--" + prefix + "tls-verify=false"}
	}
	return []string{"--" + prefix + "cert-dir=" + e.CertDir()}
}

// newProxy starts a proxy to target with guard in front (nil: none), served
// as the environment serves (TLS or not) and known by name under .test.
func (e *Env) newProxy(target string, guard guardFunc, protos protocols, name string) (*Proxy, error) {
	p, err := newGuardedProxy(target, guard, e.serving, protos, e.wan)
	if err != nil {
		return nil, err
	}
	p.names = &e.names
	e.names.add(p.Host, name)
	return p, nil
}

// HTTPClient is a client for the environment's endpoints: it trusts the
// environment's CA (and nothing else) and ignores HTTP(S)_PROXY.
func (e *Env) HTTPClient() *http.Client { return e.client }

func newClient(caPEM []byte) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     clientTLS(caPEM),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}}
}

// BadCert is what is wrong with the certificate ServeBadCert presents.
type BadCert int

const (
	CertUnknownCA BadCert = iota + 1 // issued by a CA no client trusts
	CertWrongName                    // from the environment's CA, for another host name
	CertExpired                      // from the environment's CA, expired yesterday
)

// ServeBadCert serves endpoint (one of the environment's URLs) again on a
// second listener whose certificate is bad in the way bad says, and returns
// that listener's URL; it stops with the environment.
func (e *Env) ServeBadCert(endpoint string, bad BadCert) (string, error) {
	if e.serving == nil {
		return "", errors.New("ServeBadCert needs an environment that serves HTTPS")
	}
	target, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	cert, err := e.badCert(bad)
	if err != nil {
		return "", err
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = r.In.Host },
		Transport: e.client.Transport,
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	u, err := (&servingTLS{ca: e.serving.ca, cert: cert}).serve(srv, "127.0.0.1", http1Only, nil)
	if err != nil {
		return "", err
	}
	e.extraMu.Lock()
	e.extraServers = append(e.extraServers, srv)
	e.extraMu.Unlock()
	return u, nil
}

func (e *Env) badCert(bad BadCert) (tls.Certificate, error) {
	now := time.Now()
	names := append([]string{"127.0.0.1"}, serverNames...)
	switch bad {
	case CertUnknownCA:
		other, err := newCA("an unknown CA")
		if err != nil {
			return tls.Certificate{}, err
		}
		return other.leaf(names, now.Add(-time.Hour), now.Add(24*time.Hour))
	case CertWrongName:
		return e.serving.ca.leaf([]string{"wrong-host.example.com"}, now.Add(-time.Hour), now.Add(24*time.Hour))
	case CertExpired:
		return e.serving.ca.leaf(names, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	}
	return tls.Certificate{}, fmt.Errorf("unknown certificate fault %d", bad)
}

// RegctlTLS is regctl's (and regsync's) host configuration for the
// environment's registries: "tls", and the CA as "regcert".
func (e *Env) RegctlTLS() map[string]string {
	if e.CAFile == "" {
		return map[string]string{"tls": "disabled"}
	}
	return map[string]string{"tls": "enabled", "regcert": string(e.caPEM)}
}

// CAEnvVars trust the environment's CA through variables alone, for a
// configuration without the CA attributes: AWS_CA_BUNDLE (the AWS SDK's) for
// ECR and S3, CI_SERVER_TLS_CA_FILE (what a GitLab runner sets for a GitLab
// with its own CA) for GitLab. Empty with plain HTTP.
func (e *Env) CAEnvVars() map[string]string {
	if e.CAFile == "" {
		return map[string]string{}
	}
	return map[string]string{"AWS_CA_BUNDLE": e.CAFile, "CI_SERVER_TLS_CA_FILE": e.CAFile}
}

// Package network builds the HTTP transports every client of the provider
// uses (the ECR API, the ECR registry and S3, the GitLab API and registry),
// so that each trusts the same CAs, goes through the same proxy and gives up
// on a connection that stops sending, and it says in words what went wrong
// when a connection fails.
package network

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultIdleTimeout is how long a connection may send nothing before the
// request is given up.
const DefaultIdleTimeout = 60 * time.Second

// Timeouts of a connection's set-up; a connection that takes longer fails
// with a message that says which step did not finish.
const (
	dialTimeout         = 30 * time.Second
	tlsHandshakeTimeout = 30 * time.Second
	// http2PingAfter is how long an HTTP/2 connection may be silent before a
	// ping checks it is still there.
	http2PingAfter = 30 * time.Second
)

// CAFile is a PEM file of CA certificates to trust beside the system's.
type CAFile struct {
	Path string
	// From names the attribute or environment variable that gave the path,
	// for the message when it cannot be read.
	From string
}

// Settings are the network settings of one side of the migration.
type Settings struct {
	// IdleTimeout ends a request that makes no progress for this long.
	IdleTimeout time.Duration
	// RootCAs is the system pool plus the side's CA files; nil is the
	// system pool alone (which honours SSL_CERT_FILE and SSL_CERT_DIR).
	RootCAs *x509.CertPool
}

// NewSettings loads the CA files into a copy of the system pool. Files with
// an empty path are skipped.
func NewSettings(idle time.Duration, files ...CAFile) (Settings, error) {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	s := Settings{IdleTimeout: idle}
	for _, f := range files {
		if f.Path == "" {
			continue
		}
		if s.RootCAs == nil {
			s.RootCAs = systemPool()
		}
		if err := addPEM(s.RootCAs, f); err != nil {
			return Settings{}, err
		}
	}
	return s, nil
}

// systemPool is a copy of the system's trusted CAs, or an empty pool where
// the system has none to offer.
func systemPool() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		return x509.NewCertPool()
	}
	return pool
}

// ErrCAFile reports a CA file that cannot be used.
var ErrCAFile = errors.New("cannot use the CA certificate file")

func addPEM(pool *x509.CertPool, f CAFile) error {
	pem, err := os.ReadFile(f.Path)
	if err != nil {
		return fmt.Errorf("%w %s (from %s): %w", ErrCAFile, f.Path, f.From, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%w %s (from %s): it holds no PEM certificate", ErrCAFile, f.Path, f.From)
	}
	return nil
}

// Apply sets t up: proxies from HTTPS_PROXY, HTTP_PROXY and NO_PROXY, the
// CAs, time limits on each step of a connection, HTTP/2 pings, and a proxy's
// refusal of a tunnel as a ProxyError.
func (s Settings) Apply(t *http.Transport) {
	t.Proxy = http.ProxyFromEnvironment
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = s.Idle()
	t.ForceAttemptHTTP2 = true
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.RootCAs != nil {
		t.TLSClientConfig.RootCAs = s.RootCAs
	}
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: http2PingAfter, PingTimeout: 15 * time.Second}
	t.OnProxyConnectResponse = refuseTunnel
}

// NewTransport is a transport with these settings whose requests also end
// when they stall (see stallTransport); opts adjust it further.
func (s Settings) NewTransport(opts ...func(*http.Transport)) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // the standard library's own type
	s.Apply(t)
	for _, opt := range opts {
		opt(t)
	}
	return &stallTransport{base: t, idle: s.Idle()}
}

// Idle is the idle timeout, DefaultIdleTimeout when unset.
func (s Settings) Idle() time.Duration {
	if s.IdleTimeout <= 0 {
		return DefaultIdleTimeout
	}
	return s.IdleTimeout
}

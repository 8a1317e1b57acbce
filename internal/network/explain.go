package network

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// Kind is what went wrong with a connection.
type Kind int

// The kinds of connection failure Explain tells apart.
const (
	KindUnknown Kind = iota
	KindDNS
	KindRefused
	KindConnectTimeout
	KindReset
	KindUnknownAuthority
	KindHostname
	KindExpired
	KindCertificate // another certificate problem
	KindPlainHTTP   // the server answered HTTPS with plain HTTP
	KindProxyRefused
	KindProxyUnreachable
	KindStall
)

// Failure is a connection failure in words: its kind, the host it concerns
// and one sentence saying what happened.
type Failure struct {
	Kind Kind
	Host string
	What string
	// Status is a proxy's refusal status (403, 407).
	Status int
}

// NeedsSettingsChange reports a failure no wait or retry gets past: the
// certificate cannot be trusted, the server speaks plain HTTP, or the proxy
// refuses the host. Only a change of the configuration (a CA, a host name,
// a URL, the proxy's policy) fixes it.
func (f Failure) NeedsSettingsChange() bool {
	switch f.Kind {
	case KindUnknownAuthority, KindHostname, KindExpired, KindCertificate, KindPlainHTTP, KindProxyRefused:
		return true
	}
	return false
}

// Explain recognises a connection failure anywhere in err's chain; ok is
// false when err is not one (a registry's answer, a cancelled context).
func Explain(err error) (f Failure, ok bool) {
	if err == nil {
		return Failure{}, false
	}
	host := hostOf(err)
	for _, explain := range []func(error, string) (Failure, bool){explainStall, explainProxy, explainCertificate, explainDial} {
		if f, ok := explain(err, host); ok {
			return f, true
		}
	}
	return Failure{}, false
}

func explainStall(err error, host string) (Failure, bool) {
	var stall *StallError
	if errors.As(err, &stall) {
		return Failure{Kind: KindStall, Host: stall.Host, What: stall.Error()}, true
	}
	if isHeaderTimeout(err) { // a transport's ResponseHeaderTimeout, e.g. the AWS SDK's
		return Failure{Kind: KindStall, Host: host, What: fmt.Sprintf("no answer from %s within the idle timeout while %s", host, phaseWaiting)}, true
	}
	var sdkStall *awshttp.ResponseTimeoutError // the AWS SDK's own idle timeout
	if errors.As(err, &sdkStall) {
		return Failure{Kind: KindStall, Host: host, What: fmt.Sprintf("no progress with %s for %s while reading the answer", host, sdkStall.TimeoutDur)}, true
	}
	return Failure{}, false
}

func explainProxy(err error, host string) (Failure, bool) {
	var refused *ProxyError
	if errors.As(err, &refused) {
		what := fmt.Sprintf("the proxy %s refused to open a tunnel to %s (%d)", refused.Proxy, refused.Target, refused.Status)
		return Failure{Kind: KindProxyRefused, Host: refused.Target, What: what, Status: refused.Status}, true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "proxyconnect" {
		return Failure{Kind: KindProxyUnreachable, Host: host, What: fmt.Sprintf("the proxy for %s could not be reached: %v", host, op.Err)}, true
	}
	return Failure{}, false
}

func explainCertificate(err error, host string) (Failure, bool) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return Failure{Kind: KindUnknownAuthority, Host: host, What: fmt.Sprintf("the certificate of %s is signed by an unknown authority%s", host, issuer(unknown.Cert))}, true
	case errors.As(err, &hostname):
		return Failure{Kind: KindHostname, Host: host, What: fmt.Sprintf("the certificate of %s is not valid for the name %s (%s)", host, hostname.Host, certNames(hostname.Certificate))}, true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return Failure{Kind: KindExpired, Host: host, What: fmt.Sprintf("the certificate of %s %s", host, validity(invalid.Cert))}, true
	case errors.As(err, &invalid):
		return Failure{Kind: KindCertificate, Host: host, What: fmt.Sprintf("the certificate of %s was not accepted: %v", host, invalid)}, true
	case errors.As(err, &verify):
		return Failure{Kind: KindCertificate, Host: host, What: fmt.Sprintf("the certificate of %s was not accepted: %v", host, verify.Err)}, true
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return Failure{Kind: KindPlainHTTP, Host: host, What: fmt.Sprintf("%s answered in plain HTTP where HTTPS was expected", host)}, true
	}
	return Failure{}, false
}

func issuer(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(" (issued by %q)", c.Issuer.String())
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no names"
	}
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "it names " + c.Subject.CommonName
	}
	return "it names " + strings.Join(names, ", ")
}

func validity(c *x509.Certificate) string {
	if c == nil {
		return "has expired or is not valid yet"
	}
	if time.Now().Before(c.NotBefore) {
		return "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	}
	return "expired on " + c.NotAfter.UTC().Format(time.RFC3339)
}

func explainDial(err error, host string) (Failure, bool) {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return Failure{Kind: KindDNS, Host: dns.Name, What: fmt.Sprintf("the host name %s could not be resolved (DNS: %s)", dns.Name, dns.Err)}, true
	}
	var op *net.OpError
	dialing := errors.As(err, &op) && op.Op == "dial"
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Failure{Kind: KindRefused, Host: host, What: fmt.Sprintf("%s refused the connection (nothing listens there, or a firewall rejects it)", host)}, true
	case dialing && op.Timeout():
		return Failure{Kind: KindConnectTimeout, Host: host, What: fmt.Sprintf("no answer from %s to the connection attempt within %s", host, dialTimeout)}, true
	case strings.Contains(err.Error(), "TLS handshake timeout"):
		return Failure{Kind: KindConnectTimeout, Host: host, What: fmt.Sprintf("the TLS handshake with %s did not finish within %s", host, tlsHandshakeTimeout)}, true
	case errors.Is(err, syscall.ECONNRESET):
		return Failure{Kind: KindReset, Host: host, What: fmt.Sprintf("the connection to %s was reset", host)}, true
	}
	var broken *BrokenError
	if errors.As(err, &broken) {
		return Failure{Kind: KindReset, Host: broken.Host, What: broken.Error()}, true
	}
	return Failure{}, false
}

// hostOf finds the host a failure concerns: from the URL of a failed
// request (never its query, where pre-signed URLs keep their secrets), else
// from the address of a failed connection.
func hostOf(err error) string {
	// The innermost request is the one that failed: a registry request
	// whose login failed wraps the request to the token service.
	if ue := innermostURLError(err); ue != nil {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return u.Host
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		return op.Addr.String()
	}
	return "the server"
}

// innermostURLError is the deepest *url.Error in err's tree, or nil.
func innermostURLError(err error) *url.Error {
	var found *url.Error
	if ue, ok := err.(*url.Error); ok { //nolint:errorlint // each level is looked at in turn
		found = ue
	}
	var children []error
	switch e := err.(type) { //nolint:errorlint // see above
	case interface{ Unwrap() error }:
		children = []error{e.Unwrap()}
	case interface{ Unwrap() []error }:
		children = e.Unwrap()
	}
	for _, c := range children {
		if c == nil {
			continue
		}
		if deeper := innermostURLError(c); deeper != nil {
			return deeper
		}
	}
	return found
}

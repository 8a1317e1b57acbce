package localenv

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tlsEnv is the part of an Env the network pieces need: a CA, its
// certificate served, a client trusting it, test names. No process runs.
func tlsEnv(t *testing.T) *Env {
	t.Helper()
	e := &Env{WorkDir: t.TempDir()}
	if err := e.makeCA(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// backend answers GET /blob with size bytes, /redirect with a redirect to
// itself, and reads and counts whatever is PUT.
func backend(t *testing.T, size int, received chan<- int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			w.Header().Set("Location", "https://"+r.Host+"/blob")
			w.WriteHeader(http.StatusTemporaryRedirect)
		case "/blob":
			w.Header().Set("Content-Length", strconv.Itoa(size))
			_, _ = w.Write([]byte(strings.Repeat("x", size)))
		default:
			n, _ := io.Copy(io.Discard, r.Body)
			if received != nil {
				received <- n
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Servers speak TLS with the environment's CA, HTTP/2 where offered and
// HTTP/1.1 elsewhere, and a client that does not trust the CA is refused.
func TestTLSAndProtocols(t *testing.T) {
	e := tlsEnv(t)
	be := backend(t, 100, nil)
	h2 := proxyTo(t, e, be.URL, http2Too, "h2.test")
	h1 := proxyTo(t, e, be.URL, http1Only, "h1.test")
	for _, c := range []struct {
		p     *Proxy
		proto string
	}{{h2, "HTTP/2.0"}, {h1, "HTTP/1.1"}} {
		resp, err := fetch(t, e.HTTPClient(), c.p.URL+"/blob")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.p.URL, "https://") || resp.Proto != c.proto || c.p.Stats().ByProto[c.proto] != 1 {
			t.Errorf("%s: %s, counted %v, want %s", c.p.URL, resp.Proto, c.p.Stats().ByProto, c.proto)
		}
	}
	_, err := fetch(t, &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(mustCA(t).pem)}}, h2.URL+"/blob")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client trusting another CA: %v, want an unknown authority", err)
	}
}

// proxyTo starts e's proxy to target and stops it before target's server
// (cleanups run last first), which ends its stalls.
func proxyTo(t *testing.T, e *Env, target string, protos protocols, name string) *Proxy {
	t.Helper()
	p, err := e.newProxy(target, nil, protos, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func mustCA(t *testing.T) *certAuthority {
	ca, err := newCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Each NetFault does what it says, over HTTP/2 and HTTP/1.1, and a client
// that gives up frees the stalled handler.
func TestNetFaults(t *testing.T) {
	const size = 256 << 10
	for _, protos := range []protocols{http2Too, http1Only} {
		e := tlsEnv(t)
		received := make(chan int64, 4)
		p := proxyTo(t, e, backend(t, size, received).URL, protos, "faulty.test")
		get := func(fault NetFault) (read int64, gotHeaders bool, err error, gaveUp bool) {
			p.SetNetFault(func(*http.Request) NetFault { return fault })
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/blob", nil)
			resp, err := e.HTTPClient().Do(req)
			if err != nil {
				return 0, false, err, ctx.Err() != nil
			}
			defer resp.Body.Close()
			read, err = io.Copy(io.Discard, resp.Body)
			return read, true, err, ctx.Err() != nil
		}
		if n, headers, err, gaveUp := get(NetStallHeaders); headers || err == nil || !gaveUp {
			t.Errorf("%v stall before headers: headers %v after %d bytes, err %v, client gave up %v", protos, headers, n, err, gaveUp)
		}
		if n, headers, err, gaveUp := get(NetStallBody); !headers || n != size/2 || err == nil || !gaveUp {
			t.Errorf("%v stall mid-body: %d of %d bytes, err %v, client gave up %v", protos, n, size, err, gaveUp)
		}
		if n, headers, err, gaveUp := get(NetCutBody); !headers || n != size/2 || err == nil || gaveUp {
			t.Errorf("%v cut: %d of %d bytes, err %v, client had to give up %v", protos, n, size, err, gaveUp)
		}
		if n, _, err, _ := get(NetServe); n != size || err != nil {
			t.Errorf("%v no fault: %d of %d bytes, %v", protos, n, size, err)
		}

		// An upload whose body the server stops reading: the client's writes
		// block after half of it (plus what buffers hold) until it gives up.
		const upload = 8 << 20
		p.SetNetFault(func(*http.Request) NetFault { return NetStallUpload })
		p.ResetStats()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, p.URL+"/upload", strings.NewReader(strings.Repeat("y", upload)))
		resp, err := e.HTTPClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		if err == nil || ctx.Err() == nil || p.Stats().BytesFromClient != upload/2 {
			t.Errorf("%v stalled upload: err %v, the proxy read %d of %d bytes, want half", protos, err, p.Stats().BytesFromClient, upload)
		}
		p.SetNetFault(nil)
	}
}

// The forward proxy opens CONNECT tunnels to test names, which it alone
// resolves, and forwards plain absolute-URI requests; it counts per host;
// answers by a test name name the other endpoints by theirs; a refusal is a
// 407 with a Proxy-Authenticate challenge.
func TestForwardProxy(t *testing.T) {
	e := tlsEnv(t)
	be := backend(t, 100, nil)
	p := proxyTo(t, e, be.URL, http2Too, "svc.test")
	fp, err := StartForwardProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fp.Close() })
	proxyURL, _ := url.Parse(fp.URL)
	tr := e.HTTPClient().Transport.(*http.Transport).Clone() //nolint:forcetypeassert // HTTPClient builds an *http.Transport
	tr.Proxy = http.ProxyURL(proxyURL)
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	named := e.names.url(p.URL)
	if !strings.HasPrefix(named, "https://svc.test:") {
		t.Fatalf("test name of %s: %s", p.URL, named)
	}
	resp, err := fetch(t, client, named+"/redirect")
	if err != nil {
		t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc != named+"/blob" {
		t.Errorf("Location %q, want the test name %s/blob", loc, named)
	}
	_, port, _ := net.SplitHostPort(be.Listener.Addr().String())
	if _, err = fetch(t, client, "http://plain.test:"+port+"/blob"); err != nil {
		t.Fatal(err)
	}
	if got := fp.Tunnels(); got["svc.test"] != 1 || got["plain.test"] != 1 || len(got) != 2 {
		t.Errorf("tunnels %v, want one to svc.test (kept alive for both requests) and one plain request to plain.test", got)
	}

	fp.Refuse(http.StatusProxyAuthRequired)
	tr.CloseIdleConnections()
	var refused *url.Error
	if _, err := fetch(t, client, named+"/blob"); !errors.As(err, &refused) || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Errorf("refused CONNECT: %v, want Proxy Authentication Required", err)
	}
}

// ServeBadCert's listeners fail verification in the three ways a client
// meets: unknown authority, a name that does not match, an expired
// certificate.
func TestServeBadCert(t *testing.T) {
	e := tlsEnv(t)
	p := proxyTo(t, e, backend(t, 100, nil).URL, http1Only, "good.test")
	for bad, check := range map[BadCert]func(error) bool{
		CertUnknownCA: func(err error) bool { var u x509.UnknownAuthorityError; return errors.As(err, &u) },
		CertWrongName: func(err error) bool { var h x509.HostnameError; return errors.As(err, &h) },
		CertExpired: func(err error) bool {
			var c x509.CertificateInvalidError
			return errors.As(err, &c) && c.Reason == x509.Expired
		},
	} {
		u, err := e.ServeBadCert(p.URL, bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fetch(t, e.HTTPClient(), u+"/blob"); !check(err) {
			t.Errorf("bad certificate %d: %v", bad, err)
		}
	}
	if _, err := fetch(t, e.HTTPClient(), p.URL+"/blob"); err != nil {
		t.Errorf("the good endpoint: %v", err)
	}
}

// fetched is a response whose body was read and closed.
type fetched struct {
	Proto  string
	Header http.Header
}

// fetch GETs u with the test's context and closes the body.
func fetch(t *testing.T, c *http.Client, u string) (fetched, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		return fetched{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return fetched{Proto: resp.Proto, Header: resp.Header}, nil
}

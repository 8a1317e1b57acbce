package localenv

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// ForwardProxy is an HTTP forward proxy of the kind company networks run:
// CONNECT tunnels for HTTPS, absolute-URI requests for plain HTTP. It counts
// tunnels per target host and can refuse every request (403, or 407 as a
// proxy that wants credentials does).
//
// Go's http.ProxyFromEnvironment never proxies 127.0.0.1 or localhost, so
// proxied clients must use the environment's test names (ecr.test,
// gitlab.test, ...; see Env.TestNamed): the proxy resolves any name ending
// in .test to 127.0.0.1 itself, and the client never does.
type ForwardProxy struct {
	URL string // "http://127.0.0.1:P", for HTTPS_PROXY and HTTP_PROXY

	srv     *http.Server
	dialer  net.Dialer
	plain   *httputil.ReverseProxy
	refusal atomic.Int64 // 0: serve; else the status every request gets

	mu      sync.Mutex
	tunnels map[string]int64 // host name (no port) -> CONNECTs and plain requests
}

// StartForwardProxy starts a forward proxy on a free 127.0.0.1 port.
func StartForwardProxy() (*ForwardProxy, error) {
	l, err := listenLocal()
	if err != nil {
		return nil, err
	}
	p := &ForwardProxy{URL: "http://" + l.Addr().String(), tunnels: map[string]int64{}, dialer: net.Dialer{Timeout: 5 * time.Second}}
	p.plain = &httputil.ReverseProxy{
		Rewrite:   func(*httputil.ProxyRequest) {}, // the absolute URI is the target already
		Transport: &http.Transport{Proxy: nil, DialContext: p.dial, DisableCompression: true},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// Refuse makes the proxy answer every request with status (403 Forbidden,
// 407 Proxy Authentication Required); 0 serves again.
func (p *ForwardProxy) Refuse(status int) { p.refusal.Store(int64(status)) }

// Tunnels counts, per target host name, the tunnels opened and the plain
// requests forwarded since start or ResetTunnels; refused ones count too.
func (p *ForwardProxy) Tunnels() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.tunnels)
}

// ResetTunnels zeroes Tunnels.
func (p *ForwardProxy) ResetTunnels() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tunnels = map[string]int64{}
}

// Close stops the proxy and every tunnel through it.
func (p *ForwardProxy) Close() error { return p.srv.Close() }

func (p *ForwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.Host
	}
	p.count(target)
	switch status := int(p.refusal.Load()); {
	case status == http.StatusProxyAuthRequired:
		w.Header().Set("Proxy-Authenticate", `Basic realm="corporate proxy"`)
		http.Error(w, "Proxy Authentication Required", status)
		return
	case status != 0:
		http.Error(w, http.StatusText(status), status)
		return
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "a forward proxy needs an absolute URI", http.StatusBadRequest)
		return
	}
	p.plain.ServeHTTP(w, r)
}

func (p *ForwardProxy) count(hostport string) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	p.mu.Lock()
	p.tunnels[host]++
	p.mu.Unlock()
}

// dial connects to addr, resolving test names to 127.0.0.1.
func (p *ForwardProxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && isTestName(host) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return p.dialer.DialContext(ctx, network, addr)
}

// tunnel answers a CONNECT with 200 and copies bytes both ways until either
// side closes.
func (p *ForwardProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := p.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, "cannot reach "+r.Host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	go func() {
		// Bytes the client sent after its CONNECT line may sit in buf already.
		_, _ = io.Copy(upstream, buf)
		closeWrite(upstream)
	}()
	_, _ = io.Copy(client, upstream)
	client.Close()
	upstream.Close()
}

// closeWrite half-closes a TCP connection so the other side sees EOF.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}

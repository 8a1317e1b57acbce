package localenv

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

// FaultFunc decides per request whether the proxy answers by itself with
// status and body instead of forwarding.
type FaultFunc func(r *http.Request) (status int, body string, fail bool)

// Stats are the proxy's counters since start or the last ResetStats.
type Stats struct {
	Requests int64
	ByMethod map[string]int64
	// ByAction counts AWS JSON-protocol requests by action (the operation
	// named in X-Amz-Target, e.g. "ListImages"): the ECR API proxy's calls.
	ByAction        map[string]int64
	BytesFromClient int64 // request bodies
	BytesToClient   int64 // response bodies
}

// counters are the numbers behind Stats, shared by the proxies and the S3
// stand-in.
type counters struct {
	requests atomic.Int64
	in, out  atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
	byAction map[string]int64
}

func (c *counters) request(method string) { c.requestAction(method, "") }

// requestAction counts a request; action is an AWS X-Amz-Target header
// ("AmazonEC2ContainerRegistry_V20150921.ListImages"), or "".
func (c *counters) requestAction(method, target string) {
	c.requests.Add(1)
	c.mu.Lock()
	if c.byMethod == nil {
		c.byMethod = map[string]int64{}
	}
	c.byMethod[method]++
	if target != "" {
		if c.byAction == nil {
			c.byAction = map[string]int64{}
		}
		c.byAction[awsAction(target)]++
	}
	c.mu.Unlock()
}

// awsAction is the operation an X-Amz-Target names: the part after the
// service prefix, or the whole header when it has none.
func awsAction(target string) string {
	if _, action, ok := strings.Cut(target, "."); ok {
		return action
	}
	return target
}

func (c *counters) stats() Stats {
	c.mu.Lock()
	m, a := maps.Clone(c.byMethod), maps.Clone(c.byAction)
	c.mu.Unlock()
	if m == nil {
		m = map[string]int64{}
	}
	if a == nil {
		a = map[string]int64{}
	}
	return Stats{Requests: c.requests.Load(), ByMethod: m, ByAction: a, BytesFromClient: c.in.Load(), BytesToClient: c.out.Load()}
}

func (c *counters) reset() {
	c.mu.Lock()
	c.byMethod = map[string]int64{}
	c.byAction = map[string]int64{}
	c.requests.Store(0)
	c.in.Store(0)
	c.out.Store(0)
	c.mu.Unlock()
}

// guardFunc is a layer between a proxy's fault hook and its registry, where
// the registry's rules live (see ecr_registry.go and fakegitlab.GitLab.ServeRegistryRules). It
// either answers the request itself and returns true, or returns false to
// let the request, which it may have changed, through to the registry.
type guardFunc func(w http.ResponseWriter, r *http.Request) (answered bool)

// Proxy is a streaming reverse proxy in front of one registry. It keeps the
// incoming Host header so distribution's absolute Location URLs point back at
// the proxy, and counts and optionally fails requests.
type Proxy struct {
	URL  string // "http://127.0.0.1:P"
	Host string // "127.0.0.1:P"

	backend *url.URL // the registry behind it
	srv     *http.Server
	rp      *httputil.ReverseProxy
	counters
	fault atomic.Pointer[FaultFunc]
	guard guardFunc
}

// NewProxy starts a proxy on a free 127.0.0.1 port forwarding to target.
func NewProxy(target string) (*Proxy, error) { return newGuardedProxy(target, nil, nil) }

// newGuardedProxy is NewProxy with a guard, set before the first request,
// and its clients' connections behind network (nil: loopback).
func newGuardedProxy(target string, guard guardFunc, network *wan.Shaper) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := listenLocal()
	if err != nil {
		return nil, err
	}
	l = network.Listen(l)
	p := &Proxy{Host: l.Addr().String(), backend: u, guard: guard}
	p.URL = "http://" + p.Host
	p.rp = &httputil.ReverseProxy{
		// Only the URL's scheme and host change, not Out.Host (as SetURL would):
		// the registry sees the proxy's host:port.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
		},
		Transport: &http.Transport{
			Proxy:               nil, // never an HTTP(S)_PROXY from the environment
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		FlushInterval: -1, // stream immediately, never buffer
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Client cancellations are normal in tests; stay quiet.
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requestAction(r.Method, r.Header.Get("X-Amz-Target"))
	if f := p.fault.Load(); f != nil {
		if status, body, fail := (*f)(r); fail {
			if r.Body != nil {
				n, _ := io.Copy(io.Discard, r.Body)
				p.in.Add(n)
			}
			if len(body) > 0 && body[0] == '{' {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(status)
			n, _ := io.WriteString(w, body)
			p.out.Add(int64(n))
			return
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingReader{rc: r.Body, n: &p.in}
	}
	cw := &countingWriter{ResponseWriter: w, n: []*atomic.Int64{&p.out}}
	if p.guard != nil && p.guard(cw, r) {
		return
	}
	p.rp.ServeHTTP(cw, r)
}

// SetFault installs f; nil clears it.
func (p *Proxy) SetFault(f func(r *http.Request) (status int, body string, fail bool)) {
	if f == nil {
		p.fault.Store(nil)
		return
	}
	ff := FaultFunc(f)
	p.fault.Store(&ff)
}

// Stats returns a snapshot of the counters. The ECR proxy's include the
// layer downloads ECR redirects to the S3 stand-in.
func (p *Proxy) Stats() Stats { return p.stats() }

// ResetStats zeroes the counters.
func (p *Proxy) ResetStats() { p.reset() }

// Close stops the proxy.
func (p *Proxy) Close() error { return shutdown(p.srv) }

// shutdown stops srv, waiting up to 2 s for requests in flight.
func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

type countingReader struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.rc.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

type countingWriter struct {
	http.ResponseWriter
	n []*atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	for _, counter := range c.n {
		counter.Add(int64(n))
	}
	return n, err
}

// Unwrap lets http.ResponseController (used by ReverseProxy) reach Flush etc.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

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
	ByAction map[string]int64
	// ByProto counts requests by protocol ("HTTP/1.1", "HTTP/2.0").
	ByProto         map[string]int64
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
	byProto  map[string]int64
}

// count counts a request by method, protocol and the AWS action its
// X-Amz-Target header names ("AmazonEC2ContainerRegistry_V20150921.ListImages"), if any.
func (c *counters) count(r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	c.requests.Add(1)
	c.mu.Lock()
	if c.byMethod == nil {
		c.byMethod, c.byProto = map[string]int64{}, map[string]int64{}
	}
	c.byMethod[r.Method]++
	c.byProto[r.Proto]++
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
	m, a, p := maps.Clone(c.byMethod), maps.Clone(c.byAction), maps.Clone(c.byProto)
	c.mu.Unlock()
	if m == nil {
		m = map[string]int64{}
	}
	if a == nil {
		a = map[string]int64{}
	}
	if p == nil {
		p = map[string]int64{}
	}
	return Stats{Requests: c.requests.Load(), ByMethod: m, ByAction: a, ByProto: p, BytesFromClient: c.in.Load(), BytesToClient: c.out.Load()}
}

func (c *counters) reset() {
	c.mu.Lock()
	c.byMethod = map[string]int64{}
	c.byAction = map[string]int64{}
	c.byProto = map[string]int64{}
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
	URL  string // "https://127.0.0.1:P" ("http://" with Options.PlainHTTP)
	Host string // "127.0.0.1:P"

	backend *url.URL // the registry behind it
	srv     *http.Server
	rp      *httputil.ReverseProxy
	counters
	fault     atomic.Pointer[FaultFunc]
	netFaults netFaults
	guard     guardFunc
	names     *testNames // answers to a request by a test name name hosts by theirs
	tap       atomic.Pointer[requestTap]
	done      chan struct{}
}

// NewProxy starts a plain-HTTP proxy on a free 127.0.0.1 port forwarding to
// target.
func NewProxy(target string) (*Proxy, error) {
	return newGuardedProxy(target, nil, nil, http1Only, nil)
}

// newGuardedProxy is NewProxy with a guard, set before the first request,
// served over TLS with s's certificate (plain HTTP when s is nil), its
// clients' connections behind network (nil: loopback).
func newGuardedProxy(target string, guard guardFunc, s *servingTLS, protos protocols, network *wan.Shaper) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &Proxy{backend: u, guard: guard, done: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		// Only the URL's scheme and host change, not Out.Host (as SetURL would):
		// the registry sees the proxy's host:port. X-Forwarded-Proto makes
		// distribution's absolute Location URLs https when the client came
		// over TLS.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			if pr.In.TLS != nil {
				pr.Out.Header.Set("X-Forwarded-Proto", "https")
			}
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
	if p.URL, err = s.serve(p.srv, "127.0.0.1", protos, network); err != nil {
		return nil, err
	}
	p.Host = hostOf(p.URL)
	return p, nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tap := p.tap.Load(); tap != nil {
		defer tap.begin(r)()
	}
	p.count(r)
	w = p.names.rename(w, r)
	if fault := p.netFaults.decide(r); fault != NetServe {
		w, r = applyNetFault(fault, w, r, p.done)
	}
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

// SetNetFault decides per request what happens to its connection (stalls,
// cuts), replacing every hook added before; nil serves every request.
func (p *Proxy) SetNetFault(f func(r *http.Request) NetFault) { p.netFaults.set(f) }

// AddNetFault adds a hook beside the others, for tests that run side by
// side: the first hook that returns a fault decides. remove takes it out.
func (p *Proxy) AddNetFault(f func(r *http.Request) NetFault) (remove func()) {
	return p.netFaults.add(f)
}

// Stats returns a snapshot of the counters. The ECR proxy's include the
// layer downloads ECR redirects to the S3 stand-in.
func (p *Proxy) Stats() Stats { return p.stats() }

// ResetStats zeroes the counters.
func (p *Proxy) ResetStats() { p.reset() }

// Close stops the proxy, ending its stalls first.
func (p *Proxy) Close() error {
	close(p.done)
	return shutdown(p.srv)
}

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

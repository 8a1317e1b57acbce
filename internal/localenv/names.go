package localenv

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// testNames are the environment's endpoints under names ending in .test
// (ecr.test:P for 127.0.0.1:P), which only the ForwardProxy resolves: Go's
// ProxyFromEnvironment never proxies a loopback address or localhost, so a
// proxied client must be given other names. A request that arrived by a
// test name is answered with the other endpoints by theirs too (redirects,
// token realms), so a client that came through the proxy stays on it.
type testNames struct {
	mu     sync.RWMutex
	byHost map[string]string // "127.0.0.1:P" or "localhost:P" -> "ecr.test:P"
}

// add names the endpoint at hostport (host:port) name (e.g. "ecr.test").
func (n *testNames) add(hostport, name string) {
	_, port, _ := net.SplitHostPort(hostport)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byHost == nil {
		n.byHost = map[string]string{}
	}
	n.byHost[hostport] = net.JoinHostPort(name, port)
}

// of is hostport's test name, or hostport itself when it has none.
func (n *testNames) of(hostport string) string {
	if n == nil {
		return hostport
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if name, ok := n.byHost[hostport]; ok {
		return name
	}
	return hostport
}

// url is rawURL with its host replaced by its test name.
func (n *testNames) url(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	u.Host = n.of(u.Host)
	return u.String()
}

// isTestName tells whether host (with or without a port) ends in .test.
func isTestName(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.HasSuffix(host, ".test")
}

// rename answers r, when it arrived by a test name, with every endpoint in
// Location and WWW-Authenticate by its test name.
func (n *testNames) rename(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if n == nil || !isTestName(r.Host) {
		return w
	}
	return &renamingWriter{ResponseWriter: w, names: n}
}

type renamingWriter struct {
	http.ResponseWriter
	names   *testNames
	renamed bool
}

func (rw *renamingWriter) WriteHeader(status int) {
	rw.renameHeaders()
	rw.ResponseWriter.WriteHeader(status)
}

func (rw *renamingWriter) Write(b []byte) (int, error) {
	rw.renameHeaders()
	return rw.ResponseWriter.Write(b)
}

func (rw *renamingWriter) renameHeaders() {
	if rw.renamed {
		return
	}
	rw.renamed = true
	h := rw.Header()
	rw.names.mu.RLock()
	defer rw.names.mu.RUnlock()
	for _, key := range []string{"Location", "Www-Authenticate"} {
		for i, v := range h[key] {
			for host, name := range rw.names.byHost {
				v = strings.ReplaceAll(v, "://"+host, "://"+name)
			}
			h[key][i] = v
		}
	}
}

// Unwrap lets http.ResponseController reach Flush.
func (rw *renamingWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

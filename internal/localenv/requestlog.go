package localenv

import (
	"net/http"
	"sync"
	"time"
)

// RequestLog records the requests the proxies serve, each with when it came
// and when its answer ended, so a benchmark can show where a run waits: which
// requests follow one another on a repository's way, and how many blob
// bodies flow at once.
type RequestLog struct {
	t0      time.Time
	mu      sync.Mutex
	entries []LoggedRequest
}

// LoggedRequest is one request as a proxy saw it; times count from the start
// of the log.
type LoggedRequest struct {
	Start, End time.Duration
	Endpoint   string // "ECR registry", "GitLab registry", "GitLab API", "ECR API"
	Proto      string // "HTTP/1.1", "HTTP/2.0"
	Method     string
	Path       string
}

// requestTap is a proxy's attachment to a log.
type requestTap struct {
	log      *RequestLog
	endpoint string
}

// LogRequests starts a log of every request to the two registries, the
// GitLab API and the ECR API; StopLogging ends it.
func (e *Env) LogRequests() *RequestLog {
	l := &RequestLog{t0: time.Now()}
	for endpoint, p := range e.loggedProxies() {
		p.tap.Store(&requestTap{log: l, endpoint: endpoint})
	}
	return l
}

// StopLogging detaches every proxy from its log.
func (e *Env) StopLogging() {
	for _, p := range e.loggedProxies() {
		p.tap.Store(nil)
	}
}

func (e *Env) loggedProxies() map[string]*Proxy {
	return map[string]*Proxy{"ECR registry": e.ECRProxy, "GitLab registry": e.GitLabProxy, "GitLab API": e.GitLabAPIProxy, "ECR API": e.ECRAPIProxy}
}

// Entries returns the requests logged so far, in the order they ended.
func (l *RequestLog) Entries() []LoggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LoggedRequest(nil), l.entries...)
}

// begin notes a request's start; the returned func records it once answered.
func (t *requestTap) begin(r *http.Request) func() {
	start := time.Since(t.log.t0)
	return func() {
		entry := LoggedRequest{Start: start, End: time.Since(t.log.t0), Endpoint: t.endpoint, Proto: r.Proto, Method: r.Method, Path: r.URL.Path}
		t.log.mu.Lock()
		t.log.entries = append(t.log.entries, entry)
		t.log.mu.Unlock()
	}
}

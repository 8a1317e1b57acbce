package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
)

// fakeGitLabRegistry is a registry with a token service: tokens are opaque
// counters, valid for ttl, and refuse PUTs of manifests named in protected.
type fakeGitLabRegistry struct {
	srv        *httptest.Server
	ttl        time.Duration
	tokens     atomic.Int32
	protected  string // a manifest reference whose PUT is always refused
	challenge  bool   // send WWW-Authenticate with the refusal
	loginOK    bool
	mu         sync.Mutex
	issued     map[string]time.Time
	scopes     []string
	puts       []string
	revokeNext atomic.Bool // refuse the next request's (valid) token once
}

func newFakeGitLabRegistry(t *testing.T) *fakeGitLabRegistry {
	f := &fakeGitLabRegistry{ttl: time.Minute, loginOK: true, issued: map[string]time.Time{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitLabRegistry) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/jwt/auth" {
		f.serveToken(w, r)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	at, ok := f.issued[tok]
	f.mu.Unlock()
	if !ok || time.Since(at) > f.ttl || f.revokeNext.CompareAndSwap(true, false) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/jwt/auth",service="container_registry"`, f.srv.URL))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPut {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.puts = append(f.puts, string(body))
		f.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/manifests/"+f.protected) {
			if f.challenge {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/jwt/auth",service="container_registry",error="insufficient_scope"`, f.srv.URL))
			}
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"tag is protected","detail":"v9"}]}`)
			return
		}
	}
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeGitLabRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	if _, pass, _ := r.BasicAuth(); pass != "glpat-secret" || !f.loginOK {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"HTTP Basic: Access denied"}]}`)
		return
	}
	tok := fmt.Sprintf("token-%d", f.tokens.Add(1))
	f.mu.Lock()
	f.issued[tok] = time.Now()
	f.scopes = append(f.scopes, strings.Join(r.URL.Query()["scope"], " "))
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": int(f.ttl.Seconds())})
}

func (f *fakeGitLabRegistry) transport() *registryTransport {
	u, _ := url.Parse(f.srv.URL)
	return &registryTransport{
		ecrBase:     http.DefaultTransport,
		gitlabBase:  http.DefaultTransport,
		gitlab:      newGitLabTokens(func(context.Context) string { return "root" }, "glpat-secret", http.DefaultTransport),
		gitlabHosts: map[string]bool{u.Host: true},
		ecrHosts:    map[string]bool{},
	}
}

// closedResponse is a response whose body was closed.
type closedResponse struct {
	StatusCode int
	Header     http.Header
}

// roundTrip sends req through rt and closes the answer's body.
func roundTrip(t *testing.T, rt http.RoundTripper, req *http.Request) closedResponse {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return closedResponse{StatusCode: resp.StatusCode, Header: resp.Header}
}

func (f *fakeGitLabRegistry) put(t *testing.T, rt http.RoundTripper, ref string) (closedResponse, *recorder) {
	t.Helper()
	rec := &recorder{}
	ctx := context.WithValue(context.Background(), recorderKey{}, rec)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.srv.URL+"/v2/group/project/api/manifests/"+ref, strings.NewReader(`{"schemaVersion":2}`))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(`{"schemaVersion":2}`))
	return roundTrip(t, rt, req), rec
}

func TestGitLabTokenPerRepositoryAndReused(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	rt := f.transport()
	for range 3 {
		if resp, _ := f.put(t, rt, "v1"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT answered %d", resp.StatusCode)
		}
	}
	if n := f.tokens.Load(); n != 1 {
		t.Errorf("%d tokens for three requests to one repository, want 1", n)
	}
	if got := f.scopes[0]; got != "repository:group/project/api:pull,push" {
		t.Errorf("token scope %q", got)
	}
}

func TestGitLabTokenRenewedWhenItLapses(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	f.ttl = time.Second
	rt := f.transport()
	f.put(t, rt, "v1")
	time.Sleep(1100 * time.Millisecond)
	if resp, _ := f.put(t, rt, "v1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after the token lapsed answered %d", resp.StatusCode)
	}
	if n := f.tokens.Load(); n != 2 {
		t.Errorf("%d tokens, want 2: a lapsed token is renewed before it is sent", n)
	}
}

func TestGitLabRevokedTokenRenewedOnceAndResent(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	rt := f.transport()
	f.put(t, rt, "v1")
	f.revokeNext.Store(true)
	resp, _ := f.put(t, rt, "v2")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with a revoked token answered %d, want it renewed and sent again", resp.StatusCode)
	}
	if n := f.tokens.Load(); n != 2 {
		t.Errorf("%d tokens, want 2", n)
	}
	if last := f.puts[len(f.puts)-1]; last != `{"schemaVersion":2}` {
		t.Errorf("the resent manifest body was %q", last)
	}
}

func TestGitLabProtectedTagRefusedWithOneRenewal(t *testing.T) {
	for _, challenge := range []bool{false, true} {
		t.Run(fmt.Sprintf("challenge=%v", challenge), func(t *testing.T) {
			f := newFakeGitLabRegistry(t)
			f.protected, f.challenge = "v9", challenge
			rt := f.transport()
			f.put(t, rt, "v1")
			for range 3 {
				resp, rec := f.put(t, rt, "v9")
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("protected tag answered %d", resp.StatusCode)
				}
				if resp.Header.Get("WWW-Authenticate") != "" {
					t.Error("the final refusal still carries a challenge: regclient would start a login of its own")
				}
				if rec.last == nil || rec.last.Code != "DENIED" || rec.last.Message != "tag is protected" || rec.last.Side != SideGitLab {
					t.Errorf("recorded answer %+v, want GitLab's DENIED \"tag is protected\"", rec.last)
				}
			}
			if n := f.tokens.Load(); n != 2 {
				t.Errorf("%d tokens for three refusals, want 2: one renewal per repository", n)
			}
			if resp, _ := f.put(t, rt, "v2"); resp.StatusCode != http.StatusCreated {
				t.Errorf("another tag of the repository answered %d after the refusals", resp.StatusCode)
			}
		})
	}
}

func TestGitLabRefusedLoginAskedOnce(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	f.loginOK = false
	rt := f.transport()
	for range 3 {
		resp, rec := f.put(t, rt, "v1")
		if resp.StatusCode != http.StatusUnauthorized || rec.last == nil || !strings.Contains(rec.last.Message, "GitLab refused the registry login") {
			t.Fatalf("answer %d, recorded %+v", resp.StatusCode, rec.last)
		}
	}
	if n := f.tokens.Load(); n != 0 {
		t.Fatalf("tokens issued: %d", n)
	}
}

// TestGitLabLoginPingRateLimited: a 429 to the ping that finds the token
// service is the request's own answer, Retry-After included (regclient waits
// and retries it), not a refused login; the next request logs in.
func TestGitLabLoginPingRateLimited(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	var pings atomic.Int32
	registry := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" && pings.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}`)
			return
		}
		registry.ServeHTTP(w, r)
	})
	rt := f.transport()
	resp, rec := f.put(t, rt, "v1")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" || rec.last == nil || rec.last.Code != "TOOMANYREQUESTS" {
		t.Fatalf("answer %d Retry-After %q, recorded %+v; want GitLab's 429 as it was sent", resp.StatusCode, resp.Header.Get("Retry-After"), rec.last)
	}
	if resp, _ := f.put(t, rt, "v1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the request after the 429 answered %d", resp.StatusCode)
	}
}

// TestGitLabLoginPingOncePerHost: the first requests of a plan go to many
// repositories at once; one GET /v2/ finds the token service for them all.
func TestGitLabLoginPingOncePerHost(t *testing.T) {
	f := newFakeGitLabRegistry(t)
	var pings atomic.Int32
	registry := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			time.Sleep(20 * time.Millisecond) // a round trip, while the others start
		}
		registry.ServeHTTP(w, r)
	})
	rt := f.transport()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, fmt.Sprintf("%s/v2/group/project/app%d/manifests/v1", f.srv.URL, i), nil)
			if resp, err := rt.RoundTrip(req); err == nil {
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := pings.Load(); n != 1 {
		t.Errorf("%d GET /v2/ for ten repositories of one registry, want 1", n)
	}
}

func TestScopesOfMount(t *testing.T) {
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://r/v2/g/p/a/blobs/uploads/?mount=sha256:1&from=g/p/b", nil)
	got := strings.Join(scopesOf(req), " ")
	if got != "repository:g/p/a:pull,push repository:g/p/b:pull" {
		t.Errorf("scopes %q", got)
	}
	if s := scopesOf(httptest.NewRequestWithContext(t.Context(), http.MethodGet, "http://r/v2/", nil)); s != nil {
		t.Errorf("ping scopes %v", s)
	}
}

// fakeCredentials issues numbered ECR passwords.
type fakeCredentials struct {
	n       atomic.Int32
	current atomic.Value
}

func (f *fakeCredentials) Credential(context.Context) (ecr.Credential, error) {
	if c, ok := f.current.Load().(ecr.Credential); ok {
		return c, nil
	}
	return f.issue(), nil
}

func (f *fakeCredentials) Renew(_ context.Context, refused ecr.Credential) (ecr.Credential, error) {
	if c, _ := f.current.Load().(ecr.Credential); c.Password != refused.Password {
		return c, nil
	}
	return f.issue(), nil
}

func (f *fakeCredentials) issue() ecr.Credential {
	c := ecr.Credential{User: "AWS", Password: fmt.Sprintf("pw-%d", f.n.Add(1))}
	f.current.Store(c)
	return c
}

func TestECRExpiredTokenRenewedOnce(t *testing.T) {
	var valid atomic.Value
	valid.Store("pw-2")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, _ := r.BasicAuth(); pass != valid.Load() {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}`)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	creds := &fakeCredentials{}
	rt := &registryTransport{ecrBase: http.DefaultTransport, gitlabBase: http.DefaultTransport, ecr: &ecrLogin{creds: creds}, ecrHosts: map[string]bool{u.Host: true}, gitlabHosts: map[string]bool{}}
	get := func() (closedResponse, *recorder) {
		rec := &recorder{}
		req, _ := http.NewRequestWithContext(context.WithValue(t.Context(), recorderKey{}, rec), http.MethodGet, srv.URL+"/v2/team/api/manifests/v1", nil)
		return roundTrip(t, rt, req), rec
	}
	if resp, _ := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("an expired ECR token was not renewed: %d", resp.StatusCode)
	}
	// The renewed token is refused too, right away: that refusal is final.
	valid.Store("nothing works")
	resp, rec := get()
	if resp.StatusCode != http.StatusForbidden || rec.last == nil || rec.last.Side != SideECR || rec.last.Code != "DENIED" {
		t.Fatalf("a refusal that persists: %d, recorded %+v", resp.StatusCode, rec.last)
	}
	if n := creds.n.Load(); n != 2 {
		t.Errorf("%d ECR tokens, want 2: the replacement of a refused token is not renewed again", n)
	}
}

func TestRetryAfterDateBecomesSeconds(t *testing.T) {
	resp := &http.Response{Header: http.Header{"Retry-After": {time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)}}}
	normalizeRetryAfter(resp)
	if got := resp.Header.Get("Retry-After"); got != "3" && got != "2" {
		t.Errorf("Retry-After %q, want about 3 seconds", got)
	}
	resp.Header.Set("Retry-After", "7")
	normalizeRetryAfter(resp)
	if got := resp.Header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After seconds changed to %q", got)
	}
}

func TestDecodeErrorBody(t *testing.T) {
	tests := []struct{ body, code, msg, detail string }{
		{`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":null}]}`, "DENIED", "requested access to the resource is denied", ""},
		{`<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`, "SlowDown", "Please reduce your request rate.", ""},
		{`{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down","detail":{"limit":5}}]}`, "TOOMANYREQUESTS", "slow down", `{"limit":5}`},
		{"plain text", "", "plain text", ""},
	}
	for _, tt := range tests {
		code, msg, detail := decodeErrorBody([]byte(tt.body))
		if code != tt.code || msg != tt.msg || detail != tt.detail {
			t.Errorf("%s: got %q %q %q", tt.body, code, msg, detail)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	answer := func(side Side, status int, code string) error {
		return &callError{answer: &RegistryError{Side: side, Status: status, Code: code}, err: errors.New("regclient's error")}
	}
	tests := []struct {
		name      string
		err       error
		transient bool
	}{
		{"429 after regclient's retries", answer(SideGitLab, 429, "TOOMANYREQUESTS"), true},
		{"500", answer(SideGitLab, 500, ""), true},
		{"S3 slow down", answer(SideECR, 503, "SlowDown"), true},
		{"S3 pre-signed URL lapsed", answer(SideECR, 403, "AccessDenied"), true},
		{"ECR token refused twice", answer(SideECR, 403, "DENIED"), false},
		{"protected tag", answer(SideGitLab, 401, "DENIED"), false},
		{"not found", answer(SideGitLab, 404, "MANIFEST_UNKNOWN"), false},
		{"broken stream", transferError{io.ErrUnexpectedEOF}, true},
		{"blob upload refused", transferError{answer(SideGitLab, 403, "DENIED")}, false},
		{"blob upload with a lapsed token", transferError{answer(SideGitLab, 401, "UNAUTHORIZED")}, true},
		{"cancelled", context.Canceled, false},
	}
	for _, tt := range tests {
		if got := isTransient(tt.err); got != tt.transient {
			t.Errorf("%s: isTransient = %v, want %v", tt.name, got, tt.transient)
		}
	}
}

// A registry that asks for HTTP Basic (a plain registry in front of
// GitLab's API) gets the user and token on every request, no token service.
func TestGitLabBasicChallenge(t *testing.T) {
	var unauthorized atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "root" || pass != "glpat-secret" {
			unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	f := &fakeGitLabRegistry{srv: srv}
	rt := f.transport()
	for range 2 {
		if resp, _ := f.put(t, rt, "v1"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT answered %d", resp.StatusCode)
		}
	}
	if n := unauthorized.Load(); n != 1 {
		t.Errorf("%d requests without credentials, want only the ping", n)
	}
}

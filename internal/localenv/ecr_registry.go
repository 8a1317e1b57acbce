package localenv

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ecrTokenLifetime is how long a token from GetAuthorizationToken lasts.
const ecrTokenLifetime = 12 * time.Hour

// ECR's answers, word for word.
const (
	ecrExpiredBody = `{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}`
	ecrChallenge   = `Basic realm="https://%s/",service="ecr.amazonaws.com"`
)

// ecrTokens are the registry passwords GetAuthorizationToken handed out: a
// fresh one per call, each with its own expiry, as ECR issues them.
type ecrTokens struct {
	ttl      atomic.Int64 // nanoseconds
	requests atomic.Int64

	mu       sync.Mutex
	sessions map[string]ecrSession // password -> session
}

type ecrSession struct {
	caller  string // IAM user the token was issued to
	expires time.Time
}

func newECRTokens() *ecrTokens {
	t := &ecrTokens{sessions: map[string]ecrSession{}}
	t.ttl.Store(int64(ecrTokenLifetime))
	return t
}

// issue makes a password shaped like ECR's: base64 of a JSON envelope around
// an encrypted payload, some 2 KB long.
func (t *ecrTokens) issue(caller string, now time.Time) (string, time.Time) {
	exp := now.Add(time.Duration(t.ttl.Load()))
	envelope, _ := json.Marshal(map[string]any{
		"payload": randomBase64(1024), "datakey": randomBase64(256),
		"version": "2", "type": "DATA_KEY", "expiration": exp.Unix(),
	})
	pass := base64.StdEncoding.EncodeToString(envelope)
	t.mu.Lock()
	t.sessions[pass] = ecrSession{caller: caller, expires: exp}
	t.mu.Unlock()
	return pass, exp
}

// session finds a password's session; live is false when it is unknown or
// has expired.
func (t *ecrTokens) session(pass string, now time.Time) (s ecrSession, live bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sessions[pass]
	return s, ok && now.Before(s.expires)
}

func (t *ecrTokens) expireAll(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, s := range t.sessions {
		s.expires = now
		t.sessions[p] = s
	}
}

var credentialKey = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)

// rewriteAuthorizationToken replaces moto's token (the same every call, and
// expiring in 2015) with a fresh session that expires as ECR's do. callerOf
// names the IAM user of an access key.
func (t *ecrTokens) rewriteAuthorizationToken(resp *http.Response, callerOf func(accessKey string) string) error {
	if !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
		return nil
	}
	t.requests.Add(1)
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var out struct {
		AuthorizationData []map[string]any `json:"authorizationData"`
	}
	return rewriteJSON(resp, &out, func() error {
		caller := ""
		if m := credentialKey.FindStringSubmatch(resp.Request.Header.Get("Authorization")); m != nil {
			caller = callerOf(m[1])
		}
		for _, d := range out.AuthorizationData {
			pass, exp := t.issue(caller, time.Now())
			d["authorizationToken"] = base64.StdEncoding.EncodeToString([]byte("AWS:" + pass))
			d["expiresAt"] = float64(exp.UnixMilli()) / 1000
		}
		return nil
	})
}

// ecrRegistry is the guard of the ECR registry proxy: ECR's authentication
// in front of the htpasswd registry, its 307 to S3 for layer downloads, and
// the read-only IAM policy for every token GetAuthorizationToken issued.
type ecrRegistry struct {
	name, region, account string
	password              string // the environment's own credential, which may write
	tokens                *ecrTokens
	pulls                 *ecrPulls
	s3                    *S3
	backend               *url.URL
	client                *http.Client
	writeAttempts         atomic.Int64
}

var ecrBlobPath = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)

func (g *ecrRegistry) serve(w http.ResponseWriter, r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(ecrChallenge, g.name))
		writeText(w, http.StatusUnauthorized, "text/plain; charset=utf-8", "Not Authorized\n")
		return true
	}
	own := user == "AWS" && subtle.ConstantTimeCompare([]byte(pass), []byte(g.password)) == 1
	if !own {
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if write {
			g.writeAttempts.Add(1)
		}
		s, live := g.tokens.session(pass, time.Now())
		switch {
		case user != "AWS" || !live:
			writeText(w, http.StatusForbidden, "application/json; charset=utf-8", ecrExpiredBody)
			return true
		case write:
			g.denyWrite(w, r, s.caller)
			return true
		}
		r.SetBasicAuth("AWS", g.password)
		g.pulls.mark(r)
	}
	if m := ecrReferrersPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		g.serveReferrers(w, r, m[1], m[2])
		return true
	}
	if m := ecrBlobPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet && g.blobExists(r.Context(), r.URL.Path) {
		w.Header().Set("Location", g.s3.presign(m[1], m[2], time.Now(), isTestName(r.Host)))
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return true
	}
	return false
}

// denyWrite answers as ECR does when IAM refuses the action a write needs.
func (g *ecrRegistry) denyWrite(w http.ResponseWriter, r *http.Request, caller string) {
	action := "ecr:PutImage"
	switch {
	case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads"):
		action = "ecr:InitiateLayerUpload"
	case r.Method == http.MethodPatch:
		action = "ecr:UploadLayerPart"
	case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads"):
		action = "ecr:CompleteLayerUpload"
	case r.Method == http.MethodDelete:
		action = "ecr:BatchDeleteImage"
	}
	repo := strings.TrimPrefix(r.URL.Path, "/v2/")
	for _, sep := range []string{"/blobs/", "/manifests/"} {
		repo, _, _ = strings.Cut(repo, sep)
	}
	if caller == "" {
		caller = ReadOnlyUser
	}
	msg := fmt.Sprintf("User: arn:aws:iam::%s:user/%s is not authorized to perform: %s on resource: arn:aws:ecr:%s:%s:repository/%s because no identity-based policy allows the %s action",
		g.account, caller, action, g.region, g.account, repo, action)
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": "DENIED", "message": msg}}})
	writeText(w, http.StatusForbidden, "application/json; charset=utf-8", string(body))
}

// blobExists asks the registry directly: a layer it does not hold is its
// own 404, not a redirect.
func (g *ecrRegistry) blobExists(ctx context.Context, path string) bool {
	u := *g.backend
	u.Path = path
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return false
	}
	req.SetBasicAuth("AWS", g.password)
	resp, err := g.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func writeText(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// startECRProxy puts ECR's rules and the S3 stand-in in front of the
// registry at backend.
func (e *Env) startECRProxy(backend string) error {
	u, err := url.Parse(backend)
	if err != nil {
		return err
	}
	if e.S3, err = newS3(e.Region, e.AccountID, u, e.ECRPassword, e.serving, &e.names, e.wan); err != nil {
		return err
	}
	e.ecr = &ecrRegistry{
		name: e.ECRRegistryName, region: e.Region, account: e.AccountID, password: e.ECRPassword,
		tokens: e.ecrTokens, pulls: e.ecrPulls, s3: e.S3, backend: u,
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}},
	}
	// HTTP/1.1 only: the engine meets both protocols, h2 at S3 and GitLab.
	if e.ECRProxy, err = e.newProxy(backend, e.ecr.serve, http1Only, "ecr.test"); err != nil {
		return err
	}
	e.ECRProxy.rp.ModifyResponse = func(resp *http.Response) error {
		if err := e.ecrPulls.record(resp); err != nil {
			return err
		}
		return e.recordDigestPush(resp)
	}
	e.S3.parent.Store(&e.ECRProxy.counters)
	e.ECRRegistryEndpoint = e.ECRProxy.URL
	return nil
}

// ExpireECRTokens makes every registry token GetAuthorizationToken has
// issued so far lapse: the ECR registry answers them 403, as ECR answers an
// expired token. Tokens issued later work.
func (e *Env) ExpireECRTokens() {
	if e.ecrTokens != nil {
		e.ecrTokens.expireAll(time.Now())
	}
}

// SetECRTokenTTL sets the lifetime of the ECR registry tokens issued from now
// on (ECR's is 12 hours, the default).
func (e *Env) SetECRTokenTTL(d time.Duration) {
	if e.ecrTokens != nil {
		e.ecrTokens.ttl.Store(int64(d))
	}
}

// ECRTokenRequests counts GetAuthorizationToken calls (granted or not).
func (e *Env) ECRTokenRequests() int {
	if e.ecrTokens == nil {
		return 0
	}
	return int(e.ecrTokens.requests.Load())
}

// IssuedECRPasswords lists every registry password GetAuthorizationToken has
// handed out, for tests that look for them where they must not be (logs).
func (e *Env) IssuedECRPasswords() []string {
	if e.ecrTokens == nil {
		return nil
	}
	e.ecrTokens.mu.Lock()
	defer e.ecrTokens.mu.Unlock()
	return slices.Collect(maps.Keys(e.ecrTokens.sessions))
}

// ResetECRTokenRequests zeroes ECRTokenRequests.
func (e *Env) ResetECRTokenRequests() {
	if e.ecrTokens != nil {
		e.ecrTokens.requests.Store(0)
	}
}

// ECRWriteAttempts counts the requests other than GET and HEAD that reached
// the ECR registry with a token from GetAuthorizationToken. The read-only
// policy forbids them, so ECR refused each with 403; New fails the test when
// any happened.
func (e *Env) ECRWriteAttempts() int {
	if e.ecr == nil {
		return 0
	}
	return int(e.ecr.writeAttempts.Load())
}

// ResetECRWriteAttempts zeroes ECRWriteAttempts, for a test that provokes a
// refused write on purpose.
func (e *Env) ResetECRWriteAttempts() {
	if e.ecr != nil {
		e.ecr.writeAttempts.Store(0)
	}
}

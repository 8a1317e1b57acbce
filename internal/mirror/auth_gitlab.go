package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// gitlabTokens logs in to GitLab's registry: one bearer token per repository
// (so a token never grows with the estate), from the realm the registry names
// in its challenge (GitLab's /jwt/auth), with the GitLab user and token.
type gitlabTokens struct {
	user     func(ctx context.Context) string // asked once, when first needed
	password string
	client   *http.Client // for /jwt/auth, outside this transport

	userOnce sync.Once
	userName string
	flight   singleflight.Group

	mu       sync.Mutex
	realms   map[string]*challenge // registry host -> its token service; nil: no login needed
	tokens   map[string]*bearer    // host + scopes -> token
	loginErr map[string]error      // realm -> why GitLab refused the login, asked once
}

// challenge is a registry's challenge: where to get a token, or (basic) that
// the user and token go with every request, as a plain registry asks.
type challenge struct {
	realm, service string
	basic          bool
}

// bearer is one registry token.
type bearer struct {
	value   string
	renewAt time.Time
	// replacedRefused: this token replaced one the registry refused; if it is
	// refused too the refusal stands (protected tags refuse every token).
	replacedRefused bool
	// basic: no token; the user and token go as HTTP Basic.
	basic bool
}

func newGitLabTokens(user func(context.Context) string, password string, base http.RoundTripper) *gitlabTokens {
	return &gitlabTokens{
		user: user, password: password,
		client:   &http.Client{Transport: base, Timeout: time.Minute},
		realms:   map[string]*challenge{},
		tokens:   map[string]*bearer{},
		loginErr: map[string]error{},
	}
}

func (g *gitlabTokens) roundTrip(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	req, canResend := withReplayableBody(req)
	scopes := scopesOf(req)
	key := req.URL.Host + " " + strings.Join(scopes, " ")
	tok, err := g.token(req.Context(), base, req.URL, key, scopes, nil)
	var busy *registryBusy
	switch {
	case errors.As(err, &busy):
		return answer(req, busy.status, busy.header.Clone(), busy.body), nil
	case isConnectionFailure(err):
		return nil, fmt.Errorf("getting a GitLab registry token: %w", err)
	case err != nil:
		return loginFailure(req, err), nil
	}
	resp, err := g.send(base, req, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || tok == nil {
		return resp, err
	}
	if !tok.replacedRefused {
		// The token lapsed early or was revoked, or the rules it carries
		// changed: one new token, and the request once more.
		renewed, rerr := g.token(req.Context(), base, req.URL, key, scopes, tok)
		if rerr == nil && canResend {
			discard(resp)
			resp, err = g.send(base, again(req), renewed)
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				return resp, err
			}
		}
	}
	// Refused for good (a protected tag, a missing role): regclient must not
	// start a login of its own, which would only ask anonymously.
	resp.Header.Del("WWW-Authenticate")
	return resp, nil
}

func (g *gitlabTokens) send(base http.RoundTripper, req *http.Request, tok *bearer) (*http.Response, error) {
	if tok == nil {
		return base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	if tok.basic {
		r.SetBasicAuth(g.username(req.Context()), g.password)
	} else {
		r.Header.Set("Authorization", "Bearer "+tok.value)
	}
	return base.RoundTrip(r)
}

// username is the user name for the token service, asked once.
func (g *gitlabTokens) username(ctx context.Context) string {
	g.userOnce.Do(func() {
		g.userName = "imagesync"
		if g.user != nil {
			g.userName = g.user(ctx)
		}
	})
	return g.userName
}

// repositoryPath finds the repository in a registry API path such as
// /v2/group/project/api/manifests/v1, or GitLab's
// /gitlab/v1/repositories/group/project/api/tags/list/.
var repositoryPath = regexp.MustCompile(`^(?:/v2|/gitlab/v1/repositories)/(.+)/(?:manifests|blobs|tags|referrers)(?:/|$)`)

// scopesOf is what a request needs: pull and push on its repository (one
// token serves reads and writes), and pull on the source of a blob mount.
func scopesOf(req *http.Request) []string {
	m := repositoryPath.FindStringSubmatch(req.URL.Path)
	if m == nil {
		return nil
	}
	scopes := []string{"repository:" + m[1] + ":pull,push"}
	if from := req.URL.Query().Get("from"); from != "" && req.Method == http.MethodPost {
		scopes = append(scopes, "repository:"+from+":pull")
	}
	return scopes
}

// token returns a valid token for key, asking for a new one when there is
// none, it is near its end, or it is refused (refused != nil). Concurrent
// requests for the same key share one request to GitLab.
func (g *gitlabTokens) token(ctx context.Context, base http.RoundTripper, u *url.URL, key string, scopes []string, refused *bearer) (*bearer, error) {
	g.mu.Lock()
	cur := g.tokens[key]
	g.mu.Unlock()
	if cur != nil && cur != refused && time.Now().Before(cur.renewAt) {
		return cur, nil
	}
	v, err, _ := g.flight.Do(key, func() (any, error) {
		g.mu.Lock()
		cur := g.tokens[key]
		g.mu.Unlock()
		if cur != nil && cur != refused && time.Now().Before(cur.renewAt) {
			return cur, nil // renewed by another request meanwhile
		}
		// The user name (a GitLab API call, once) is asked while the
		// registry names its token service: one round trip, not two.
		go g.username(ctx)
		ch, err := g.challenge(ctx, base, u)
		if err != nil || ch == nil {
			return (*bearer)(nil), err
		}
		if ch.basic {
			return &bearer{basic: true, replacedRefused: true, renewAt: time.Now().Add(24 * time.Hour)}, nil
		}
		tok, err := g.fetch(ctx, ch, scopes)
		if err != nil {
			return nil, err
		}
		tok.replacedRefused = refused != nil
		g.mu.Lock()
		g.tokens[key] = tok
		g.mu.Unlock()
		return tok, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*bearer), nil //nolint:forcetypeassert // only *bearer is returned above
}

// challenge asks the registry once where its token service is (GET /v2/);
// the first requests of a plan, to many repositories at once, share the ask.
func (g *gitlabTokens) challenge(ctx context.Context, base http.RoundTripper, u *url.URL) (*challenge, error) {
	g.mu.Lock()
	ch, known := g.realms[u.Host]
	g.mu.Unlock()
	if known {
		return ch, nil
	}
	v, err, _ := g.flight.Do("GET /v2/ "+u.Host, func() (any, error) { return g.ping(ctx, base, u) })
	if err != nil {
		return nil, err
	}
	return v.(*challenge), nil //nolint:forcetypeassert // only *challenge is returned by ping
}

// ping sends GET /v2/ and remembers the token service it names.
func (g *gitlabTokens) ping(ctx context.Context, base http.RoundTripper, u *url.URL) (*challenge, error) {
	var ch *challenge
	ping, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/v2/"}).String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := base.RoundTrip(ping)
	if err != nil {
		return nil, fmt.Errorf("asking GitLab's registry %s for its token service: %w", u.Host, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	discard(resp)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		ch = parseChallenge(resp.Header.Values("WWW-Authenticate"))
		if ch == nil {
			return nil, fmt.Errorf("GitLab's registry %s asks for a login but names neither a Bearer token service nor Basic", u.Host)
		}
	case resp.StatusCode/100 == 2:
		ch = nil // an open registry
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, &registryBusy{status: resp.StatusCode, header: resp.Header, body: body}
	default:
		return nil, fmt.Errorf("GitLab's registry %s answered %s to GET /v2/", u.Host, resp.Status)
	}
	g.mu.Lock()
	g.realms[u.Host] = ch
	g.mu.Unlock()
	return ch, nil
}

// registryBusy is the registry answering the login ping 429 or 5xx: not a
// refusal of the login but of the moment. The request gets that answer as
// its own, so regclient waits (Retry-After) and retries it as it would have
// had the request itself drawn it, and the diagnostic says what happened.
type registryBusy struct {
	status int
	header http.Header
	body   []byte
}

func (b *registryBusy) Error() string {
	return fmt.Sprintf("GitLab's registry answered %d %s to GET /v2/", b.status, http.StatusText(b.status))
}

var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

func parseChallenge(headers []string) *challenge {
	var basic *challenge
	for _, h := range headers {
		scheme, params, _ := strings.Cut(strings.TrimSpace(h), " ")
		if strings.EqualFold(scheme, "Basic") {
			basic = &challenge{basic: true}
		}
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		ch := &challenge{}
		for _, m := range challengeParam.FindAllStringSubmatch(params, -1) {
			switch strings.ToLower(m[1]) {
			case "realm":
				ch.realm = m[2]
			case "service":
				ch.service = m[2]
			}
		}
		if ch.realm != "" {
			return ch
		}
	}
	return basic
}

// errLoginRefused is GitLab refusing the user and token themselves.
var errLoginRefused = errors.New("GitLab refused the registry login")

// fetch asks GitLab's token service for a token with these scopes. A login
// GitLab refused is not asked again: every request would fail the same way,
// and GitLab bans an address after 300 failed logins a minute.
func (g *gitlabTokens) fetch(ctx context.Context, ch *challenge, scopes []string) (*bearer, error) {
	g.mu.Lock()
	refused := g.loginErr[ch.realm]
	g.mu.Unlock()
	if refused != nil {
		return nil, refused
	}
	req, err := g.tokenRequest(ctx, ch, scopes)
	if err != nil {
		return nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getting a registry token from GitLab: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		_, msg, _ := decodeErrorBody(body)
		err := fmt.Errorf("%w: %s answered %s %q; check the GitLab token (scopes read_registry and write_registry, or api) and that it has not expired", errLoginRefused, ch.realm, resp.Status, msg)
		g.mu.Lock()
		g.loginErr[ch.realm] = err
		g.mu.Unlock()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("getting a registry token from GitLab: %s answered %s", ch.realm, resp.Status)
	}
	return parseToken(body)
}

func (g *gitlabTokens) tokenRequest(ctx context.Context, ch *challenge, scopes []string) (*http.Request, error) {
	u, err := url.Parse(ch.realm)
	if err != nil {
		return nil, fmt.Errorf("GitLab's registry names an invalid token service %q: %w", ch.realm, err)
	}
	q := u.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	q.Set("client_id", "terraform-provider-imagesync")
	user := g.username(ctx)
	q.Set("account", user) // as docker login sends it
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, g.password)
	return req, nil
}

// parseToken reads the token service's answer. A token is renewed a tenth of
// its life (at most 30 s) before it lapses.
func parseToken(body []byte) (*bearer, error) {
	var t struct {
		Token       string    `json:"token"`
		AccessToken string    `json:"access_token"`
		ExpiresIn   int       `json:"expires_in"`
		IssuedAt    time.Time `json:"issued_at"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("reading GitLab's registry token: %w", err)
	}
	value := t.Token
	if value == "" {
		value = t.AccessToken
	}
	if value == "" {
		return nil, errors.New("GitLab's token service answered without a token")
	}
	life := time.Duration(t.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second // the distribution spec's default
	}
	issued := time.Now()
	if !t.IssuedAt.IsZero() && t.IssuedAt.Before(issued) && issued.Sub(t.IssuedAt) < life {
		issued = t.IssuedAt
	}
	return &bearer{value: value, renewAt: issued.Add(life - min(life/10, 30*time.Second))}, nil
}

package fakegitlab

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GitLab's registry refuses protected and immutable tags with these errors
// (gitlab-org/container-registry, registry/api/v2/errors.go), status 401,
// and no WWW-Authenticate challenge: the request was authenticated, the
// rules that travel in its token forbid it.
const (
	codeProtectedTag      = "PROTECTED_TAG"
	msgProtectedTag       = "insufficient permissions to push or delete protected tag"
	codeImmutableTag      = "IMMUTABLE_TAG"
	msgImmutableTag       = "tag is immutable"
	codeProtectedManifest = "PROTECTED_MANIFEST"
	msgProtectedManifest  = "insufficient permissions to delete manifest due to tag protection or immutability policies"
	// GitLab's API refuses a protected tag's delete with 400 and this message
	// (Projects::ContainerRepository::Gitlab::DeleteTagsService).
	msgAPIProtectedTag = "cannot delete protected tag(s)"
)

// registryRules is what GitLab's registry enforces on top of distribution's:
// protected and immutable tags, rate limits, references of the form
// sha256-<hex> read as digests, and at most two path levels below a project
// (in grant). The GitLab registry proxy applies them (ServeRegistryRules);
// tests change them at run time.
type registryRules struct {
	mu                sync.Mutex
	tags              []*tagRule
	rateEvery         int
	retryAfter        time.Duration
	seen              int
	limitedAt         []time.Time // when each 429 was sent
	sha256TagsLiteral bool        // false is GitLab: sha256-<hex> is the digest sha256:<hex>

	rateLimited, refusals, digestRefs atomic.Int64
}

type tagRule struct {
	pattern      *regexp.Regexp
	project      string // "" is every project
	immutable    bool
	push, delete bool
	challenge    bool
}

// TagRuleOption refines ProtectTags.
type TagRuleOption func(*tagRule)

// InProject limits a rule to one project (path_with_namespace), as GitLab's
// rules are per project; without it the rule holds in every project.
func InProject(path string) TagRuleOption {
	return func(r *tagRule) { r.project = strings.ToLower(strings.Trim(path, "/")) }
}

// Immutable makes the rule GitLab's immutable tag rule (18.1+): a matching
// tag can be created, but not moved or deleted (IMMUTABLE_TAG).
func Immutable() TagRuleOption { return func(r *tagRule) { r.immutable = true } }

// OnlyDelete protects matching tags against deletes only (pushes pass).
func OnlyDelete() TagRuleOption { return func(r *tagRule) { r.push = false } }

// WithChallenge adds a Bearer challenge with error="insufficient_scope" to
// the refusal, for clients in front of a GitLab that sends one.
func WithChallenge() TagRuleOption { return func(r *tagRule) { r.challenge = true } }

// ProtectTags makes the GitLab registry refuse a manifest PUT or DELETE of a
// tag matching pattern with 401 PROTECTED_TAG (IMMUTABLE_TAG with
// Immutable()), a DELETE by digest in a repository with such a rule with 401
// PROTECTED_MANIFEST, and the API's tag delete with 400. The rule applies at
// once, to every user and token. It returns the function that removes it.
func (g *GitLab) ProtectTags(pattern *regexp.Regexp, opts ...TagRuleOption) (unprotect func()) {
	rule := &tagRule{pattern: pattern, push: true, delete: true}
	for _, o := range opts {
		o(rule)
	}
	g.rules.mu.Lock()
	g.rules.tags = append(g.rules.tags, rule)
	g.rules.mu.Unlock()
	return func() {
		g.rules.mu.Lock()
		defer g.rules.mu.Unlock()
		for i, r := range g.rules.tags {
			if r == rule {
				g.rules.tags = append(g.rules.tags[:i:i], g.rules.tags[i+1:]...)
				return
			}
		}
	}
}

// RateLimitRegistry answers every nth request to the GitLab registry with
// 429 TOOMANYREQUESTS and Retry-After (whole seconds, rounded up); n <= 0
// lifts the limit. It returns the function that lifts it.
func (g *GitLab) RateLimitRegistry(n int, retryAfter time.Duration) (lift func()) {
	g.rules.mu.Lock()
	g.rules.rateEvery, g.rules.retryAfter, g.rules.seen = n, retryAfter, 0
	g.rules.mu.Unlock()
	return func() { g.RateLimitRegistry(0, 0) }
}

// SetSHA256TagsAsDigests chooses whether a manifest reference sha256-<hex>
// means the digest sha256:<hex> (on, GitLab's behaviour and the default) or
// a tag (off, a plain registry where the referrers tag scheme works). It
// returns the function that restores the previous setting.
func (g *GitLab) SetSHA256TagsAsDigests(on bool) (restore func()) {
	g.rules.mu.Lock()
	prev := !g.rules.sha256TagsLiteral
	g.rules.sha256TagsLiteral = !on
	g.rules.mu.Unlock()
	return func() { g.SetSHA256TagsAsDigests(prev) }
}

// RateLimitedAt returns when each 429 of RateLimitRegistry was sent, so a
// test can see whether clients waited as Retry-After told them.
func (g *GitLab) RateLimitedAt() []time.Time {
	g.rules.mu.Lock()
	defer g.rules.mu.Unlock()
	return slices.Clone(g.rules.limitedAt)
}

// RegistryRuleCounts are what the registry rules did since start or the last
// ResetRegistryRules.
type RegistryRuleCounts struct {
	RateLimited      int // requests answered 429
	Refused          int // manifest PUTs and DELETEs refused by tag rules (registry and API)
	DigestReferences int // sha256-<hex> references read as digests
}

// RegistryRuleCounts returns the counters.
func (g *GitLab) RegistryRuleCounts() RegistryRuleCounts {
	return RegistryRuleCounts{
		RateLimited:      int(g.rules.rateLimited.Load()),
		Refused:          int(g.rules.refusals.Load()),
		DigestReferences: int(g.rules.digestRefs.Load()),
	}
}

// ResetRegistryRules returns to GitLab's defaults (no tag rules, no rate
// limit, sha256-<hex> read as a digest) and zeroes the counters.
func (g *GitLab) ResetRegistryRules() {
	g.rules.mu.Lock()
	g.rules.tags, g.rules.rateEvery, g.rules.seen, g.rules.sha256TagsLiteral = nil, 0, 0, false
	g.rules.limitedAt = nil
	g.rules.mu.Unlock()
	g.rules.rateLimited.Store(0)
	g.rules.refusals.Store(0)
	g.rules.digestRefs.Store(0)
}

var (
	manifestPath  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	sha256TagForm = regexp.MustCompile(`^sha256-([0-9a-f]{64})$`)
)

// ServeRegistryRules is the guard of a proxy in front of the registry: it
// answers a request the rules refuse (and reports true), or rewrites a
// sha256-<hex> reference to the digest and lets it pass.
func (g *GitLab) ServeRegistryRules(w http.ResponseWriter, r *http.Request) bool {
	if g.rateLimit(w) || g.tagsAPI.serve(w, r) {
		return true
	}
	m := manifestPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return false
	}
	repo, ref := m[1], m[2]
	if h := sha256TagForm.FindStringSubmatch(ref); h != nil && g.sha256TagsAreDigests() {
		ref = "sha256:" + h[1]
		r.URL.Path = "/v2/" + repo + "/manifests/" + ref
		r.URL.RawPath = ""
		g.rules.digestRefs.Add(1)
	}
	if r.Method != http.MethodPut && r.Method != http.MethodDelete {
		return false
	}
	code, msg, detail, rule := g.refusal(r.Method, repo, ref)
	if rule == nil {
		return false
	}
	g.rules.refusals.Add(1)
	if rule.challenge {
		action := map[string]string{http.MethodPut: "push", http.MethodDelete: "delete"}[r.Method]
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q,scope="repository:%s:%s",error="insufficient_scope"`,
			g.URL+"/jwt/auth", g.Service, repo, action))
	}
	writeRegistryError(w, http.StatusUnauthorized, code, msg, detail)
	return true
}

// rateLimit answers every nth request 429.
func (g *GitLab) rateLimit(w http.ResponseWriter) bool {
	g.rules.mu.Lock()
	every, after := g.rules.rateEvery, g.rules.retryAfter
	limited := false
	if every > 0 {
		g.rules.seen++
		limited = g.rules.seen%every == 0
	}
	if limited {
		g.rules.limitedAt = append(g.rules.limitedAt, time.Now())
	}
	g.rules.mu.Unlock()
	if !limited {
		return false
	}
	g.rules.rateLimited.Add(1)
	secs := int((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeRegistryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "too many requests", nil)
	return true
}

func (g *GitLab) sha256TagsAreDigests() bool {
	g.rules.mu.Lock()
	defer g.rules.mu.Unlock()
	return !g.rules.sha256TagsLiteral
}

// refusal finds the first rule that forbids method on repo's ref (a tag or
// a digest) and GitLab's error for it; rule is nil when none does.
func (g *GitLab) refusal(method, repo, ref string) (code, msg string, detail any, rule *tagRule) {
	byDigest := strings.HasPrefix(ref, "sha256:")
	for _, rl := range g.tagRulesOf(repo) {
		switch {
		case byDigest && method == http.MethodDelete && (rl.delete || rl.immutable):
			return codeProtectedManifest, msgProtectedManifest, nil, rl
		case byDigest || !rl.pattern.MatchString(ref):
		case rl.immutable && (method == http.MethodDelete || g.tagExists(repo, ref)):
			return codeImmutableTag, msgImmutableTag, fmt.Sprintf("tag %q is immutable", ref), rl
		case !rl.immutable && (method == http.MethodPut && rl.push || method == http.MethodDelete && rl.delete):
			return codeProtectedTag, msgProtectedTag, fmt.Sprintf("tag %q is protected", ref), rl
		}
	}
	return "", "", nil, nil
}

// tagRulesOf returns the rules that hold in repo's project.
func (g *GitLab) tagRulesOf(repo string) []*tagRule {
	project := ""
	if p := g.projectOfImage(repo); p != nil {
		project = strings.ToLower(p.Path)
	}
	g.rules.mu.Lock()
	defer g.rules.mu.Unlock()
	var out []*tagRule
	for _, r := range g.rules.tags {
		if r.project == "" || r.project == project {
			out = append(out, r)
		}
	}
	return out
}

// apiTagDeleteRefused is the API's side of the tag rules: DELETE
// /projects/:id/registry/repositories/:id/tags/:tag of a protected or
// immutable tag.
func (g *GitLab) apiTagDeleteRefused(repo, tag string) bool {
	if _, _, _, rule := g.refusal(http.MethodDelete, repo, tag); rule != nil {
		g.rules.refusals.Add(1)
		return true
	}
	return false
}

// withinImageDepth is GitLab's limit on image names: the project path and at
// most two more levels.
func withinImageDepth(p Project, image string) bool {
	rest := strings.Trim(strings.TrimPrefix(strings.ToLower(image), strings.ToLower(p.Path)), "/")
	return rest == "" || strings.Count(rest, "/") < 2
}

func writeRegistryError(w http.ResponseWriter, status int, code, msg string, detail any) {
	e := map[string]any{"code": code, "message": msg}
	if detail != nil {
		e["detail"] = detail
	}
	body, _ := json.Marshal(map[string]any{"errors": []any{e}})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

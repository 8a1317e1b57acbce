// Package fakegitlab is an in-process fake of the parts of GitLab that the
// provider and its CI pipeline meet: API v4 (projects, registry repositories
// and tags, Terraform state, merge request notes), the /jwt/auth registry
// token service with CI job tokens, and the rules GitLab's registry adds to
// distribution's (registry.go). localenv starts it in front of a real
// docker-registry whose storage it reads.
//
// No production code imports this package.
package fakegitlab

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// registryLeeway is distribution's token.Leeway.
const registryLeeway = 60 * time.Second

// Project is a GitLab project known to the fake API.
type Project struct {
	ID          int
	Path        string // path_with_namespace, e.g. "migration/images"
	ImagePrefix string // container_registry_image_prefix, e.g. "127.0.0.1:P/migration/images"
	// RegistryOff is a project whose container registry is turned off
	// (Settings > General > Visibility, project features, permissions).
	RegistryOff bool
}

// Access is one entry of a registry token's "access" claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// GitLab is an in-process fake of the parts of GitLab's API v4 and its
// /jwt/auth registry token service that the provider uses. Registry content
// is not modelled: repositories and tags are read from the real registry's
// storage, so they are whatever was really pushed.
type GitLab struct {
	URL     string // "http://127.0.0.1:P"
	Issuer  string // JWT iss, also in the registry config
	Service string // JWT aud, "container_registry"

	token   string
	key     *rsa.PrivateKey
	certDER []byte
	ttl     atomic.Int64 // nanoseconds
	tokReqs atomic.Int64
	srv     *http.Server

	mu           sync.Mutex
	projects     []*Project
	repoIDs      map[string]int
	repoCreated  map[string]time.Time
	registryHost string
	storageRoot  string

	rules     registryRules // the registry's own rules, see registry.go
	tagsAPI   tagsAPI       // GitLab's registry API, see tags_api.go
	jobTokens jobTokens     // jobtoken.go
	states    stateStore    // state.go
	mrs       mergeRequests // notes.go
}

// New starts the fake GitLab on a free port of 127.0.0.1; its registry
// tokens live ttl. Call SetRegistry once the registry it guards listens.
func New(ttl time.Duration) (*GitLab, error) {
	tok := make([]byte, 20)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "imagesync-localenv registry token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &GitLab{
		URL:         "http://" + l.Addr().String(),
		Issuer:      "gitlab-issuer", // what omnibus GitLab uses
		Service:     "container_registry",
		token:       "glpat-" + hex.EncodeToString(tok),
		key:         key,
		certDER:     der,
		repoIDs:     map[string]int{},
		repoCreated: map[string]time.Time{},
		tagsAPI:     tagsAPI{client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}},
	}
	g.ttl.Store(int64(ttl))
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = g.srv.Serve(l) }()
	return g, nil
}

// SetRegistry names the registry host the API reports
// (container_registry_image_prefix, locations) and the registry's storage
// root, where repositories and tags are read.
func (g *GitLab) SetRegistry(host, root string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.registryHost, g.storageRoot = host, root
	for _, p := range g.projects {
		p.ImagePrefix = strings.ToLower(host + "/" + p.Path)
	}
}

// Token is the one valid API / registry token.
func (g *GitLab) Token() string { return g.token }

// CertPEM is the token signing certificate (the registry's rootcertbundle).
func (g *GitLab) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.certDER})
}

// SetTokenTTL changes the lifetime of registry tokens issued from now on.
func (g *GitLab) SetTokenTTL(d time.Duration) { g.ttl.Store(int64(d)) }

// TokenRequests counts /jwt/auth requests (successful or not).
func (g *GitLab) TokenRequests() int { return int(g.tokReqs.Load()) }

// AddProject registers a project (idempotent per path) and returns it.
func (g *GitLab) AddProject(path string) Project {
	g.mu.Lock()
	defer g.mu.Unlock()
	path = strings.Trim(path, "/")
	for _, p := range g.projects {
		if strings.EqualFold(p.Path, path) {
			return *p
		}
	}
	p := &Project{ID: len(g.projects) + 1, Path: path}
	if g.registryHost != "" {
		p.ImagePrefix = strings.ToLower(g.registryHost + "/" + path)
	}
	g.projects = append(g.projects, p)
	return *p
}

// DisableRegistry turns the container registry of the project at path off,
// as its settings page does.
func (g *GitLab) DisableRegistry(path string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.projects {
		if strings.EqualFold(p.Path, strings.Trim(path, "/")) {
			p.RegistryOff = true
		}
	}
}

// Close stops the HTTP server.
func (g *GitLab) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return g.srv.Shutdown(ctx)
}

// MintToken signs a registry token as /jwt/auth would, for tests that want
// to talk to the registry directly.
func (g *GitLab) MintToken(subject string, access []Access) (string, error) {
	now := time.Now()
	// distribution 2.8 accepts a token until exp + 60 s (clock-skew leeway).
	// Backdate exp by that leeway so the registry stops accepting the token
	// exactly when expires_in says, which keeps short-TTL expiry tests short.
	exp := now.Add(time.Duration(g.ttl.Load()) - registryLeeway)
	nbf := now.Add(-5 * time.Second)
	if exp.Before(nbf) {
		nbf = exp
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	if access == nil {
		access = []Access{}
	}
	claims := jwt.MapClaims{
		"iss":    g.Issuer,
		"sub":    subject,
		"aud":    g.Service, // a plain string: distribution 2.8 accepts it either way
		"iat":    now.Unix(),
		"nbf":    nbf.Unix(),
		"exp":    exp.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": access,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	// distribution 2.8 verifies an x5c chain against rootcertbundle.
	t.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(g.certDER)}
	return t.SignedString(g.key)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeMsg(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func (g *GitLab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath() // keeps %2F inside project ids
	switch {
	case path == "/jwt/auth":
		g.serveJWT(w, r)
	case strings.HasPrefix(path, "/api/v4/"):
		segs, err := apiSegments(path)
		if err != nil {
			writeMsg(w, http.StatusBadRequest, "400 Bad request")
			return
		}
		if g.serveCIAPI(w, r, segs) { // jobtoken.go: state, notes, job tokens
			return
		}
		if !g.apiAuthorized(r) {
			writeMsg(w, http.StatusUnauthorized, "401 Unauthorized")
			return
		}
		g.serveAPI(w, r, segs)
	default:
		writeMsg(w, http.StatusNotFound, "404 Not Found")
	}
}

// apiSegments splits an escaped /api/v4/ path into unescaped segments, so a
// project path given as one %2F-encoded segment stays one.
func apiSegments(path string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(strings.Trim(strings.TrimPrefix(path, "/api/v4/"), "/"), "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		segs = append(segs, u)
	}
	return segs, nil
}

func (g *GitLab) validToken(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(g.token)) == 1
}

func (g *GitLab) apiAuthorized(r *http.Request) bool {
	if t := r.Header.Get("PRIVATE-TOKEN"); t != "" {
		return g.validToken(t)
	}
	if t := r.Header.Get("JOB-TOKEN"); t != "" {
		return g.validToken(t)
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		return g.validToken(strings.TrimPrefix(a, "Bearer "))
	}
	return false
}

// serveJWT is GitLab's registry token endpoint. With the personal token any
// username is accepted (the user's, "oauth2"...); a CI job token comes with
// the user "gitlab-ci-token" and is granted only its own project's images.
func (g *GitLab) serveJWT(w http.ResponseWriter, r *http.Request) {
	g.tokReqs.Add(1)
	user, pass, ok := r.BasicAuth()
	job := g.jobToken(user, pass) // nil unless gitlab-ci-token and a job token
	if !ok || !g.validToken(pass) && job == nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="GitLab"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "HTTP Basic: Access denied"}}})
		return
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != "" && svc != g.Service {
		writeMsg(w, http.StatusForbidden, "403 Forbidden")
		return
	}
	access := []Access{}
	for _, param := range q["scope"] {
		for _, scope := range strings.Fields(param) {
			if a, ok := g.grant(scope); ok && (job == nil || job.restrict(g, &a)) {
				access = append(access, a)
			}
		}
	}
	tok, err := g.MintToken(user, access)
	if err != nil {
		writeMsg(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(time.Duration(g.ttl.Load()).Seconds()),
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

// grant decides one "type:name:actions" scope. The token owner is treated as
// a maintainer of every project: all of pull/push/delete on their images.
func (g *GitLab) grant(scope string) (Access, bool) {
	typ, rest, ok := strings.Cut(scope, ":")
	if !ok {
		return Access{}, false
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return Access{}, false
	}
	name, actions := rest[:i], strings.Split(rest[i+1:], ",")
	switch typ {
	case "registry":
		if name == "catalog" {
			return Access{Type: typ, Name: name, Actions: []string{"*"}}, true
		}
		return Access{}, false
	case "repository":
		if p := g.projectOfImage(name); p == nil || !withinImageDepth(*p, name) {
			return Access{}, false
		}
		var granted []string
		for _, a := range actions {
			switch a {
			case "pull", "push", "delete", "*":
				granted = append(granted, a)
			}
		}
		if len(granted) == 0 {
			return Access{}, false
		}
		return Access{Type: typ, Name: name, Actions: granted}, true
	}
	return Access{}, false
}

// projectOfImage finds the project whose path is image or a prefix of it.
func (g *GitLab) projectOfImage(image string) *Project {
	g.mu.Lock()
	defer g.mu.Unlock()
	image = strings.ToLower(image)
	var best *Project
	for _, p := range g.projects {
		pp := strings.ToLower(p.Path)
		if image == pp || strings.HasPrefix(image, pp+"/") {
			if best == nil || len(pp) > len(best.Path) {
				best = p
			}
		}
	}
	return best
}

func (g *GitLab) findProject(id string) *Project {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n, err := strconv.Atoi(id); err == nil {
		for _, p := range g.projects {
			if p.ID == n {
				return p
			}
		}
		return nil
	}
	for _, p := range g.projects {
		if strings.EqualFold(p.Path, strings.Trim(id, "/")) {
			return p
		}
	}
	return nil
}

func (g *GitLab) serveAPI(w http.ResponseWriter, r *http.Request, segs []string) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case len(segs) == 1 && segs[0] == "user" && get:
		writeJSON(w, http.StatusOK, map[string]any{
			"id": 1, "username": "root", "name": "Administrator", "state": "active",
			"email": "admin@example.com", "is_admin": true, "web_url": g.URL + "/root",
			"avatar_url": nil, "created_at": "2024-01-01T00:00:00.000Z",
		})
		return
	case len(segs) == 3 && segs[0] == "registry" && segs[1] == "repositories" && get:
		// GET /registry/repositories/:id (no project in the path)
		repo, p := g.repoByID(segs[2])
		if repo == "" {
			writeMsg(w, http.StatusNotFound, "404 Repository Not Found")
			return
		}
		writeJSON(w, http.StatusOK, g.repoJSON(p, repo, r.URL.Query()))
		return
	case len(segs) >= 2 && segs[0] == "projects":
		p := g.findProject(segs[1])
		if p == nil {
			writeMsg(w, http.StatusNotFound, "404 Project Not Found")
			return
		}
		g.serveProject(w, r, *p, segs[2:])
		return
	}
	writeMsg(w, http.StatusNotFound, "404 Not Found")
}

func (g *GitLab) projectJSON(p Project) map[string]any {
	ns, name := "", p.Path
	if i := strings.LastIndex(p.Path, "/"); i >= 0 {
		ns, name = p.Path[:i], p.Path[i+1:]
	}
	return map[string]any{
		"id": p.ID, "name": name, "path": name,
		"name_with_namespace":             strings.ReplaceAll(p.Path, "/", " / "),
		"path_with_namespace":             p.Path,
		"web_url":                         g.URL + "/" + p.Path,
		"http_url_to_repo":                g.URL + "/" + p.Path + ".git",
		"default_branch":                  "main",
		"visibility":                      "private",
		"namespace":                       map[string]any{"id": p.ID, "name": ns, "path": ns, "full_path": ns, "kind": "group"},
		"created_at":                      "2024-01-01T00:00:00.000Z",
		"container_registry_enabled":      !p.RegistryOff,
		"container_registry_access_level": registryAccessLevel(p),
		"container_registry_image_prefix": p.ImagePrefix,
	}
}

func registryAccessLevel(p Project) string {
	if p.RegistryOff {
		return "disabled"
	}
	return "enabled"
}

func (g *GitLab) serveProject(w http.ResponseWriter, r *http.Request, p Project, rest []string) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if len(rest) == 0 {
		if get {
			writeJSON(w, http.StatusOK, g.projectJSON(p))
			return
		}
		writeMsg(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		return
	}
	if len(rest) < 2 || rest[0] != "registry" || rest[1] != "repositories" {
		writeMsg(w, http.StatusNotFound, "404 Not Found")
		return
	}
	rest = rest[2:]
	q := r.URL.Query()
	if len(rest) == 0 {
		if !get {
			writeMsg(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
			return
		}
		repos := g.projectRepos(p)
		items := make([]any, len(repos))
		for i, repo := range repos {
			items[i] = g.repoJSON(p, repo, q)
		}
		writePage(w, r, items)
		return
	}
	repo, rp := g.repoByID(rest[0])
	if repo == "" || rp.ID != p.ID {
		writeMsg(w, http.StatusNotFound, "404 Repository Not Found")
		return
	}
	rest = rest[1:]
	switch {
	case len(rest) == 0 && get:
		writeJSON(w, http.StatusOK, g.repoJSON(p, repo, q))
	case len(rest) == 1 && rest[0] == "tags" && get:
		tags := g.repoTags(repo)
		items := make([]any, len(tags))
		for i, t := range tags {
			items[i] = g.tagJSON(repo, t, false)
		}
		writePage(w, r, items)
	case len(rest) == 2 && rest[0] == "tags" && get:
		if !g.tagExists(repo, rest[1]) {
			writeMsg(w, http.StatusNotFound, "404 Tag Not Found")
			return
		}
		writeJSON(w, http.StatusOK, g.tagJSON(repo, rest[1], true))
	case len(rest) == 2 && rest[0] == "tags" && r.Method == http.MethodDelete:
		if !g.tagExists(repo, rest[1]) {
			writeMsg(w, http.StatusNotFound, "404 Tag Not Found")
			return
		}
		if g.apiTagDeleteRefused(repo, rest[1]) {
			writeMsg(w, http.StatusBadRequest, msgAPIProtectedTag)
			return
		}
		// Real GitLab untags; distribution 2.8 can only delete manifests (and
		// with them every tag), so drop just this tag's link on disk.
		if err := os.RemoveAll(g.tagDir(repo, rest[1])); err != nil {
			writeMsg(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		writeMsg(w, http.StatusNotFound, "404 Not Found")
	}
}

// writePage applies GitLab's offset pagination (page, per_page; default 20,
// max 100) and its X-* headers.
func writePage(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per < 1 {
		per = 20
	}
	if per > 100 {
		per = 100
	}
	total := len(items)
	pages := (total + per - 1) / per
	if pages == 0 {
		pages = 1
	}
	lo, hi := min((page-1)*per, total), min(page*per, total)
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	next, prev := "", ""
	if page < pages {
		next = strconv.Itoa(page + 1)
	}
	if page > 1 {
		prev = strconv.Itoa(page - 1)
	}
	h.Set("X-Next-Page", next)
	h.Set("X-Prev-Page", prev)
	writeJSON(w, http.StatusOK, items[lo:hi])
}

// --- registry storage (distribution's filesystem layout) ---

func (g *GitLab) reposDir() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return filepath.Join(g.storageRoot, "docker", "registry", "v2", "repositories")
}

// allRepos lists every repository that has manifests, assigning stable ids
// on first sight (in sorted order, so ids are reproducible).
func (g *GitLab) allRepos() []string {
	base := g.reposDir()
	var repos []string
	_ = filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a directory deleted while walking (a tag untagged) is just not listed
		}
		if !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "_") {
			if d.Name() == "_manifests" {
				rel, _ := filepath.Rel(base, filepath.Dir(path))
				repos = append(repos, filepath.ToSlash(rel))
			}
			return filepath.SkipDir
		}
		return nil
	})
	sort.Strings(repos)
	g.mu.Lock()
	for _, r := range repos {
		if _, ok := g.repoIDs[r]; !ok {
			g.repoIDs[r] = len(g.repoIDs) + 1
			g.repoCreated[r] = time.Now().UTC()
		}
	}
	g.mu.Unlock()
	return repos
}

func (g *GitLab) projectRepos(p Project) []string {
	var out []string
	for _, r := range g.allRepos() {
		if owner := g.projectOfImage(r); owner != nil && owner.ID == p.ID {
			out = append(out, r)
		}
	}
	return out
}

func (g *GitLab) repoByID(id string) (string, Project) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return "", Project{}
	}
	for _, r := range g.allRepos() {
		g.mu.Lock()
		rid := g.repoIDs[r]
		g.mu.Unlock()
		if rid == n {
			if p := g.projectOfImage(r); p != nil {
				return r, *p
			}
		}
	}
	return "", Project{}
}

func (g *GitLab) repoJSON(p Project, repo string, q url.Values) map[string]any {
	g.mu.Lock()
	id, created, host := g.repoIDs[repo], g.repoCreated[repo], g.registryHost
	g.mu.Unlock()
	name := strings.TrimPrefix(strings.TrimPrefix(repo, strings.ToLower(p.Path)), "/")
	m := map[string]any{
		"id": id, "name": name, "path": repo, "project_id": p.ID,
		"location":                  host + "/" + repo,
		"created_at":                created.Format(time.RFC3339Nano),
		"cleanup_policy_started_at": nil,
		"status":                    nil,
	}
	if q.Get("tags_count") == "true" {
		m["tags_count"] = len(g.repoTags(repo))
	}
	if q.Get("tags") == "true" {
		var tags []any
		for _, t := range g.repoTags(repo) {
			tags = append(tags, g.tagJSON(repo, t, false))
		}
		if tags == nil {
			tags = []any{}
		}
		m["tags"] = tags
	}
	return m
}

func (g *GitLab) tagDir(repo, tag string) string {
	return filepath.Join(g.reposDir(), filepath.FromSlash(repo), "_manifests", "tags", tag)
}

func (g *GitLab) repoTags(repo string) []string {
	ents, err := os.ReadDir(filepath.Join(g.reposDir(), filepath.FromSlash(repo), "_manifests", "tags"))
	if err != nil {
		return nil
	}
	var tags []string
	for _, e := range ents {
		if g.tagExists(repo, e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	sort.Strings(tags)
	return tags
}

func (g *GitLab) tagExists(repo, tag string) bool {
	if tag == "" || strings.ContainsAny(tag, `/\`) || tag == "." || tag == ".." {
		return false
	}
	_, err := os.Stat(filepath.Join(g.tagDir(repo, tag), "current", "link"))
	return err == nil
}

func (g *GitLab) tagJSON(repo, tag string, detail bool) map[string]any {
	g.mu.Lock()
	host := g.registryHost
	g.mu.Unlock()
	m := map[string]any{"name": tag, "path": repo + ":" + tag, "location": host + "/" + repo + ":" + tag}
	if !detail {
		return m
	}
	link := filepath.Join(g.tagDir(repo, tag), "current", "link")
	b, _ := os.ReadFile(link)
	dig := strings.TrimSpace(string(b))
	m["digest"] = dig
	m["created_at"] = nil
	if st, err := os.Stat(link); err == nil {
		m["created_at"] = st.ModTime().UTC().Format(time.RFC3339Nano)
	}
	size, config := g.manifestSize(dig)
	m["total_size"] = size
	if hexDig, ok := strings.CutPrefix(config, "sha256:"); ok {
		m["revision"] = hexDig
		m["short_revision"] = hexDig[:9]
	}
	return m
}

// manifestSize reads a manifest blob from storage and sums what it
// references (config + layers, or the child manifests of an index).
func (g *GitLab) manifestSize(dig string) (int64, string) {
	hexDig, ok := strings.CutPrefix(dig, "sha256:")
	if !ok || len(hexDig) < 2 {
		return 0, ""
	}
	g.mu.Lock()
	root := g.storageRoot
	g.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", hexDig[:2], hexDig, "data"))
	if err != nil {
		return 0, ""
	}
	var m struct {
		Config struct {
			Digest string
			Size   int64
		}
		Layers    []struct{ Size int64 }
		Manifests []struct{ Size int64 }
	}
	if json.Unmarshal(b, &m) != nil {
		return 0, ""
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	for _, c := range m.Manifests {
		total += c.Size
	}
	return total, m.Config.Digest
}

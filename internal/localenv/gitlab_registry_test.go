package localenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
)

// testGitLabRegistry runs against the TestLocalEnv environment.
func testGitLabRegistry(t *testing.T, env *Env) {
	t.Cleanup(env.GitLab.ResetRegistryRules)
	t.Run("ProtectedTags", func(t *testing.T) { testProtectedTags(t, env) })
	t.Run("ImmutableTags", func(t *testing.T) { testImmutableTags(t, env) })
	t.Run("RateLimit", func(t *testing.T) { testRateLimit(t, env) })
	t.Run("SHA256TagsAreDigests", func(t *testing.T) { testSHA256TagsAreDigests(t, env) })
	t.Run("ImagePathDepth", func(t *testing.T) { testImagePathDepth(t, env) })
	t.Run("TagsAPI", func(t *testing.T) { testGitLabTagsAPI(t, env) })
	t.Run("Restart", func(t *testing.T) { testRestartGitLabRegistry(t, env) })
}

// glRegistry sends one request to the GitLab registry proxy with a token for
// repo.
func glRegistry(t *testing.T, env *Env, method, repo, path string, body []byte, contentType string) (answer, string) {
	t.Helper()
	tok, err := env.GitLab.MintToken("root", []fakegitlab.Access{{Type: "repository", Name: repo, Actions: []string{"pull", "push", "delete"}}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, env.GitLabRegistryURL+"/v2/"+repo+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := env.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(resp)
}

// registryError decodes the first entry of a registry error body.
func registryError(t *testing.T, body string) (code, message string, detail any) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a registry error body: %q", body)
	}
	return e.Errors[0].Code, e.Errors[0].Message, e.Errors[0].Detail
}

// pushedManifest pushes an image to repo:tag and returns its raw manifest,
// media type and digest.
func pushedManifest(t *testing.T, env *Env, repo, tag string, seed int64) ([]byte, string, string) {
	t.Helper()
	img, err := env.PushGitLabImage(t.Context(), repo, tag, ImageSpec{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := env.GitLabRef(repo, tag)
	m, err := env.RegistryClient().ManifestGet(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := m.RawBody()
	return raw, img.MediaType, img.Digest
}

// putManifest PUTs raw to repo's ref and returns the status and body.
func putManifest(t *testing.T, env *Env, repo, ref string, raw []byte, mt string) (int, string) {
	t.Helper()
	resp, body := glRegistry(t, env, http.MethodPut, repo, "/manifests/"+ref, raw, mt)
	return resp.StatusCode, body
}

func expectRefusal(t *testing.T, what string, resp answer, body, code, detail string) {
	t.Helper()
	c, _, d := registryError(t, body)
	if resp.StatusCode != http.StatusUnauthorized || c != code || (detail != "" && d != detail) {
		t.Fatalf("%s: %d %s, want 401 %s %q", what, resp.StatusCode, body, code, detail)
	}
	if h := resp.Header.Get("WWW-Authenticate"); h != "" {
		t.Fatalf("%s: a challenge %q, GitLab sends none", what, h)
	}
}

func testProtectedTags(t *testing.T, env *Env) {
	const repo = "migration/images/protected"
	raw, mt, dig := pushedManifest(t, env, repo, "v1", 81)
	unprotect := env.GitLab.ProtectTags(regexp.MustCompile(`^v\d+$`))
	defer unprotect()
	before := env.GitLab.RegistryRuleCounts().Refused

	resp, body := glRegistry(t, env, http.MethodPut, repo, "/manifests/v1", raw, mt)
	expectRefusal(t, "PUT v1", resp, body, "PROTECTED_TAG", `tag "v1" is protected`)
	if _, msg, _ := registryError(t, body); msg != "insufficient permissions to push or delete protected tag" {
		t.Fatalf("message %q", msg)
	}
	resp, body = glRegistry(t, env, http.MethodPut, repo, "/manifests/v2", raw, mt)
	expectRefusal(t, "PUT new tag v2", resp, body, "PROTECTED_TAG", `tag "v2" is protected`)
	if s, body := putManifest(t, env, repo, "dev", raw, mt); s != http.StatusCreated {
		t.Fatalf("PUT dev, not protected: %d %s", s, body)
	}
	resp, body = glRegistry(t, env, http.MethodDelete, repo, "/manifests/v1", nil, "")
	expectRefusal(t, "DELETE v1", resp, body, "PROTECTED_TAG", `tag "v1" is protected`)
	resp, body = glRegistry(t, env, http.MethodDelete, repo, "/manifests/"+dig, nil, "")
	expectRefusal(t, "DELETE by digest", resp, body, "PROTECTED_MANIFEST", "")
	r, _ := env.GitLabRef(repo, "v1")
	m, _ := env.RegistryClient().ManifestGet(t.Context(), r)
	if err := env.RegistryClient().ManifestPut(t.Context(), r.SetTag("v3"), m); err == nil {
		t.Fatal("regclient pushed the protected tag v3")
	}
	if n := env.GitLab.RegistryRuleCounts().Refused - before; n != 5 {
		t.Fatalf("Refused counted %d, want 5", n)
	}

	// The API refuses the protected tag's delete too, and deletes the other.
	tagsPath := "/projects/1/registry/repositories/" + itoa(repoID(t, env, repo)) + "/tags/"
	if s, body := glAPI(t, env, http.MethodDelete, tagsPath+"v1"); s != http.StatusBadRequest || !strings.Contains(body, "cannot delete protected tag(s)") {
		t.Fatalf("API delete of v1: %d %s", s, body)
	}
	if s, body := glAPI(t, env, http.MethodDelete, tagsPath+"dev"); s != http.StatusOK {
		t.Fatalf("API delete of dev: %d %s", s, body)
	}

	// Per project, with a challenge, and lifted again.
	other := env.GitLab.ProtectTags(regexp.MustCompile(`^dev$`), fakegitlab.InProject("some/other-project"))
	if s, body := putManifest(t, env, repo, "dev", raw, mt); s != http.StatusCreated {
		t.Fatalf("a rule of another project applied: %d %s", s, body)
	}
	other()
	challenged := env.GitLab.ProtectTags(regexp.MustCompile(`^dev$`), fakegitlab.InProject("migration/images"), fakegitlab.WithChallenge())
	resp, body = glRegistry(t, env, http.MethodPut, repo, "/manifests/dev", raw, mt)
	if c, _, _ := registryError(t, body); resp.StatusCode != http.StatusUnauthorized || c != "PROTECTED_TAG" ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("refusal with a challenge: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	challenged()
	unprotect()
	if s, body := putManifest(t, env, repo, "v1", raw, mt); s != http.StatusCreated {
		t.Fatalf("PUT v1 after the rule was removed: %d %s", s, body)
	}
}

func testImmutableTags(t *testing.T, env *Env) {
	const repo = "migration/images/immutable"
	raw, mt, _ := pushedManifest(t, env, repo, "base", 82)
	defer env.GitLab.ProtectTags(regexp.MustCompile(`^r\d+$`), fakegitlab.Immutable())()
	if s, body := putManifest(t, env, repo, "r1", raw, mt); s != http.StatusCreated {
		t.Fatalf("creating immutable tag r1: %d %s", s, body)
	}
	resp, body := glRegistry(t, env, http.MethodPut, repo, "/manifests/r1", raw, mt)
	expectRefusal(t, "PUT r1 again", resp, body, "IMMUTABLE_TAG", `tag "r1" is immutable`)
	resp, body = glRegistry(t, env, http.MethodDelete, repo, "/manifests/r1", nil, "")
	expectRefusal(t, "DELETE r1", resp, body, "IMMUTABLE_TAG", `tag "r1" is immutable`)

	defer env.GitLab.ProtectTags(regexp.MustCompile(`^base$`), fakegitlab.OnlyDelete())()
	if s, body := putManifest(t, env, repo, "base", raw, mt); s != http.StatusCreated {
		t.Fatalf("PUT of a tag protected against delete only: %d %s", s, body)
	}
	resp, body = glRegistry(t, env, http.MethodDelete, repo, "/manifests/base", nil, "")
	expectRefusal(t, "DELETE base", resp, body, "PROTECTED_TAG", `tag "base" is protected`)
}

func testRateLimit(t *testing.T, env *Env) {
	before := env.GitLab.RegistryRuleCounts().RateLimited
	lift := env.GitLab.RateLimitRegistry(3, 1500*time.Millisecond)
	for i := 1; i <= 7; i++ {
		resp, body := glRegistry(t, env, http.MethodGet, "migration/images/a", "/tags/list", nil, "")
		if i%3 != 0 {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
			}
			continue
		}
		if c, _, _ := registryError(t, body); resp.StatusCode != http.StatusTooManyRequests || c != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("request %d: %d Retry-After %q %s, want 429 after 2 s", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if n := env.GitLab.RegistryRuleCounts().RateLimited - before; n != 2 {
		t.Fatalf("RateLimited counted %d, want 2", n)
	}
	if at := env.GitLab.RateLimitedAt(); len(at) < 2 || time.Since(at[len(at)-1]) > time.Minute {
		t.Fatalf("RateLimitedAt = %v, want the times of the two 429s", at)
	}
	lift()
	for i := range 4 {
		if resp, body := glRegistry(t, env, http.MethodGet, "migration/images/a", "/tags/list", nil, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("after lift, request %d: %d %s", i, resp.StatusCode, body)
		}
	}
}

func testSHA256TagsAreDigests(t *testing.T, env *Env) {
	const repo = "migration/images/referrers"
	_, _, dig := pushedManifest(t, env, repo, "subject", 83)
	fallbackTag := "sha256-" + strings.TrimPrefix(dig, "sha256:")
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(h[:]) }

	resp, body := glRegistry(t, env, http.MethodGet, repo, "/manifests/"+fallbackTag, nil, "")
	if resp.StatusCode != http.StatusOK || sum(body) != dig || resp.Header.Get("Docker-Content-Digest") != dig {
		t.Fatalf("GET %s: %d %s, want the subject %s itself", fallbackTag, resp.StatusCode, sum(body), dig)
	}
	if resp, _ := glRegistry(t, env, http.MethodHead, repo, "/manifests/"+fallbackTag, nil, ""); resp.Header.Get("Docker-Content-Digest") != dig {
		t.Fatalf("HEAD %s: %d digest %q", fallbackTag, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		out, _, err := env.GitLabManifest(t.Context(), repo, fallbackTag)
		if err != nil || sum(string(out)) != dig {
			t.Fatalf("skopeo inspect %s: %v, digest %s, want %s", fallbackTag, err, sum(string(out)), dig)
		}
	}

	// A referrers index under the fallback tag is a PUT by digest, refused.
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	const indexMT = "application/vnd.oci.image.index.v1+json"
	if s, body := putManifest(t, env, repo, fallbackTag, index, indexMT); s != http.StatusBadRequest || !strings.Contains(body, "DIGEST_INVALID") {
		t.Fatalf("PUT of an index to %s: %d %s, want 400 DIGEST_INVALID", fallbackTag, s, body)
	}

	// A plain registry keeps the tag scheme working.
	restore := env.GitLab.SetSHA256TagsAsDigests(false)
	if s, body := putManifest(t, env, repo, fallbackTag, index, indexMT); s != http.StatusCreated {
		t.Fatalf("PUT to %s on a plain registry: %d %s", fallbackTag, s, body)
	}
	if _, body := glRegistry(t, env, http.MethodGet, repo, "/manifests/"+fallbackTag, nil, ""); sum(body) != sum(string(index)) {
		t.Fatalf("GET %s on a plain registry did not return the index", fallbackTag)
	}
	restore()
	if _, body := glRegistry(t, env, http.MethodGet, repo, "/manifests/"+fallbackTag, nil, ""); sum(body) != dig {
		t.Fatal("after restore, the fallback tag is not read as the digest again")
	}
	if env.GitLab.RegistryRuleCounts().DigestReferences == 0 {
		t.Fatal("DigestReferences not counted")
	}
}

func testImagePathDepth(t *testing.T, env *Env) {
	u := env.GitLabURL + "/jwt/auth?service=container_registry&scope=" + url.QueryEscape("repository:migration/images/x/y:pull,push") +
		"&scope=" + url.QueryEscape("repository:migration/images/x/y/z:pull,push")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	req.SetBasicAuth("root", env.GitLabToken)
	resp, err := env.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("no token: %+v", tok)
	}
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Access []fakegitlab.Access }
	_ = json.Unmarshal(claims, &c)
	if len(c.Access) != 1 || c.Access[0].Name != "migration/images/x/y" {
		t.Fatalf("access %s: want only migration/images/x/y, two levels below the project", claims)
	}
	if _, err := env.PushGitLabImage(t.Context(), "migration/images/x/y/z", "v1", ImageSpec{}); err == nil {
		t.Fatal("pushed an image three levels below the project")
	}
}

// repoID finds a repository's API id.
func repoID(t *testing.T, env *Env, path string) int {
	t.Helper()
	_, body := glAPI(t, env, http.MethodGet, "/projects/1/registry/repositories?per_page=100")
	var repos []struct {
		ID   int    `json:"id"`
		Path string `json:"path"`
	}
	_ = json.Unmarshal([]byte(body), &repos)
	for _, r := range repos {
		if r.Path == path {
			return r.ID
		}
	}
	t.Fatalf("repository %s not in the API: %s", path, body)
	return 0
}

func glAPI(t *testing.T, env *Env, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, env.GitLabURL+"/api/v4"+path, nil)
	req.Header.Set("PRIVATE-TOKEN", env.GitLabToken)
	resp, err := env.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testRestartGitLabRegistry: the registry comes back on the same port with
// the same storage and token configuration.
func testRestartGitLabRegistry(t *testing.T, env *Env) {
	const repo = "migration/images/restart"
	raw, _, dig := pushedManifest(t, env, repo, "kept", 97)
	if err := env.RestartGitLabRegistry(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, body := glRegistry(t, env, http.MethodGet, repo, "/manifests/kept", nil, "")
	if sum := sha256.Sum256([]byte(body)); resp.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != dig {
		t.Fatalf("after the restart, GET kept: %d, %d bytes (pushed %d, %s)", resp.StatusCode, len(body), len(raw), dig)
	}
}

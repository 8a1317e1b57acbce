package fakegitlab

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeGitLab starts only the fake GitLab API (no registry, no moto).
func fakeGitLab(t *testing.T) *GitLab {
	t.Helper()
	g, err := New(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	g.SetRegistry("127.0.0.1:1", t.TempDir())
	return g
}

type apiCall struct {
	method, path string
	auth         func(*http.Request)
	body         string
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func header(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

// call makes the request and returns status and body.
func (g *GitLab) call(t *testing.T, c apiCall) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), c.method, g.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (g *GitLab) expect(t *testing.T, c apiCall, status int) string {
	t.Helper()
	got, body := g.call(t, c)
	if got != status {
		t.Fatalf("%s %s: status %d, want %d (body %q)", c.method, c.path, got, status, body)
	}
	return body
}

func lockBody(id string) string {
	b, _ := json.Marshal(StateLock{ID: id, Operation: "OperationTypeApply", Who: "runner@ci", Version: "1.11.4",
		Created: time.Now().UTC().Format(time.RFC3339Nano)})
	return string(b)
}

func TestTerraformStateAPI(t *testing.T) {
	g := fakeGitLab(t)
	p := g.AddProject("team/infra")
	maint := basic(jobTokenUser, g.NewJobToken("team/infra", RoleMaintainer))
	dev := basic(jobTokenUser, g.NewJobToken("team/infra", RoleDeveloper))
	state := "/api/v4/projects/" + url.PathEscape(p.Path) + "/terraform/state/imagesync-0-of-1"
	byID := "/api/v4/projects/1/terraform/state/imagesync-0-of-1"

	g.expect(t, apiCall{method: "GET", path: state, auth: maint}, http.StatusNotFound)
	g.expect(t, apiCall{method: "POST", path: state + "/lock", auth: maint, body: lockBody("lock-a")}, http.StatusOK)
	g.expect(t, apiCall{method: "GET", path: byID, auth: dev}, http.StatusNoContent)

	// A second lock is refused with the holder's lock.
	body := g.expect(t, apiCall{method: "POST", path: state + "/lock", auth: maint, body: lockBody("lock-b")}, http.StatusConflict)
	var holder StateLock
	if err := json.Unmarshal([]byte(body), &holder); err != nil || holder.ID != "lock-a" || holder.Who != "ci-maintainer" || holder.Created == "" {
		t.Fatalf("conflict body %q (%v): want the holder's ID lock-a, Who and Created", body, err)
	}
	// Saves by anyone but the holder are refused.
	v1 := `{"version":4,"serial":1,"lineage":"l","resources":[]}`
	g.expect(t, apiCall{method: "POST", path: state, auth: maint, body: v1}, http.StatusConflict)
	g.expect(t, apiCall{method: "POST", path: state + "?ID=lock-b", auth: maint, body: v1}, http.StatusConflict)
	g.expect(t, apiCall{method: "POST", path: state + "?ID=lock-a", auth: maint, body: v1}, http.StatusOK)
	if got := g.expect(t, apiCall{method: "GET", path: state, auth: dev}, http.StatusOK); got != v1 {
		t.Fatalf("GET = %q, want the saved %q", got, v1)
	}
	g.expect(t, apiCall{method: "POST", path: state + "?ID=lock-a", auth: maint, body: v1}, http.StatusUnprocessableEntity)
	g.expect(t, apiCall{method: "POST", path: state + "?ID=lock-a", auth: maint, body: `{"version":4}`}, http.StatusUnprocessableEntity)

	// Unlock: a wrong ID is a conflict; the holder's ID unlocks.
	g.expect(t, apiCall{method: "DELETE", path: state + "/lock", auth: maint, body: lockBody("lock-b")}, http.StatusConflict)
	if st, _ := g.TerraformState(p.Path, "imagesync-0-of-1"); st.LockedBy != "ci-maintainer" || st.LockConflicts != 1 || st.Serial != 1 {
		t.Fatalf("state before unlock: %+v", st)
	}
	g.expect(t, apiCall{method: "DELETE", path: state + "/lock", auth: maint, body: lockBody("lock-a")}, http.StatusOK)
	// Unlocked, a save carries no ID; an ID now names no lock.
	g.expect(t, apiCall{method: "POST", path: state + "?ID=lock-a", auth: maint, body: strings.Replace(v1, `"serial":1`, `"serial":2`, 1)}, http.StatusConflict)
	g.expect(t, apiCall{method: "POST", path: state, auth: maint, body: strings.Replace(v1, `"serial":1`, `"serial":2`, 1)}, http.StatusOK)

	// force-unlock sends no ID and frees any lock.
	g.expect(t, apiCall{method: "POST", path: state + "/lock", auth: maint, body: lockBody("stale")}, http.StatusOK)
	g.expect(t, apiCall{method: "DELETE", path: state + "/lock", auth: maint}, http.StatusOK)
	if st, _ := g.TerraformState(p.Path, "imagesync-0-of-1"); st.LockedBy != "" || st.Versions != 2 || st.Serial != 2 {
		t.Fatalf("state after force-unlock: %+v", st)
	}

	// Developers read but neither lock nor write.
	g.expect(t, apiCall{method: "POST", path: state + "/lock", auth: dev, body: lockBody("dev")}, http.StatusForbidden)
	g.expect(t, apiCall{method: "POST", path: state, auth: dev, body: `{"serial":9}`}, http.StatusForbidden)
	g.expect(t, apiCall{method: "DELETE", path: state + "/lock", auth: dev}, http.StatusForbidden)

	// Credentials: the personal token by header or basic auth; job tokens by
	// basic auth only, and only on their own project.
	g.expect(t, apiCall{method: "GET", path: state, auth: header("PRIVATE-TOKEN", g.Token())}, http.StatusOK)
	g.expect(t, apiCall{method: "GET", path: state, auth: basic("anyone", g.Token())}, http.StatusOK)
	g.expect(t, apiCall{method: "GET", path: state, auth: header("JOB-TOKEN", g.NewJobToken("team/infra", RoleMaintainer))}, http.StatusUnauthorized)
	g.expect(t, apiCall{method: "GET", path: state, auth: basic(jobTokenUser, g.NewJobToken("other/project", RoleMaintainer))}, http.StatusNotFound)
	g.expect(t, apiCall{method: "GET", path: state, auth: basic(jobTokenUser, "glcbt-unknown")}, http.StatusUnauthorized)
	g.expect(t, apiCall{method: "GET", path: state}, http.StatusUnauthorized)
}

// jwtAccess asks /jwt/auth for scopes and returns the granted access claim.
func (g *GitLab) jwtAccess(t *testing.T, user, pass string, scopes ...string) (int, []Access) {
	t.Helper()
	q := url.Values{"service": {g.Service}, "scope": scopes}
	status, body := g.call(t, apiCall{method: "GET", path: "/jwt/auth?" + q.Encode(), auth: basic(user, pass)})
	if status != http.StatusOK {
		return status, nil
	}
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(resp.Token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		jwt.RegisteredClaims
		Access []Access `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return status, claims.Access
}

func TestJobTokens(t *testing.T) {
	g := fakeGitLab(t)
	g.AddProject("team/other")
	dev := g.NewJobToken("team/infra", RoleDeveloper)
	maint := g.NewJobToken("team/infra", RoleMaintainer)

	status, access := g.jwtAccess(t, jobTokenUser, dev,
		"repository:team/infra/web:pull,push,delete", "repository:team/other/web:pull,push", "registry:catalog:*")
	if status != http.StatusOK || len(access) != 1 || access[0].Name != "team/infra/web" || strings.Join(access[0].Actions, ",") != "pull,push" {
		t.Fatalf("developer job token: status %d access %+v, want pull,push on team/infra/web only", status, access)
	}
	_, access = g.jwtAccess(t, jobTokenUser, maint, "repository:team/infra/web:pull,push,delete")
	if len(access) != 1 || strings.Join(access[0].Actions, ",") != "pull,push,delete" {
		t.Fatalf("maintainer job token: access %+v, want pull,push,delete", access)
	}
	if status, _ := g.jwtAccess(t, "someone", dev, "repository:team/infra/web:pull"); status != http.StatusUnauthorized {
		t.Fatalf("a job token under another user name: status %d, want 401", status)
	}
	if _, access := g.jwtAccess(t, "root", g.Token(), "repository:team/other/web:pull,push"); len(access) != 1 {
		t.Fatalf("the personal token lost its grants: %+v", access)
	}

	// The project API refuses job tokens; the registry API of the own
	// project takes them.
	g.expect(t, apiCall{method: "GET", path: "/api/v4/projects/team%2Finfra", auth: header("JOB-TOKEN", maint)}, http.StatusUnauthorized)
	g.expect(t, apiCall{method: "GET", path: "/api/v4/projects/team%2Finfra/registry/repositories", auth: header("JOB-TOKEN", maint)}, http.StatusOK)
	g.expect(t, apiCall{method: "GET", path: "/api/v4/projects/team%2Fother/registry/repositories", auth: header("JOB-TOKEN", maint)}, http.StatusNotFound)
	g.expect(t, apiCall{method: "GET", path: "/api/v4/projects/team%2Finfra", auth: header("PRIVATE-TOKEN", g.Token())}, http.StatusOK)
}

func TestMergeRequestNotes(t *testing.T) {
	g := fakeGitLab(t)
	iid := g.OpenMergeRequest("team/infra")
	notes := "/api/v4/projects/team%2Finfra/merge_requests/" + strconv.Itoa(iid) + "/notes"
	g.expect(t, apiCall{method: "POST", path: notes, auth: header("PRIVATE-TOKEN", g.Token()), body: `{"body":"plan: 3 to add"}`}, http.StatusCreated)
	job := g.NewJobToken("team/infra", RoleMaintainer)
	g.expect(t, apiCall{method: "POST", path: notes, auth: header("JOB-TOKEN", job), body: `{"body":"x"}`}, http.StatusUnauthorized)
	g.expect(t, apiCall{method: "POST", path: notes, auth: basic(jobTokenUser, job), body: `{"body":"x"}`}, http.StatusUnauthorized)
	g.expect(t, apiCall{method: "POST", path: "/api/v4/projects/team%2Finfra/merge_requests/99/notes", auth: header("PRIVATE-TOKEN", g.Token()), body: `{"body":"x"}`}, http.StatusNotFound)
	got := g.Notes("team/infra", iid)
	if len(got) != 1 || got[0].Body != "plan: 3 to add" || got[0].Author != "root" {
		t.Fatalf("notes = %+v, want the one posted with the access token", got)
	}
}

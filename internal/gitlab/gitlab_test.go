package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeGitLab serves the parts of the GitLab API v4 the client calls.
type fakeGitLab struct {
	// projects by ID; also found by path_with_namespace.
	projects map[int64]map[string]any
	// repos is the project's registry repositories (same for every project).
	repos   []map[string]any
	perPage int
	// user answered at /user; status overrides a 200 when set.
	user       string
	userStatus int
	// tags present: "repoID/tag"; deleteStatus overrides the answer when set.
	tags         map[string]bool
	deleteStatus int

	mu       sync.Mutex
	requests []seen
}

// seen is one request as the fake received it.
type seen struct {
	Method, Path, RawPath, PrivateToken, JobToken, Page string
}

func (f *fakeGitLab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, seen{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
		PrivateToken: r.Header.Get("PRIVATE-TOKEN"), JobToken: r.Header.Get("JOB-TOKEN"),
		Page: r.URL.Query().Get("page"),
	})
	// Route on the escaped path, as GitLab does: a project path arrives as one
	// segment, "group%2Fproject".
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		parts[i], _ = url.PathUnescape(p)
	}
	switch {
	case r.Method == http.MethodGet && rest == "user":
		if f.userStatus != 0 {
			w.WriteHeader(f.userStatus)
			_, _ = w.Write([]byte(`{"message":"403 Forbidden"}`))
			return
		}
		writeJSON(w, map[string]any{"id": 1, "username": f.user})
	case parts[0] != "projects" || len(parts) < 2 || f.project(parts[1]) == nil:
		notFound(w)
	case r.Method == http.MethodGet && len(parts) == 2:
		writeJSON(w, f.project(parts[1]))
	case r.Method == http.MethodGet && len(parts) == 4 && parts[2] == "registry" && parts[3] == "repositories":
		f.listRepos(w, r)
	case r.Method == http.MethodDelete && len(parts) == 7 && parts[2] == "registry" && parts[5] == "tags":
		if f.deleteStatus != 0 {
			w.WriteHeader(f.deleteStatus)
			_, _ = w.Write([]byte(`{"message":"nope"}`))
			return
		}
		key := parts[4] + "/" + parts[6]
		if !f.tags[key] {
			notFound(w)
			return
		}
		delete(f.tags, key)
		w.WriteHeader(http.StatusOK)
	default:
		notFound(w)
	}
}

// project finds a project by numeric ID or path_with_namespace.
func (f *fakeGitLab) project(id string) map[string]any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return f.projects[n]
	}
	for _, p := range f.projects {
		if p["path_with_namespace"] == id {
			return p
		}
	}
	return nil
}

func (f *fakeGitLab) listRepos(w http.ResponseWriter, r *http.Request) {
	pageNo, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if pageNo < 1 {
		pageNo = 1
	}
	per := f.perPage
	total := len(f.repos)
	pages := (total + per - 1) / per
	start := min((pageNo-1)*per, total)
	end := min(start+per, total)
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(pageNo))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	if pageNo < pages {
		h.Set("X-Next-Page", strconv.Itoa(pageNo+1))
	} else {
		h.Set("X-Next-Page", "")
	}
	writeJSON(w, f.repos[start:end])
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"message":"404 Not Found"}`))
}

func (f *fakeGitLab) seen() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...)
}

func newFakeGitLab() *fakeGitLab {
	return &fakeGitLab{
		projects: map[int64]map[string]any{
			42: {
				"id": 42, "path_with_namespace": "Group/Sub/My.Project",
				"container_registry_access_level": "enabled",
				"container_registry_image_prefix": "registry.example.com:5050/group/sub/my.project",
			},
			43: {
				"id": 43, "path_with_namespace": "group/off",
				"container_registry_access_level": "disabled",
				"container_registry_image_prefix": "registry.example.com/group/off",
			},
			44: {
				"id": 44, "path_with_namespace": "group/noregistry",
				"container_registry_access_level": "enabled",
			},
			45: {
				"id": 45, "path_with_namespace": "Group/HostOnly",
				"container_registry_access_level": "private",
				"container_registry_image_prefix": "registry.example.com",
			},
		},
		perPage: 2,
		user:    "alice",
		tags:    map[string]bool{},
	}
}

// start serves f and returns a client for it.
func start(t *testing.T, f *fakeGitLab, cfg Config) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL + "/"
	if cfg.Token == "" {
		cfg.Token = "glpat-test"
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProject(t *testing.T) {
	tests := []struct {
		name        string
		registryURL string
		id          string
		want        Project
		wantPath    string // request path as decoded by the server
		wantRawPath string // as sent, when the client escaped it
	}{
		{
			name: "by path", id: "Group/Sub/My.Project",
			want:     Project{ID: 42, PathWithNamespace: "Group/Sub/My.Project", RegistryHost: "registry.example.com:5050", RegistryPath: "group/sub/my.project"},
			wantPath: "/api/v4/projects/Group/Sub/My.Project", wantRawPath: "/api/v4/projects/Group%2FSub%2FMy%2EProject",
		},
		{
			name: "by numeric ID", id: "42",
			want:     Project{ID: 42, PathWithNamespace: "Group/Sub/My.Project", RegistryHost: "registry.example.com:5050", RegistryPath: "group/sub/my.project"},
			wantPath: "/api/v4/projects/42",
		},
		{
			name: "host-only prefix falls back to the lowercased project path", id: "45",
			want:     Project{ID: 45, PathWithNamespace: "Group/HostOnly", RegistryHost: "registry.example.com", RegistryPath: "group/hostonly"},
			wantPath: "/api/v4/projects/45",
		},
		{
			name: "registry URL override https", id: "42", registryURL: "https://mirror.internal:8443",
			want:     Project{ID: 42, PathWithNamespace: "Group/Sub/My.Project", RegistryHost: "mirror.internal:8443", RegistryPath: "group/sub/my.project"},
			wantPath: "/api/v4/projects/42",
		},
		{
			name: "registry URL override http is insecure", id: "42", registryURL: "http://127.0.0.1:5000/",
			want:     Project{ID: 42, PathWithNamespace: "Group/Sub/My.Project", RegistryHost: "127.0.0.1:5000", RegistryPath: "group/sub/my.project", Insecure: true},
			wantPath: "/api/v4/projects/42",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab()
			c := start(t, f, Config{RegistryURL: tt.registryURL})
			got, err := c.Project(context.Background(), tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Project = %+v, want %+v", got, tt.want)
			}
			reqs := f.seen()
			if len(reqs) != 1 {
				t.Fatalf("requests = %+v, want one", reqs)
			}
			if reqs[0].Method != http.MethodGet || reqs[0].Path != tt.wantPath || reqs[0].RawPath != tt.wantRawPath {
				t.Errorf("request = %s %s (raw %q), want GET %s (raw %q)", reqs[0].Method, reqs[0].Path, reqs[0].RawPath, tt.wantPath, tt.wantRawPath)
			}
		})
	}
}

func TestProjectErrors(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantIs  error
		wantMsg string
	}{
		{"unknown path", "group/missing", ErrNotFound, `"group/missing"`},
		{"unknown ID", "999", ErrNotFound, `"999"`},
		{"registry disabled", "43", ErrRegistryDisabled, `"group/off"`},
		{"no image prefix", "44", nil, "container_registry_image_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := start(t, newFakeGitLab(), Config{})
			p, err := c.Project(context.Background(), tt.id)
			if err == nil {
				t.Fatalf("Project = %+v, want an error", p)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantIs == nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrRegistryDisabled)) {
				t.Errorf("err = %v, want neither sentinel", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to mention %s", err, tt.wantMsg)
			}
			if p != (Project{}) {
				t.Errorf("Project = %+v alongside error", p)
			}
		})
	}
}

func TestNewRejectsBadRegistryURL(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1", Token: "x", RegistryURL: "registry.example.com"}); err == nil {
		t.Error("New accepted a registry URL without a scheme")
	}
}

func TestRegistryUsernameAndAuthHeader(t *testing.T) {
	tests := []struct {
		name         string
		jobToken     bool
		user         string
		userStatus   int
		want         string
		wantRequests int
	}{
		{"job token", true, "alice", 0, "gitlab-ci-token", 0},
		{"personal access token", false, "alice", 0, "alice", 1},
		{"/user forbidden", false, "alice", http.StatusForbidden, "imagesync", 1},
		{"/user without username", false, "", 0, "imagesync", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab()
			f.user, f.userStatus = tt.user, tt.userStatus
			c := start(t, f, Config{Token: "secret-token", JobToken: tt.jobToken})
			if got := c.RegistryUsername(context.Background()); got != tt.want {
				t.Errorf("RegistryUsername = %q, want %q", got, tt.want)
			}
			reqs := f.seen()
			if len(reqs) != tt.wantRequests {
				t.Fatalf("requests = %+v, want %d", reqs, tt.wantRequests)
			}
			if tt.wantRequests > 0 && reqs[0].Path != "/api/v4/user" {
				t.Errorf("request path = %q, want /api/v4/user", reqs[0].Path)
			}

			// Any API call carries the token in the header matching its kind.
			if _, err := c.Project(context.Background(), "42"); err != nil {
				t.Fatal(err)
			}
			reqs = f.seen()
			last := reqs[len(reqs)-1]
			wantPrivate, wantJob := "secret-token", ""
			if tt.jobToken {
				wantPrivate, wantJob = "", "secret-token"
			}
			if last.PrivateToken != wantPrivate || last.JobToken != wantJob {
				t.Errorf("PRIVATE-TOKEN = %q, JOB-TOKEN = %q; want %q, %q", last.PrivateToken, last.JobToken, wantPrivate, wantJob)
			}
		})
	}
}

func TestRepositoryID(t *testing.T) {
	project := Project{ID: 42, PathWithNamespace: "Group/Sub/My.Project", RegistryHost: "registry.example.com", RegistryPath: "group/sub/my.project"}
	repos := []map[string]any{
		{"id": 1, "path": "group/sub/my.project/web"},
		{"id": 2, "path": "group/sub/my.project/team/api"},
		{"id": 3, "path": "group/sub/my.project"},
		{"id": 4, "path": "group/sub/my.project/Worker"},
		{"id": 5, "path": "group/sub/my.project/last"},
	}
	tests := []struct {
		name      string
		image     string
		want      int64
		wantPages []string
		notFound  bool
	}{
		{"first page", "web", 1, []string{"1"}, false},
		{"nested image on first page", "team/api", 2, []string{"1"}, false},
		{"project root image on second page", "", 3, []string{"1", "2"}, false},
		{"case-insensitive match", "worker", 4, []string{"1", "2"}, false},
		{"last page", "last", 5, []string{"1", "2", "3"}, false},
		{"not found after all pages", "nope", 0, []string{"1", "2", "3"}, true},
		{"prefix alone does not match", "we", 0, []string{"1", "2", "3"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab()
			f.repos = repos
			c := start(t, f, Config{})
			got, err := c.RepositoryID(context.Background(), project, tt.image)
			if tt.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("RepositoryID = %d, want %d", got, tt.want)
			}
			var pages []string
			for _, r := range f.seen() {
				if r.Path != "/api/v4/projects/42/registry/repositories" {
					t.Errorf("unexpected request %s %s", r.Method, r.Path)
				}
				pages = append(pages, r.Page)
			}
			if strings.Join(pages, ",") != strings.Join(tt.wantPages, ",") {
				t.Errorf("pages requested = %q, want %q", pages, tt.wantPages)
			}
		})
	}

	t.Run("unknown project", func(t *testing.T) {
		c := start(t, newFakeGitLab(), Config{})
		_, err := c.RepositoryID(context.Background(), Project{ID: 999, PathWithNamespace: "gone/project"}, "web")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gone/project") {
			t.Fatalf("err = %v, want ErrNotFound naming the project", err)
		}
	})
}

func TestDeleteTag(t *testing.T) {
	project := Project{ID: 42, PathWithNamespace: "group/project"}
	tests := []struct {
		name    string
		tag     string
		present bool
		status  int
		wantErr bool
	}{
		{"present", "v1.2.3", true, 0, false},
		{"already gone", "v9", false, 0, false},
		{"forbidden", "v1", true, http.StatusForbidden, true},
		{"bad request", "v1", true, http.StatusBadRequest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGitLab()
			f.deleteStatus = tt.status
			if tt.present {
				f.tags["7/"+tt.tag] = true
			}
			c := start(t, f, Config{})
			err := c.DeleteTag(context.Background(), project, 7, tt.tag)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DeleteTag err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(err.Error(), tt.tag) {
				t.Errorf("err = %q, want it to name tag %q", err, tt.tag)
			}
			if !tt.wantErr && f.tags["7/"+tt.tag] {
				t.Errorf("tag %q still present", tt.tag)
			}
			reqs := f.seen()
			if len(reqs) != 1 {
				t.Fatalf("requests = %+v, want one", reqs)
			}
			want := "/api/v4/projects/42/registry/repositories/7/tags/" + tt.tag
			if reqs[0].Method != http.MethodDelete || reqs[0].Path != want {
				t.Errorf("request = %s %s, want DELETE %s", reqs[0].Method, reqs[0].Path, want)
			}
		})
	}
}

func TestParseRegistryURL(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantErr  bool
	}{
		{"https://registry.example.com", "registry.example.com", false},
		{"https://registry.example.com:5050/", "registry.example.com:5050", false},
		{"http://127.0.0.1:5000", "127.0.0.1:5000", false},
		{"ftp://registry.example.com", "", true},
		{"https://registry.example.com/group", "", true},
		{"https:///path-only", "", true},
		{"https://", "", true},
		{"registry.example.com", "", true},
		{"://bad", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		u, err := ParseRegistryURL(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRegistryURL(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseRegistryURL(%q) err = %q, want it to quote the input", tt.in, err)
			}
			continue
		}
		if u.Host != tt.wantHost {
			t.Errorf("ParseRegistryURL(%q).Host = %q, want %q", tt.in, u.Host, tt.wantHost)
		}
	}
}

func TestImageReference(t *testing.T) {
	p := Project{RegistryHost: "registry.example.com:5050", RegistryPath: "group/project"}
	tests := map[string]string{
		"":         "registry.example.com:5050/group/project",
		"web":      "registry.example.com:5050/group/project/web",
		"team/api": "registry.example.com:5050/group/project/team/api",
	}
	for image, want := range tests {
		if got := p.ImageReference(image); got != want {
			t.Errorf("ImageReference(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestInsecureRegistry(t *testing.T) {
	tests := []struct {
		registryURL, host string
		want              bool
	}{
		{"", "127.0.0.1:5000", false},
		{"http://127.0.0.1:5000", "127.0.0.1:5000", true},
		{"http://127.0.0.1:5000", "127.0.0.1:5001", false},
		{"https://127.0.0.1:5000", "127.0.0.1:5000", false},
	}
	for _, tt := range tests {
		c, err := New(Config{BaseURL: "http://127.0.0.1:1", Token: "x", RegistryURL: tt.registryURL})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.InsecureRegistry(tt.host); got != tt.want {
			t.Errorf("registry %q: InsecureRegistry(%q) = %v, want %v", tt.registryURL, tt.host, got, tt.want)
		}
	}
}

// GitLab does not let CI job tokens read the project API: with the registry
// URL known, the project is assumed from its path; without it, or by numeric
// ID, the lookup fails as before.
func TestProjectWithJobTokenAndNoProjectAPI(t *testing.T) {
	f := newFakeGitLab()
	f.projects = map[int64]map[string]any{} // every project lookup answers 404
	c := start(t, f, Config{Token: "job", JobToken: true, RegistryURL: "https://registry.example.com"})
	p, err := c.Project(context.Background(), "Group/App")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Assumed || p.RegistryHost != "registry.example.com" || p.RegistryPath != "group/app" || p.Insecure {
		t.Fatalf("assumed project = %+v, want registry.example.com/group/app, Assumed", p)
	}
	if got := p.ImageReference("api"); got != "registry.example.com/group/app/api" {
		t.Fatalf("ImageReference = %q", got)
	}
	if p.pid() != "Group/App" {
		t.Fatalf("registry API names the project %v, want its path", p.pid())
	}
	if _, err := c.Project(context.Background(), "42"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("numeric ID with a job token: %v, want ErrNotFound", err)
	}
	noRegistry := start(t, f, Config{Token: "job", JobToken: true})
	if _, err := noRegistry.Project(context.Background(), "Group/App"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("without a registry URL: %v, want ErrNotFound", err)
	}
	personal := start(t, f, Config{Token: "glpat", RegistryURL: "https://registry.example.com"})
	if _, err := personal.Project(context.Background(), "Group/App"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a personal token that cannot see the project: %v, want ErrNotFound", err)
	}
}

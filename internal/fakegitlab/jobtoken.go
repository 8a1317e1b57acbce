package fakegitlab

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
)

// Role is a project member's role, as far as the fake GitLab tells them apart.
type Role int

const (
	// RoleDeveloper may read Terraform state and push images, but not lock
	// or write state: plans run with -lock=false.
	RoleDeveloper Role = iota + 1
	// RoleMaintainer may also lock and write Terraform state.
	RoleMaintainer
)

func (r Role) String() string {
	if r == RoleMaintainer {
		return "maintainer"
	}
	return "developer"
}

// jobTokenUser is the user name that goes with CI_JOB_TOKEN, as in
// CI_REGISTRY_USER.
const jobTokenUser = "gitlab-ci-token" // #nosec G101 -- a user name, not a token

// jobToken is one CI job's token: bound to the job's project, with the role
// of the user who started the pipeline.
type jobToken struct {
	token   string
	project string // path_with_namespace
	role    Role
	user    string
}

type jobTokens struct {
	mu     sync.Mutex
	tokens []*jobToken
}

// NewJobToken issues a CI job token (CI_JOB_TOKEN, also CI_REGISTRY_PASSWORD)
// for a job of projectPath started by a user with role. As in GitLab it may
// use the container registry of its own project, that project's registry API
// and Terraform state API, and nothing else: not the project API, not merge
// request notes, not another project's images. The project is added if new.
func (g *GitLab) NewJobToken(projectPath string, role Role) string {
	p := g.AddProject(projectPath)
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	t := &jobToken{token: "glcbt-" + hex.EncodeToString(b), project: p.Path, role: role, user: "ci-" + role.String()}
	g.jobTokens.mu.Lock()
	defer g.jobTokens.mu.Unlock()
	g.jobTokens.tokens = append(g.jobTokens.tokens, t)
	return t.token
}

// jobToken finds the job token that user and pass present, nil when they do not.
func (g *GitLab) jobToken(user, pass string) *jobToken {
	if user != jobTokenUser || pass == "" {
		return nil
	}
	return g.findJobToken(pass)
}

func (g *GitLab) findJobToken(token string) *jobToken {
	g.jobTokens.mu.Lock()
	defer g.jobTokens.mu.Unlock()
	for _, t := range g.jobTokens.tokens {
		if subtle.ConstantTimeCompare([]byte(t.token), []byte(token)) == 1 {
			return t
		}
	}
	return nil
}

// jobTokenOf finds a job token in the headers GitLab accepts one from: the
// JOB-TOKEN header, or HTTP basic auth as gitlab-ci-token.
func (g *GitLab) jobTokenOf(r *http.Request) *jobToken {
	if t := r.Header.Get("JOB-TOKEN"); t != "" {
		return g.findJobToken(t)
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return g.jobToken(user, pass)
	}
	return nil
}

// ownsImage tells whether image lies in the token's project.
func (t *jobToken) ownsImage(g *GitLab, image string) bool {
	p := g.projectOfImage(image)
	return p != nil && strings.EqualFold(p.Path, t.project)
}

// restrict cuts a registry grant down to what a job token gets: pull and
// push on its own project's images (delete as well for a Maintainer's job),
// nothing on other projects or the catalog. It reports whether anything is
// left.
func (t *jobToken) restrict(g *GitLab, a *Access) bool {
	if a.Type != "repository" || !t.ownsImage(g, a.Name) {
		return false
	}
	var kept []string
	for _, action := range a.Actions {
		switch {
		case action == "pull" || action == "push":
			kept = append(kept, action)
		case action == "delete" && t.role == RoleMaintainer:
			kept = append(kept, action)
		}
	}
	a.Actions = kept
	return len(kept) > 0
}

// serveCIAPI answers the API routes that CI pipelines use beyond the
// provider's: the Terraform state API and merge request notes, each with its
// own authentication, and every request made with a job token, which GitLab
// accepts only on a few routes of the job's own project. It reports whether
// it answered; if not, the request goes on to the ordinary API.
func (g *GitLab) serveCIAPI(w http.ResponseWriter, r *http.Request, segs []string) bool {
	if len(segs) >= 5 && segs[0] == "projects" && segs[2] == "terraform" && segs[3] == "state" {
		g.serveState(w, r, segs[1], segs[4:])
		return true
	}
	if len(segs) == 5 && segs[0] == "projects" && segs[2] == "merge_requests" && segs[4] == "notes" {
		g.serveNotes(w, r, segs[1], segs[3])
		return true
	}
	job := g.jobTokenOf(r)
	if job == nil {
		return false
	}
	// The registry API of the job's own project; everything else (the
	// project API above all) refuses job tokens.
	if len(segs) >= 4 && segs[0] == "projects" && segs[2] == "registry" && segs[3] == "repositories" {
		if p := g.findProject(segs[1]); p != nil && strings.EqualFold(p.Path, job.project) {
			g.serveProject(w, r, *p, segs[2:])
			return true
		}
		writeMsg(w, http.StatusNotFound, "404 Project Not Found")
		return true
	}
	writeMsg(w, http.StatusUnauthorized, "401 Unauthorized")
	return true
}

// principal is who an API request authenticates as.
type principal struct {
	username string
	job      *jobToken // nil for the personal access token
}

// role is the principal's role in project; 0 means no access.
func (p principal) role(project Project) Role {
	if p.job == nil {
		return RoleMaintainer // the personal token's user administers everything
	}
	if strings.EqualFold(p.job.project, project.Path) {
		return p.job.role
	}
	return 0
}

// authenticate reads the credentials routes like the state API accept:
// PRIVATE-TOKEN or a bearer token (personal), or HTTP basic auth with the
// personal token as password (any user name) or gitlab-ci-token and a job
// token. The JOB-TOKEN header is refused, as GitLab allows job tokens there
// only through basic auth.
func (g *GitLab) authenticate(r *http.Request) (principal, bool) {
	if t := r.Header.Get("PRIVATE-TOKEN"); t != "" {
		return principal{username: "root"}, g.validToken(t)
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		return principal{username: "root"}, g.validToken(strings.TrimPrefix(a, "Bearer "))
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return principal{}, false
	}
	if job := g.jobToken(user, pass); job != nil {
		return principal{username: job.user, job: job}, true
	}
	return principal{username: "root"}, user != jobTokenUser && g.validToken(pass)
}

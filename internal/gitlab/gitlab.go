// Package gitlab is the GitLab side of the migration: project lookup, the
// container registry's location and credentials, and tag deletion through the
// GitLab API (never by manifest digest, which would remove every tag on it).
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/sync/singleflight"
)

// ErrNotFound reports a project, image repository or tag that does not exist.
var ErrNotFound = errors.New("not found in GitLab")

// ErrRegistryDisabled reports a project whose container registry is off.
var ErrRegistryDisabled = errors.New("the project's container registry is disabled")

// Config locates GitLab and says who we are.
type Config struct {
	BaseURL string
	Token   string
	// JobToken marks Token as a CI job token (CI_JOB_TOKEN).
	JobToken bool
	// RegistryURL overrides the registry location discovered from projects.
	RegistryURL string
	HTTPClient  *http.Client
	UserAgent   string
}

// Client talks to one GitLab instance.
type Client struct {
	api         *gl.Client
	cfg         Config
	registryURL *url.URL

	// Project lookups are kept for a while: one plan looks each project up
	// once, however many resources share it.
	lookups  singleflight.Group
	mu       sync.Mutex
	projects map[string]projectLookup
	clock    func() time.Time
}

// projectCacheTTL is how long a project lookup is reused.
const projectCacheTTL = 2 * time.Minute

type projectLookup struct {
	at      time.Time
	project Project
	err     error
}

// New builds a client; it makes no request.
func New(cfg Config) (*Client, error) {
	opts := []gl.ClientOptionFunc{gl.WithBaseURL(strings.TrimSuffix(cfg.BaseURL, "/") + "/api/v4")}
	if cfg.HTTPClient != nil {
		opts = append(opts, gl.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, gl.WithUserAgent(cfg.UserAgent))
	}
	opts = append(opts, gl.WithCustomRetryMax(3))
	// A personal, project or group token goes in PRIVATE-TOKEN, a CI job
	// token in JOB-TOKEN.
	var auth gl.AuthSource = gl.AccessTokenAuthSource{Token: cfg.Token}
	if cfg.JobToken {
		auth = gl.JobTokenAuthSource{Token: cfg.Token}
	}
	api, err := gl.NewAuthSourceClient(auth, opts...)
	if err != nil {
		return nil, fmt.Errorf("building the GitLab API client: %w", err)
	}
	c := &Client{api: api, cfg: cfg, projects: map[string]projectLookup{}, clock: time.Now}
	if cfg.RegistryURL != "" {
		u, err := ParseRegistryURL(cfg.RegistryURL)
		if err != nil {
			return nil, err
		}
		c.registryURL = u
	}
	return c, nil
}

// ParseRegistryURL checks a registry URL: http or https, a host, no path.
func ParseRegistryURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid registry URL %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid registry URL %q: expected https://host[:port]", s)
	}
	if strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("invalid registry URL %q: expected no path after the host", s)
	}
	return u, nil
}

// Project is the part of a GitLab project the migration needs.
type Project struct {
	ID                int64
	PathWithNamespace string
	// Assumed: known from its path and the registry URL only, because the
	// token (a CI job token) may not read the project API. Nothing about the
	// project's existence can be concluded then.
	Assumed bool
	// RegistryHost is the registry's host[:port]; RegistryPath the image prefix below it.
	RegistryHost string
	RegistryPath string
	// Insecure marks a plain-HTTP registry (local testing only).
	Insecure bool
}

// ImageReference is the full reference of an image under the project.
func (p Project) ImageReference(image string) string {
	if image == "" {
		return p.RegistryHost + "/" + p.RegistryPath
	}
	return p.RegistryHost + "/" + p.RegistryPath + "/" + image
}

func isNumeric(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// pid is how the API client names the project: its ID, else its path.
func (p Project) pid() any {
	if p.ID != 0 {
		return p.ID
	}
	return p.PathWithNamespace
}

// projectID turns a numeric string into a number, as the API client expects.
func projectID(idOrPath string) any {
	if n, err := strconv.ParseInt(idOrPath, 10, 64); err == nil {
		return n
	}
	return idOrPath
}

// Project looks a project up by path or numeric ID. A lookup, and an answer
// that the project is missing or has no registry, is reused for a while;
// other failures are not.
func (c *Client) Project(ctx context.Context, idOrPath string) (Project, error) {
	c.mu.Lock()
	hit, ok := c.projects[idOrPath]
	c.mu.Unlock()
	if ok && c.clock().Sub(hit.at) < projectCacheTTL {
		return hit.project, hit.err
	}
	v, err, _ := c.lookups.Do(idOrPath, func() (any, error) {
		p, err := c.lookUpProject(ctx, idOrPath)
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRegistryDisabled) {
			c.mu.Lock()
			c.projects[idOrPath] = projectLookup{at: c.clock(), project: p, err: err}
			c.mu.Unlock()
		}
		return p, err
	})
	return v.(Project), err //nolint:forcetypeassert // lookUpProject returns a Project
}

func (c *Client) lookUpProject(ctx context.Context, idOrPath string) (Project, error) {
	p, _, err := c.api.Projects.GetProject(projectID(idOrPath), nil, gl.WithContext(ctx))
	if err != nil && c.cfg.JobToken && c.registryURL != nil && !isNumeric(idOrPath) && ctx.Err() == nil {
		// GitLab lets CI job tokens use the container registry, and the
		// registry API of the job's own project, but not the project API: the
		// image prefix is then the project's path, lowercased, on the registry.
		return Project{
			PathWithNamespace: idOrPath, RegistryHost: c.registryURL.Host, RegistryPath: strings.ToLower(idOrPath),
			Insecure: c.registryURL.Scheme == "http", Assumed: true,
		}, nil
	}
	if err != nil {
		if errors.Is(err, gl.ErrNotFound) {
			return Project{}, fmt.Errorf("project %q: %w (or the token cannot see it)", idOrPath, ErrNotFound)
		}
		return Project{}, fmt.Errorf("looking up GitLab project %q: %w", idOrPath, err)
	}
	if p.ContainerRegistryAccessLevel == gl.DisabledAccessControl {
		return Project{}, fmt.Errorf("project %q: %w", p.PathWithNamespace, ErrRegistryDisabled)
	}
	prefix := p.ContainerRegistryImagePrefix
	if prefix == "" {
		return Project{}, fmt.Errorf("project %q: GitLab reports no container_registry_image_prefix; is the container registry enabled on this instance? Set gitlab.registry_url if it is", p.PathWithNamespace)
	}
	host, path, _ := strings.Cut(prefix, "/")
	if path == "" {
		path = strings.ToLower(p.PathWithNamespace)
	}
	proj := Project{ID: p.ID, PathWithNamespace: p.PathWithNamespace, RegistryHost: host, RegistryPath: path}
	if c.registryURL != nil {
		proj.RegistryHost = c.registryURL.Host
		proj.Insecure = c.registryURL.Scheme == "http"
	}
	return proj, nil
}

// RegistryUsername is the user name to present to the registry's token service.
// Job tokens use gitlab-ci-token; personal, project and group access tokens use
// the token's user, which GitLab reports at /user.
func (c *Client) RegistryUsername(ctx context.Context) string {
	if c.cfg.JobToken {
		return "gitlab-ci-token"
	}
	u, _, err := c.api.Users.CurrentUser(gl.WithContext(ctx))
	if err != nil || u.Username == "" {
		// Tokens without read_user still log in: GitLab checks the token, not the name.
		return "imagesync"
	}
	return u.Username
}

// RepositoryID finds the registry repository ID of an image under a project.
func (c *Client) RepositoryID(ctx context.Context, project Project, image string) (int64, error) {
	want := project.RegistryPath
	if image != "" {
		want += "/" + image
	}
	opt := &gl.ListProjectRegistryRepositoriesOptions{ListOptions: gl.ListOptions{PerPage: 100, Page: 1}}
	for {
		repos, resp, err := c.api.ContainerRegistry.ListProjectRegistryRepositories(project.pid(), opt, gl.WithContext(ctx))
		if err != nil {
			if errors.Is(err, gl.ErrNotFound) {
				return 0, fmt.Errorf("project %q: %w", project.PathWithNamespace, ErrNotFound)
			}
			return 0, fmt.Errorf("listing registry repositories of %q: %w", project.PathWithNamespace, err)
		}
		for _, r := range repos {
			if strings.EqualFold(r.Path, want) {
				return r.ID, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return 0, fmt.Errorf("image %q in project %q: %w", image, project.PathWithNamespace, ErrNotFound)
		}
		opt.Page = resp.NextPage
	}
}

// DeleteTag deletes one tag of an image repository; a tag already gone is not an error.
func (c *Client) DeleteTag(ctx context.Context, project Project, repositoryID int64, tag string) error {
	_, err := c.api.ContainerRegistry.DeleteRegistryRepositoryTag(project.pid(), repositoryID, tag, gl.WithContext(ctx))
	if err != nil && !errors.Is(err, gl.ErrNotFound) {
		return fmt.Errorf("deleting tag %q: %w", tag, err)
	}
	return nil
}

// InsecureRegistry tells whether host is the configured plain-HTTP registry.
func (c *Client) InsecureRegistry(host string) bool {
	return c.registryURL != nil && c.registryURL.Host == host && c.registryURL.Scheme == "http"
}

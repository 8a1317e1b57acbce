package fakegitlab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// GitLab's registry serves its own API beside /v2/ where it has its metadata
// database (GitLab.com, current self-managed releases): GET /gitlab/v1/, and
// GET /gitlab/v1/repositories/<path>/tags/list/, each tag's name and digest,
// paged by n (1-1,000, default 100) and last, the next page in a Link header,
// 404 NAME_UNKNOWN for an unknown repository, the same bearer token as /v2/
// (gitlab-org/container-registry, docs/spec/gitlab/api.md, "List Repository
// Tags"). distribution has no database, so the proxy answers the listing
// itself, built for each request from the registry behind it:
// /v2/<path>/tags/list for the names and a HEAD per tag for the digests.
// Turned off, /gitlab/v1/ reaches distribution, which answers 404 as a
// registry without the database does.
type tagsAPI struct {
	off     atomic.Bool
	backend atomic.Pointer[url.URL]
	client  *http.Client
}

const (
	tagsPageDefault = 100
	tagsPageMax     = 1000
)

var tagsListPath = regexp.MustCompile(`^/gitlab/v1/repositories/(.+)/tags/list/?$`)

// SetRegistryBackend names the registry behind the proxy (plain HTTP), from
// which the proxy builds GitLab's tag listing.
func (g *GitLab) SetRegistryBackend(backend string) error {
	u, err := url.Parse(backend)
	if err != nil {
		return err
	}
	g.tagsAPI.backend.Store(u)
	return nil
}

// ServeTagsAPI turns GitLab's registry API on (the default, as on GitLab.com)
// or off (a registry without its metadata database: /gitlab/v1/ answers
// 404). It returns the function that restores the previous setting.
func (g *GitLab) ServeTagsAPI(on bool) (restore func()) {
	prev := !g.tagsAPI.off.Swap(!on)
	return func() { g.tagsAPI.off.Store(!prev) }
}

// serveTagsAPI answers /gitlab/v1/ requests when the API is on.
func (a *tagsAPI) serve(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/gitlab/v1/") || a.off.Load() || a.backend.Load() == nil || r.Method != http.MethodGet {
		return false
	}
	if r.URL.Path == "/gitlab/v1/" {
		a.serveRoot(w, r)
		return true
	}
	m := tagsListPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m == nil:
		writeRegistryError(w, http.StatusNotFound, "NOT_FOUND", "route not served by this fake", nil)
	case !strings.HasSuffix(r.URL.Path, "/"): // the API's strict slash
		u := *r.URL
		u.Path += "/"
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
	default:
		a.serveTagsList(w, r, m[1])
	}
	return true
}

// serveRoot answers as /v2/ does for the same token: 200, or 401 with the
// registry's challenge.
func (a *tagsAPI) serveRoot(w http.ResponseWriter, r *http.Request) {
	resp, err := a.backendDo(r, http.MethodGet, "/v2/")
	if err != nil {
		writeRegistryError(w, http.StatusBadGateway, "UNKNOWN", err.Error(), nil)
		return
	}
	resp.Body.Close()
	if c := resp.Header.Get("WWW-Authenticate"); c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	w.WriteHeader(resp.StatusCode)
}

// serveTagsList builds one page of the listing.
func (a *tagsAPI) serveTagsList(w http.ResponseWriter, r *http.Request, repo string) {
	n, ok := pageSize(r.URL.Query())
	if !ok {
		writeRegistryError(w, http.StatusBadRequest, "INVALID_QUERY_PARAMETER_VALUE", "the value of a query parameter is invalid",
			map[string]any{"parameter": "n", "min": 1, "max": tagsPageMax})
		return
	}
	names, answered := a.tagNames(w, r, repo)
	if answered {
		return
	}
	last := r.URL.Query().Get("last")
	page, lastListed := []map[string]any{}, ""
	for _, name := range names {
		if name <= last {
			continue
		}
		if len(page) == n {
			w.Header().Set("Link", fmt.Sprintf(`</gitlab/v1/repositories/%s/tags/list/?last=%s&n=%d>; rel="next"`, repo, url.QueryEscape(lastListed), n))
			break
		}
		entry, err := a.tagDetail(r, repo, name)
		if err != nil {
			writeRegistryError(w, http.StatusBadGateway, "UNKNOWN", err.Error(), nil)
			return
		}
		if entry != nil {
			page, lastListed = append(page, entry), name
		}
	}
	body, _ := json.Marshal(page)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func pageSize(q url.Values) (int, bool) {
	if !q.Has("n") {
		return tagsPageDefault, true
	}
	n, err := strconv.Atoi(q.Get("n"))
	return n, err == nil && n >= 1 && n <= tagsPageMax
}

// tagNames reads every tag name of repo from the registry, sorted; when the
// registry refuses, its answer goes to the client (answered), a 404 as the
// API's NAME_UNKNOWN.
func (a *tagsAPI) tagNames(w http.ResponseWriter, r *http.Request, repo string) (names []string, answered bool) {
	resp, err := a.backendDo(r, http.MethodGet, "/v2/"+repo+"/tags/list")
	if err != nil {
		writeRegistryError(w, http.StatusBadGateway, "UNKNOWN", err.Error(), nil)
		return nil, true
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		writeRegistryError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", map[string]string{"name": repo})
		return nil, true
	default:
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
		return nil, true
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		writeRegistryError(w, http.StatusBadGateway, "UNKNOWN", err.Error(), nil)
		return nil, true
	}
	slices.Sort(list.Tags)
	return list.Tags, false
}

// tagDetail is one listing entry from a HEAD of the tag; nil when the tag
// went away meanwhile.
func (a *tagsAPI) tagDetail(r *http.Request, repo, tag string) (map[string]any, error) {
	resp, err := a.backendDo(r, http.MethodHead, "/v2/"+repo+"/manifests/"+tag)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HEAD %s:%s answered %s", repo, tag, resp.Status)
	}
	created := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	return map[string]any{
		"name":       tag,
		"digest":     resp.Header.Get("Docker-Content-Digest"),
		"media_type": resp.Header.Get("Content-Type"),
		"size_bytes": resp.ContentLength,
		"created_at": created,
	}, nil
}

// manifestTypes are the manifests a HEAD accepts, so distribution answers
// with each manifest's own type and digest.
var manifestTypes = []string{
	"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
}

// backendDo sends a request to the registry behind the proxy with the
// client's own Authorization, so the registry's token rules decide.
func (a *tagsAPI) backendDo(r *http.Request, method, path string) (*http.Response, error) {
	u := *a.backend.Load()
	u.Path = path
	req, err := http.NewRequestWithContext(r.Context(), method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Host = r.Host // the token's audience and the registry's URLs name the proxy
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header["Accept"] = manifestTypes
	return a.client.Do(req)
}

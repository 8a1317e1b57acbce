package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/singleflight"
)

// GitLab's own registry API (/gitlab/v1/, served where the registry has its
// metadata database: GitLab.com and current self-managed releases) lists a
// repository's tags with their digests, up to 1,000 a page: one request where
// the OCI API needs a HEAD per tag. Its shape, from the registry's
// specification (gitlab-org/container-registry, docs/spec/gitlab/api.md,
// "List Repository Tags"): GET /gitlab/v1/repositories/<path>/tags/list/?n=&last=,
// a JSON array of {name, digest, media_type, ...}, the next page in a Link
// header (rel="next"), 404 NAME_UNKNOWN for a repository that does not exist,
// and the same bearer token as /v2/ (pull).

// tagsPageSize is the largest page the registry serves.
const tagsPageSize = 1000

// tagsAPI remembers, per GitLab registry host, whether it serves the listing,
// and which repositories the listing just found absent.
type tagsAPI struct {
	mu     sync.Mutex
	served map[string]bool
	absent map[string]time.Time // repository -> when its listing said NAME_UNKNOWN
	flight singleflight.Group
	client *http.Client
}

func newTagsAPI(t http.RoundTripper) *tagsAPI {
	return &tagsAPI{served: map[string]bool{}, absent: map[string]time.Time{}, client: &http.Client{Transport: t}}
}

// absentFresh is how long a repository found absent is taken as still
// absent without asking again. Terraform's apply plans each resource once
// more right before creating it: the plan's listing then serves the create's,
// and the copy into a new repository checks neither platforms nor blobs.
// Were the repository created meanwhile, the copy only writes again what was
// there.
const absentFresh = 10 * time.Second

func (a *tagsAPI) noteAbsent(repo ref.Ref) {
	a.mu.Lock()
	a.absent[repo.CommonName()] = time.Now()
	a.mu.Unlock()
}

// recentlyAbsent tells whether the listing found repo absent within absentFresh.
func (a *tagsAPI) recentlyAbsent(repo ref.Ref) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.absent[repo.CommonName()]
	return ok && time.Since(at) < absentFresh
}

// takeAbsent reports recentlyAbsent and forgets it, in one step: the caller
// is about to write to the repository.
func (a *tagsAPI) takeAbsent(repo ref.Ref) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, known := a.absent[repo.CommonName()]
	delete(a.absent, repo.CommonName())
	return known && time.Since(at) < absentFresh
}

// listedTag is one entry of the listing; the other fields are not needed.
type listedTag struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// listTagDigests reads the digests of tags from GitLab's listing of base's
// repository. ok is false when the registry does not serve it (or could not
// answer now): then the caller asks with a HEAD per tag, as before.
func (e *Engine) listTagDigests(ctx context.Context, base ref.Ref, tags []string) (found map[string]string, ok bool) {
	if len(tags) == 0 {
		return map[string]string{}, true
	}
	if e.tagsAPI.recentlyAbsent(base) {
		return map[string]string{}, true
	}
	if !e.tagsAPIServed(ctx, base.Registry) {
		return nil, false
	}
	wanted := make(map[string]bool, len(tags))
	for _, t := range tags {
		wanted[t] = true
	}
	found = map[string]string{}
	next := e.registryURL(base.Registry, "/gitlab/v1/repositories/"+base.Repository+"/tags/list/") + fmt.Sprintf("?n=%d", tagsPageSize)
	for next != "" && len(found) < len(wanted) {
		page, link, err := e.tagsPage(ctx, next)
		switch {
		case errors.Is(err, errRepositoryUnknown):
			e.tagsAPI.noteAbsent(base)
			return found, true // no repository, so none of the tags
		case errors.Is(err, errNoTagsRoute):
			e.markTagsAPI(base.Registry, false)
			return nil, false
		case err != nil:
			e.cfg.Logger(ctx, "GitLab's tag listing failed; asking tag by tag", map[string]any{"repository": base.CommonName(), "error": err.Error()})
			return nil, false
		}
		for _, t := range page {
			if wanted[t.Name] {
				found[t.Name] = t.Digest
			}
		}
		next = link
	}
	return found, true
}

var (
	// errRepositoryUnknown is the listing's 404 NAME_UNKNOWN.
	errRepositoryUnknown = errors.New("the registry does not know the repository")
	// errNoTagsRoute is a 404 without it: the registry has no such route.
	errNoTagsRoute = errors.New("the registry does not serve GitLab's tag listing")
)

// tagsPage fetches one page and the URL of the next, if any.
func (e *Engine) tagsPage(ctx context.Context, pageURL string) (page []listedTag, next string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.tagsAPI.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		if code, _, _ := decodeErrorBody(body); code == "NAME_UNKNOWN" {
			return nil, "", errRepositoryUnknown
		}
		return nil, "", errNoTagsRoute
	default:
		return nil, "", fmt.Errorf("GET %s answered %s", req.URL.Path, resp.Status)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("reading GitLab's tag listing: %w", err)
	}
	if link := nextLink(resp.Header.Values("Link")); link != "" {
		u, err := req.URL.Parse(link)
		if err != nil {
			return nil, "", fmt.Errorf("GitLab's tag listing names an invalid next page %q: %w", link, err)
		}
		next = u.String()
	}
	return page, next, nil
}

// nextLink finds the rel="next" target in Link headers such as
// `</gitlab/v1/repositories/a/b/tags/list/?last=v9&n=1000>; rel="next"`.
func nextLink(headers []string) string {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			target, params, _ := strings.Cut(part, ";")
			if strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				return strings.Trim(strings.TrimSpace(target), "<>")
			}
		}
	}
	return ""
}

// tagsAPIServed probes GET /gitlab/v1/ once per host (concurrent first asks
// share the probe): 200, or 401 (the API is there, this login is not
// enough for its root), means served; 404 (or another refusal) means not. A
// probe that fails to get an answer is not remembered.
func (e *Engine) tagsAPIServed(ctx context.Context, host string) bool {
	e.tagsAPI.mu.Lock()
	served, known := e.tagsAPI.served[host]
	e.tagsAPI.mu.Unlock()
	if known {
		return served
	}
	v, _, _ := e.tagsAPI.flight.Do(host, func() (any, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.registryURL(host, "/gitlab/v1/"), nil)
		if err != nil {
			return false, nil //nolint:nilerr // a probe that fails means no listing: HEAD per tag, whose errors count
		}
		resp, err := e.tagsAPI.client.Do(req)
		if err != nil {
			return false, nil //nolint:nilerr // as above
		}
		discard(resp)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return false, nil
		}
		served := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
		e.markTagsAPI(host, served)
		e.cfg.Logger(ctx, "GitLab registry API probed", map[string]any{"host": host, "tags_api": served, "status": resp.StatusCode})
		return served, nil
	})
	return v.(bool) //nolint:forcetypeassert // only bools are returned above
}

func (e *Engine) markTagsAPI(host string, served bool) {
	e.tagsAPI.mu.Lock()
	e.tagsAPI.served[host] = served
	e.tagsAPI.mu.Unlock()
}

// registryURL is an absolute URL on a registry host, plain HTTP where the
// host was configured so (local testing).
func (e *Engine) registryURL(host, path string) string {
	e.mu.Lock()
	h, ok := e.hosts[host]
	e.mu.Unlock()
	scheme := "https"
	if ok && h.TLS == config.TLSDisabled {
		scheme = "http"
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: path}).String()
}

package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// listingRegistry is an open registry holding tags of one repository; with
// tagsAPI it also serves GitLab's tag listing, pageSize entries a page.
type listingRegistry struct {
	srv      *httptest.Server
	repo     string
	tags     map[string]string // tag -> digest
	tagsAPI  bool
	pageSize int

	mu       sync.Mutex
	requests []string // "METHOD path"
}

func newListingRegistry(t *testing.T, tagsAPI bool, tags map[string]string) *listingRegistry {
	f := &listingRegistry{repo: "group/project/app", tags: tags, tagsAPI: tagsAPI, pageSize: 2}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *listingRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	listing := "/gitlab/v1/repositories/" + f.repo + "/tags/list/"
	switch {
	case r.URL.Path == "/v2/":
	case r.URL.Path == "/gitlab/v1/" && f.tagsAPI:
	case r.URL.Path == listing && f.tagsAPI:
		f.serveListing(w, r)
	case strings.HasPrefix(r.URL.Path, "/gitlab/v1/repositories/") && f.tagsAPI:
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprint(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`)
	case r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/"+f.repo+"/manifests/"):
		dig, ok := f.tags[strings.TrimPrefix(r.URL.Path, "/v2/"+f.repo+"/manifests/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", dig)
		w.Header().Set("Content-Length", "100")
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// serveListing pages through the tags in name order, as the registry does.
func (f *listingRegistry) serveListing(w http.ResponseWriter, r *http.Request) {
	if n, _ := strconv.Atoi(r.URL.Query().Get("n")); n != tagsPageSize {
		http.Error(w, "n = "+r.URL.Query().Get("n"), http.StatusBadRequest)
		return
	}
	names := slices.Sorted(maps.Keys(f.tags))
	last := r.URL.Query().Get("last")
	var page []map[string]string
	for _, name := range names {
		if name > last && len(page) < f.pageSize {
			page = append(page, map[string]string{"name": name, "digest": f.tags[name], "media_type": "application/vnd.oci.image.manifest.v1+json"})
		}
	}
	if len(page) > 0 && page[len(page)-1]["name"] != names[len(names)-1] {
		w.Header().Set("Link", fmt.Sprintf(`<%s?last=%s&n=%d>; rel="next"`, r.URL.Path, page[len(page)-1]["name"], tagsPageSize))
	}
	_ = json.NewEncoder(w).Encode(page)
}

func (f *listingRegistry) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// ReadTags reads digests from GitLab's tag listing where the registry serves
// it (one probe per host, then pages), and with a HEAD per tag where it does
// not; both give the same answer, tags GitLab lacks left out.
func TestReadTagsThroughGitLabListing(t *testing.T) {
	tags := map[string]string{}
	for i := range 5 {
		tags[fmt.Sprintf("v%d", i)] = fmt.Sprintf("sha256:%064d", i)
	}
	ask := []string{"v1", "v3", "v4", "gone"}
	want := map[string]string{"v1": tags["v1"], "v3": tags["v3"], "v4": tags["v4"]}
	for _, tc := range []struct {
		name                   string
		tagsAPI                bool
		probes, listings, head int
	}{
		{name: "listing", tagsAPI: true, probes: 1, listings: 6, head: 0}, // 3 pages of 2, twice
		{name: "HEAD per tag", tagsAPI: false, probes: 1, listings: 0, head: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newListingRegistry(t, tc.tagsAPI, tags)
			e := New(Config{})
			host := strings.TrimPrefix(f.srv.URL, "http://")
			e.AddGitLabRegistry(host, true)
			for range 2 {
				got, err := e.ReadTags(context.Background(), host+"/"+f.repo, ask)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got, want) {
					t.Errorf("ReadTags = %v, want %v", got, want)
				}
			}
			if got := f.count("GET /gitlab/v1/repositories/"); got != tc.listings {
				t.Errorf("%d listing requests, want %d", got, tc.listings)
			}
			if got := f.count("GET /gitlab/v1/") - f.count("GET /gitlab/v1/repositories/"); got != tc.probes {
				t.Errorf("%d probes of /gitlab/v1/, want %d (once per host)", got, tc.probes)
			}
			if got := f.count("HEAD "); got != tc.head {
				t.Errorf("%d HEAD requests, want %d", got, tc.head)
			}
		})
	}
}

// A repository the listing does not know holds none of the tags: no HEAD
// follows.
func TestReadTagsListingUnknownRepository(t *testing.T) {
	f := newListingRegistry(t, true, map[string]string{"v1": "sha256:" + strings.Repeat("1", 64)})
	e := New(Config{})
	host := strings.TrimPrefix(f.srv.URL, "http://")
	e.AddGitLabRegistry(host, true)
	got, err := e.ReadTags(context.Background(), host+"/group/project/other", []string{"v1", "v2"})
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadTags = %v, %v; want no tags", got, err)
	}
	if n := f.count("HEAD "); n != 0 {
		t.Errorf("%d HEAD requests after the listing said the repository is unknown", n)
	}
}

func TestNextLink(t *testing.T) {
	for in, want := range map[string]string{
		`</gitlab/v1/repositories/a/b/tags/list/?last=v9&n=1000>; rel="next"`:                                                                  "/gitlab/v1/repositories/a/b/tags/list/?last=v9&n=1000",
		`</gitlab/v1/repositories/a/tags/list/?before=v1&n=2>; rel="previous", </gitlab/v1/repositories/a/tags/list/?last=v3&n=2>; rel="next"`: "/gitlab/v1/repositories/a/tags/list/?last=v3&n=2",
		`</gitlab/v1/repositories/a/tags/list/?before=v1&n=2>; rel="previous"`:                                                                 "",
		``: "",
	} {
		if got := nextLink([]string{in}); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", in, got, want)
		}
	}
}

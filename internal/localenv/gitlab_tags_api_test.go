package localenv

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
)

// glTagsAPI sends GET path to the GitLab registry proxy with a pull token
// for repo and returns the status, the Link header and the body.
func glTagsAPI(t *testing.T, env *Env, repo, path string) (int, string, string) {
	t.Helper()
	tok, err := env.GitLab.MintToken("root", []fakegitlab.Access{{Type: "repository", Name: repo, Actions: []string{"pull"}}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.GitLabRegistryURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := env.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Link"), string(body)
}

// GitLab's registry API: the tag listing answers each tag's digest, pages by
// n and last with a Link to the next page, 404 NAME_UNKNOWN for an unknown
// repository; turned off, /gitlab/v1/ is a 404 as on a registry without its
// database.
func testGitLabTagsAPI(t *testing.T, env *Env) {
	repo := "migration/images/tags-api"
	want := map[string]string{}
	for i, tag := range []string{"a1", "b2", "c3"} {
		_, _, dig := pushedManifest(t, env, repo, tag, int64(900+i))
		want[tag] = dig
	}
	if status, _, _ := glTagsAPI(t, env, repo, "/gitlab/v1/"); status != http.StatusOK {
		t.Errorf("GET /gitlab/v1/ = %d, want 200", status)
	}
	got := map[string]string{}
	path := "/gitlab/v1/repositories/" + repo + "/tags/list/?n=2"
	for pages := 0; path != ""; pages++ {
		if pages == 3 {
			t.Fatal("the listing keeps linking to more pages")
		}
		status, link, body := glTagsAPI(t, env, repo, path)
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, status, body)
		}
		var page []struct{ Name, Digest string }
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("listing %q: %v", body, err)
		}
		for _, e := range page {
			got[e.Name] = e.Digest
		}
		path = ""
		if link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
		}
	}
	for tag, dig := range want {
		if got[tag] != dig {
			t.Errorf("listing says %s is %q, want %q (all: %v)", tag, got[tag], dig, got)
		}
	}
	status, _, body := glTagsAPI(t, env, "migration/images/nothing-here", "/gitlab/v1/repositories/migration/images/nothing-here/tags/list/")
	if code, _, _ := registryError(t, body); status != http.StatusNotFound || code != "NAME_UNKNOWN" {
		t.Errorf("unknown repository: %d %s, want 404 NAME_UNKNOWN", status, body)
	}
	if status, _, _ := glTagsAPI(t, env, repo, "/gitlab/v1/repositories/"+repo+"/tags/list/?n=1001"); status != http.StatusBadRequest {
		t.Errorf("n=1001 answered %d, want 400", status)
	}
	restore := env.GitLab.ServeTagsAPI(false)
	defer restore()
	if status, _, _ := glTagsAPI(t, env, repo, "/gitlab/v1/"); status != http.StatusNotFound {
		t.Errorf("GET /gitlab/v1/ with the API off = %d, want 404", status)
	}
}

package localenv

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// ecrReferrersPath is the OCI referrers API, which ECR has served since 2024.
var ecrReferrersPath = regexp.MustCompile(`^/v2/(.+)/referrers/sha256:([0-9a-f]{64})$`)

const ociIndexType = "application/vnd.oci.image.index.v1+json"

// serveReferrers answers the referrers API as ECR does. distribution 2.8 has
// none, so the answer is built from what pushers there keep instead: the
// sha256-<hex> fallback tag, when it is an index other than the subject.
func (g *ecrRegistry) serveReferrers(w http.ResponseWriter, r *http.Request, repo, hexDigest string) {
	manifests := []map[string]any{}
	if index, ok := g.fallbackIndex(r, repo, hexDigest); ok {
		manifests = index
	}
	if want := r.URL.Query().Get("artifactType"); want != "" {
		var kept []map[string]any
		for _, m := range manifests {
			if m["artifactType"] == want {
				kept = append(kept, m)
			}
		}
		manifests = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndexType, "manifests": manifests})
	writeText(w, http.StatusOK, ociIndexType, string(body))
}

// fallbackIndex reads the fallback tag's descriptors, if it is a referrers index.
func (g *ecrRegistry) fallbackIndex(r *http.Request, repo, hexDigest string) ([]map[string]any, bool) {
	u := *g.backend
	u.Path = "/v2/" + repo + "/manifests/sha256-" + hexDigest
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false
	}
	req.SetBasicAuth("AWS", g.password)
	req.Header.Set("Accept", ociIndexType)
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), ociIndexType) {
		return nil, false
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) == hexDigest {
		return nil, false // a tag naming the subject itself, not a referrers list
	}
	var index struct {
		Manifests []map[string]any `json:"manifests"`
	}
	if json.Unmarshal(body, &index) != nil {
		return nil, false
	}
	return index.Manifests, true
}

package localenv

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// ecrDigestPush is a manifest PUT by digest: a platform of an index, or an
// artifact pushed with a subject (cosign, oras, regctl).
var ecrDigestPush = regexp.MustCompile(`^/v2/(.+)/manifests/(sha256:[0-9a-f]{64})$`)

// recordDigestPush records in moto, as an untagged image, every manifest the
// ECR registry stored by digest, whoever pushed it: ECR lists such manifests
// as untagged images, and the provider reads that listing.
func (e *Env) recordDigestPush(resp *http.Response) error {
	req := resp.Request
	m := ecrDigestPush.FindStringSubmatch(req.URL.Path)
	if req.Method != http.MethodPut || resp.StatusCode != http.StatusCreated || m == nil {
		return nil
	}
	repo, digest := m[1], m[2]
	raw, mediaType, err := e.ecr.manifest(req, repo, digest)
	if err != nil {
		return fmt.Errorf("recording %s@%s in the ECR API: %w", repo, digest, err)
	}
	return e.recordECR(req.Context(), repo, "", raw, mediaType, digest)
}

// manifest reads repo@digest from the registry with the environment's own
// credential.
func (g *ecrRegistry) manifest(r *http.Request, repo, digest string) ([]byte, string, error) {
	u := *g.backend
	u.Path = "/v2/" + repo + "/manifests/" + digest
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.SetBasicAuth("AWS", g.password)
	req.Header.Set("Accept", strings.Join([]string{
		ociIndexType, "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s answered %s", u.Path, resp.Status)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

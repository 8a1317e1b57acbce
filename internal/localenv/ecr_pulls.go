package localenv

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

// ecrPulls is ECR's lastRecordedPullTime, which moto does not keep: the ECR
// registry proxy records each manifest GET made with a token from
// GetAuthorizationToken (a client pulling, the provider included; not the
// environment's own seeding), and the ECR API proxy puts the time into
// moto's DescribeImages answers. Real ECR refreshes the time with a delay of
// up to a day; here it is immediate.
type ecrPulls struct {
	mu   sync.Mutex
	last map[string]time.Time // "<repository>@<digest>" -> last pull
}

func newECRPulls() *ecrPulls { return &ecrPulls{last: map[string]time.Time{}} }

// pullHeader marks, on its way to the registry, a manifest GET that counts
// as a pull; the answer's digest is recorded once the registry has answered.
const pullHeader = "X-Localenv-Ecr-Pull"

var ecrManifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/[^/]+$`)

// mark flags r as a pull when it GETs a manifest.
func (p *ecrPulls) mark(r *http.Request) {
	if r.Method == http.MethodGet && ecrManifestPath.MatchString(r.URL.Path) {
		r.Header.Set(pullHeader, "1")
	}
}

// record keeps the time of a marked GET the registry answered with a manifest.
func (p *ecrPulls) record(resp *http.Response) error {
	if resp.Request.Header.Get(pullHeader) == "" || resp.StatusCode != http.StatusOK {
		return nil
	}
	m := ecrManifestPath.FindStringSubmatch(resp.Request.URL.Path)
	digest := resp.Header.Get("Docker-Content-Digest")
	if m == nil || digest == "" {
		return nil
	}
	p.mu.Lock()
	p.last[m[1]+"@"+digest] = time.Now().UTC()
	p.mu.Unlock()
	return nil
}

// lastPull is when repo@digest was last pulled, or the zero time.
func (p *ecrPulls) lastPull(repo, digest string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[repo+"@"+digest]
}

// fillDescribeImages adds lastRecordedPullTime to moto's DescribeImages
// answer, for every image pulled so far.
func (p *ecrPulls) fillDescribeImages(resp *http.Response) error {
	if !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), ".DescribeImages") || resp.StatusCode != http.StatusOK {
		return nil
	}
	var out map[string]any
	return rewriteJSON(resp, &out, func() error {
		details, _ := out["imageDetails"].([]any)
		for _, d := range details {
			image, ok := d.(map[string]any)
			if !ok {
				continue
			}
			repo, _ := image["repositoryName"].(string)
			digest, _ := image["imageDigest"].(string)
			if t := p.lastPull(repo, digest); !t.IsZero() {
				image["lastRecordedPullTime"] = float64(t.UnixMilli()) / 1000
			}
		}
		return nil
	})
}

// PullECRImage pulls the manifest of repo:tag from ECR as a service still
// reading from ECR would (with the read-only key's registry token), so that
// ECR records the pull, and returns its digest.
func (e *Env) PullECRImage(ctx context.Context, repo, tag string) (string, error) {
	out, err := e.ECRClient(ctx, false).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", fmt.Errorf("GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return "", fmt.Errorf("GetAuthorizationToken returned no token")
	}
	auth, err := base64.StdEncoding.DecodeString(*out.AuthorizationData[0].AuthorizationToken)
	if err != nil {
		return "", err
	}
	user, pass, _ := strings.Cut(string(auth), ":")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.ECRRegistryEndpoint+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Accept", strings.Join(manifestMediaTypes, ", "))
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("pulling %s:%s from ECR: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

// manifestMediaTypes are the manifests a pull accepts, as docker pull sends them.
var manifestMediaTypes = []string{
	"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
}

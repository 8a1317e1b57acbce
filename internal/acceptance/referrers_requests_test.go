package acceptance

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// What a no-op plan asks the registries for a repository whose index
// platforms carry signatures: ECR gets one referrers request per subject
// (tagged digest, platform manifest, signature found) and no manifest read,
// since the platforms of each digest are kept in private state from the apply.
func TestNoOpPlanRegistryRequests(t *testing.T) {
	skipWithoutEnv(t)
	ctx := context.Background()
	name := uniqueName(t)
	repo := "noop/" + name
	project := env.GitLab.AddProject("noop/" + name).Path
	push := func(tag string, spec localenv.ImageSpec) localenv.Image {
		img, err := env.PushECRImage(ctx, repo, tag, spec)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	push("single", localenv.ImageSpec{OCI: true, Referrer: true})
	push("index", localenv.ImageSpec{OCI: true, Platforms: 2})
	signed := push("signed-index", localenv.ImageSpec{OCI: true, Platforms: 2, PlatformReferrers: true})
	w := newWorkspace(t, fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "m" {
  source_repository = %q
  gitlab_project    = %q
}
`, repo, project))
	w.apply()

	var (
		mu     sync.Mutex
		byKind = map[string]int{}
	)
	env.ECRProxy.SetFault(func(r *http.Request) (int, string, bool) {
		for _, kind := range []string{"referrers", "manifests", "blobs"} {
			if strings.Contains(r.URL.Path, "/"+kind+"/") {
				mu.Lock()
				byKind[kind]++
				mu.Unlock()
			}
		}
		return 0, "", false
	})
	t.Cleanup(func() { env.ECRProxy.SetFault(nil) })
	env.ECRProxy.ResetStats()
	env.GitLabProxy.ResetStats()
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	ecr, gitlab := env.ECRProxy.Stats(), env.GitLabProxy.Stats()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("no-op plan, 3 tags (an image with a signature, an index, an index with a signature per platform): "+
		"ECR registry %d requests (%d referrers lists, %d manifest reads), GitLab registry %d; %.2f requests per tag",
		ecr.Requests, byKind["referrers"], byKind["manifests"], gitlab.Requests, float64(ecr.Requests+gitlab.Requests)/3)
	// 3 tagged digests, 4 platform manifests, 3 signatures.
	if want := 3 + 2*2 + 1 + len(signed.PlatformReferrers); byKind["referrers"] != want {
		t.Errorf("%d referrers requests to ECR, want %d: one per subject", byKind["referrers"], want)
	}
	if byKind["manifests"] != 0 || byKind["blobs"] != 0 {
		t.Errorf("%d manifest and %d blob requests to ECR in a no-op plan, want none", byKind["manifests"], byKind["blobs"])
	}
}

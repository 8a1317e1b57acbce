package acceptance

import (
	"context"
	"fmt"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// Refresh reads GitLab's tag listing where the registry serves it: a no-op
// plan sends GitLab's registry no HEAD per tag, and a tag pushed over in
// GitLab still shows as drift. Where the registry does not serve it (no
// metadata database), the same plan asks a HEAD per tag and finds the drift
// too.
func TestCutover_refreshThroughGitLabTagListing(t *testing.T) {
	for _, served := range []bool{true, false} {
		t.Run(fmt.Sprintf("listing served %v", served), func(t *testing.T) {
			project, repo := fixture(t, "listing")
			restore := env.GitLab.ServeTagsAPI(served)
			defer restore()
			v1 := push(t, repo, "v1", localenv.ImageSpec{Platforms: 2})
			push(t, repo, "v2", localenv.ImageSpec{})
			push(t, repo, "v3", localenv.ImageSpec{})
			w := newWorkspace(t, mirrorConfig(repo, project, ""))
			w.apply()

			env.GitLabProxy.ResetStats()
			w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
			heads := env.GitLabProxy.Stats().ByMethod["HEAD"]
			switch {
			case served && heads != 0:
				t.Errorf("the no-op plan sent %d HEADs to GitLab's registry; the tag listing answers them all", heads)
			case !served && heads < 3:
				t.Errorf("the no-op plan sent %d HEADs without the tag listing, want one per tag (3)", heads)
			}

			moved, err := env.PushGitLabImage(context.Background(), project+"/"+repo, "v1", localenv.ImageSpec{Seed: 4242})
			if err != nil {
				t.Fatal(err)
			}
			out := w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
			mustMatch(t, out, `(?s)"v1"\s+=\s+"`+moved.Digest+`"\s+->\s+"`+v1.Digest+`"`)
			w.apply()
			expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
			w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
		})
	}
}

// ECR lists a repository's untagged images with its tags: where every
// manifest is a planned digest or a platform inside one, no referrer can
// exist, and a no-op plan asks ECR's registry nothing (no referrers list, no
// registry token). A signature pushed later is an untagged image too: the
// next plan lists the referrers and finds it.
func TestCutover_noReferrerListingWithoutCandidates(t *testing.T) {
	project, repo := fixture(t, "no-referrers")
	v1 := push(t, repo, "v1", localenv.ImageSpec{Platforms: 2})
	push(t, repo, "v2", localenv.ImageSpec{})
	w := newWorkspace(t, mirrorConfig(repo, project, ""))
	w.apply()

	env.ECRProxy.ResetStats()
	env.ECRAPIProxy.ResetStats()
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	if n := env.ECRProxy.Stats().Requests; n != 0 {
		t.Errorf("the no-op plan sent %d requests to ECR's registry, want none", n)
	}
	if n := env.ECRAPIProxy.Stats().ByAction["GetAuthorizationToken"]; n != 0 {
		t.Errorf("the no-op plan asked %d registry tokens, want none", n)
	}

	sig, err := env.SignECRImage(context.Background(), repo, v1.Digest)
	if err != nil {
		t.Fatal(err)
	}
	out := w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)`+v1.Digest+`.*`+sig)
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{sig: sig, "v1": v1.Digest})
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
}

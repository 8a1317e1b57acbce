package provider

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// copy_bytes in the plan is what the copy reads from ECR at most, from the
// sizes the image generator recorded: a base layer two images share counts
// once, a digest under two tags once, and a later plan counts only what it
// copies.
func TestAccMirroredImage_copyBytes(t *testing.T) {
	testAccPreCheck(t)
	repo, project, _ := accTarget(t, "bytes")
	addr := "imagesync_gitlab_mirrored_image.test"
	base := localenv.Layer{Size: 200 << 10, Seed: time.Now().UnixNano()}
	a := pushECR(t, repo, "a", localenv.ImageSpec{BaseLayers: []localenv.Layer{base}})
	b := pushECR(t, repo, "b", localenv.ImageSpec{BaseLayers: []localenv.Layer{base}, OCI: true})
	tagECR(t, repo, "b", "c")
	var moved localenv.Image
	config := mirroredConfig(project, repo, "")
	bytesPlanned := func(want func() int64) plancheck.PlanCheck {
		return plancheck.ExpectKnownValue(addr, tfjsonpath.New("copy_bytes"), lazyCheck(func() knownvalue.Check { return bytesCheck(want()) }))
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					bytesPlanned(func() int64 { return a.Bytes + b.Bytes - base.Size }),
				}},
			},
			{
				// Nothing to copy: the value stays, and the plan is empty.
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// A moved tag: only its image, its base layer included (at most).
				PreConfig: func() {
					moved = pushECR(t, repo, "a", localenv.ImageSpec{BaseLayers: []localenv.Layer{base}, Platforms: 2})
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					bytesPlanned(func() int64 { return moved.Bytes - base.Size }),
				}},
			},
		},
	})
}

// With copy_referrers, copy_bytes adds the referrers GitLab does not hold:
// a signature of the index and one of each platform, each counted as the
// registry serves it (their empty config, "{}", shared and counted once);
// a signature added later is all the next plan reads.
func TestAccMirroredImage_copyBytesReferrers(t *testing.T) {
	testAccPreCheck(t)
	repo, project, _ := accTarget(t, "bytes-refs")
	addr := "imagesync_gitlab_mirrored_image.test"
	img := pushECR(t, repo, "signed", localenv.ImageSpec{OCI: true, Platforms: 2, Referrer: true, PlatformReferrers: true})
	referrers := []string{img.ReferrerDigest}
	for _, r := range img.PlatformReferrers {
		referrers = append(referrers, r)
	}
	emptyConfig := int64(len("{}"))
	want := img.Bytes - int64(len(referrers)-1)*emptyConfig
	for _, r := range referrers {
		want += ecrBytes(t, repo, r)
	}
	var later int64
	config := mirroredConfig(project, repo, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("copy_bytes"), bytesCheck(want)),
				}},
			},
			{
				PreConfig: func() {
					sig, err := testEnv.SignECRImage(context.Background(), repo, img.Digest)
					if err != nil {
						t.Fatal(err)
					}
					later = ecrBytes(t, repo, sig)
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("copy_bytes"), lazyCheck(func() knownvalue.Check { return bytesCheck(later) })),
				}},
			},
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// bytesCheck expects copy_bytes to be n, in decimal digits.
func bytesCheck(n int64) knownvalue.Check { return knownvalue.StringExact(strconv.FormatInt(n, 10)) }

func ecrBytes(t *testing.T, repo, dig string) int64 {
	t.Helper()
	n, err := testEnv.ECRBytes(context.Background(), repo, dig)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// digestsToCopy lists what the apply reads from ECR: tagged digests GitLab
// does not hold under that tag, each once, then referrers GitLab lacks.
func TestDigestsToCopy(t *testing.T) {
	const target = "registry.example.com/group/project/api"
	model := func(images map[string]string, refs map[string][]string, ref string) mirroredImageModel {
		m := mirroredImageModel{Images: mapValue(images), Referrers: types.MapNull(referrersType.ElemType), TargetReference: types.StringValue(ref)}
		if refs != nil {
			m.Referrers = referrersValue(refs)
		}
		return m
	}
	held := model(map[string]string{"v1": "sha256:a", "latest": "sha256:a"}, map[string][]string{"sha256:a": {"sha256:sig-a"}}, target)
	for _, tc := range []struct {
		name  string
		plan  mirroredImageModel
		prior *mirroredImageModel
		want  []string
	}{
		{"new resource: each digest once, then its referrers",
			model(map[string]string{"v1": "sha256:a", "latest": "sha256:a", "v2": "sha256:b"},
				map[string][]string{"sha256:a": {"sha256:sig-a"}, "sha256:child": {"sha256:sig-child"}}, target),
			nil, []string{"sha256:a", "sha256:b", "sha256:sig-a", "sha256:sig-child"}},
		{"nothing new", held, &held, nil},
		{"a tag moved", model(map[string]string{"v1": "sha256:a", "latest": "sha256:c"}, map[string][]string{"sha256:a": {"sha256:sig-a"}}, target),
			&held, []string{"sha256:c"}},
		{"a signature added later", model(map[string]string{"v1": "sha256:a", "latest": "sha256:a"},
			map[string][]string{"sha256:a": {"sha256:sig-a", "sha256:sig-later"}}, target),
			&held, []string{"sha256:sig-later"}},
		{"another target holds nothing yet", model(map[string]string{"v1": "sha256:a"}, nil, target+"-new"),
			&held, []string{"sha256:a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var diags diag.Diagnostics
			got := digestsToCopy(context.Background(), tc.plan, tc.prior, &diags)
			if diags.HasError() {
				t.Fatal(diags)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("digestsToCopy = %v, want %v", got, tc.want)
			}
		})
	}
}

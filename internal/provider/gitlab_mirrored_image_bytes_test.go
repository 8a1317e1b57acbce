package provider

import (
	"testing"
	"time"

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
		return plancheck.ExpectKnownValue(addr, tfjsonpath.New("copy_bytes"), lazyCheck(func() knownvalue.Check { return knownvalue.Int64Exact(want()) }))
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

package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// repoCheck expects one listed repository with exactly these images.
func repoCheck(name string, images map[string]string) knownvalue.Check {
	imgs := map[string]knownvalue.Check{}
	for tag, dig := range images {
		imgs[tag] = knownvalue.StringExact(dig)
	}
	return knownvalue.ObjectPartial(map[string]knownvalue.Check{
		"name":           knownvalue.StringExact(name),
		"uri":            knownvalue.StringExact(testEnv.ECRRegistryName + "/" + name),
		"arn":            knownvalue.StringRegexp(regexp.MustCompile(`^arn:aws:ecr:us-east-1:123456789012:repository/` + regexp.QuoteMeta(name) + `$`)),
		"registry_id":    knownvalue.StringExact(testEnv.AccountID),
		"tag_mutability": knownvalue.StringExact("MUTABLE"),
		"created_at":     knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)),
		"images":         knownvalue.MapExact(imgs),
	})
}

func reposOf(addr string, checks ...knownvalue.Check) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(addr, tfjsonpath.New("repositories"), knownvalue.ListExact(checks))
}

func filterTags(images map[string]string, re string) map[string]string {
	out := map[string]string{}
	for t, d := range images {
		if regexp.MustCompile(re).MatchString(t) {
			out[t] = d
		}
	}
	return out
}

func TestAccECRRepositoriesDataSource_filters(t *testing.T) {
	testAccPreCheck(t)
	web, api, worker, signed := seeded(t, "web"), seeded(t, "team/api"), seeded(t, "team/worker"), seeded(t, "signed/app")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "names" {
  names = ["web", "team/api"]
}
data "imagesync_ecr_repositories" "prefix" {
  name_prefix = "team/"
}
data "imagesync_ecr_repositories" "regex" {
  name_regex    = "^(web|team/.*|signed/app)$"
  exclude_regex = "worker"
}
data "imagesync_ecr_repositories" "tags" {
  names     = ["web", "team/worker"]
  tag_regex = "^(v|1\\.0$)"
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					reposOf("data.imagesync_ecr_repositories.names", repoCheck("team/api", api), repoCheck("web", web)),
					reposOf("data.imagesync_ecr_repositories.prefix", repoCheck("team/api", api), repoCheck("team/worker", worker)),
					reposOf("data.imagesync_ecr_repositories.regex", repoCheck("signed/app", signed), repoCheck("team/api", api), repoCheck("web", web)),
					reposOf("data.imagesync_ecr_repositories.tags",
						repoCheck("team/worker", filterTags(worker, `^(v|1\.0$)`)), repoCheck("web", filterTags(web, `^(v|1\.0$)`))),
				},
			},
			{
				// A second run reads the same and plans nothing.
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "names" {
  names = ["web", "team/api"]
}
`,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					reposOf("data.imagesync_ecr_repositories.names", repoCheck("team/api", api), repoCheck("web", web)),
				},
			},
		},
	})
}

func TestAccECRRepositoriesDataSource_untaggedLeftOut(t *testing.T) {
	testAccPreCheck(t)
	// signed/app holds an untagged referrer in the registry only; in ECR every
	// seeded image is tagged, and the data source must list tags alone.
	signed := seeded(t, "signed/app")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig() + `
data "imagesync_ecr_repositories" "signed" {
  names = ["signed/app"]
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				reposOf("data.imagesync_ecr_repositories.signed", repoCheck("signed/app", signed)),
			},
		}},
	})
}

func TestAccECRRepositoriesDataSource_badInput(t *testing.T) {
	testAccPreCheck(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "bad" {
  name_regex = "team/(api"
}
`,
				ExpectError: regexp.MustCompile(`(?s)Invalid Regular Expression.*name_regex|(?s)name_regex.*Invalid Regular Expression`),
			},
			{
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "bad" {
  tag_regex = "(?<=v)1"
}
`,
				ExpectError: regexp.MustCompile(`Invalid Regular Expression`),
			},
			{
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "missing" {
  names = ["web", "does-not-exist"]
}
`,
				ExpectError: regexp.MustCompile(`(?s)ECR Repository Not Found.*does-not-exist`),
			},
			{
				Config: providerConfig() + `
data "imagesync_ecr_repositories" "bad" {
  names = ["Team/API"]
}
`,
				ExpectError: regexp.MustCompile(`Invalid ECR Repository Name`),
			},
		},
	})
}

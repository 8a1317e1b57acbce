package provider

import (
	"fmt"
	"regexp"
	"strings"
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

// fnv1a32 is the documented shard hash written out by hand, independent of
// hash/fnv, so the tests hold the code to the constants the docs print.
func fnv1a32(s string) uint32 {
	h := uint32(2166136261)
	for _, b := range []byte(s) {
		h ^= uint32(b)
		h *= 16777619
	}
	return h
}

func TestShardOf(t *testing.T) {
	// Reference values of FNV-1a 32 (draft-eastlake-fnv test vectors).
	for s, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := fnv1a32(s); got != want {
			t.Fatalf("fnv1a32(%q) = %#x, want %#x", s, got, want)
		}
	}
	names := []string{"web", "team/api", "team/worker", "signed/app", "a", "zz/top", "Ünïcode-is-bytes"}
	for _, count := range []uint32{1, 2, 3, 8, 1000} {
		for _, name := range names {
			want := int64(fnv1a32(name) % count)
			if got := shardOf(name, int64(count)); got != want {
				t.Errorf("shardOf(%q, %d) = %d, want %d", name, count, got, want)
			}
		}
	}
}

func TestShardMatcher(t *testing.T) {
	team := regexp.MustCompile(`^team/`)
	names := []string{"web", "team/api", "team/worker", "signed/app", "team/x", "team/y", "other"}
	for _, count := range []int64{2, 3} {
		seen := map[string]int64{}
		for index := range count {
			m := shardMatcher{next: team, index: index, count: count}
			for _, name := range names {
				if !m.MatchString(name) {
					continue
				}
				if !team.MatchString(name) {
					t.Errorf("shard %d/%d keeps %q, which name_regex drops", index, count, name)
				}
				if prev, dup := seen[name]; dup {
					t.Errorf("%q is in shards %d and %d of %d", name, prev, index, count)
				}
				seen[name] = index
			}
		}
		for _, name := range names {
			if _, ok := seen[name]; team.MatchString(name) && !ok {
				t.Errorf("%q is in no shard of %d", name, count)
			}
		}
	}
}

func TestAccECRRepositoriesDataSource_shards(t *testing.T) {
	testAccPreCheck(t)
	all := []string{"signed/app", "team/api", "team/worker", "web"} // sorted, as listed
	const count = 3
	var config strings.Builder
	config.WriteString(providerConfig())
	checks := []statecheck.StateCheck{}
	for index := range count {
		fmt.Fprintf(&config, "data \"imagesync_ecr_repositories\" \"s%d\" {\n  shard_index = %d\n  shard_count = %d\n}\n", index, index, count)
		var want []knownvalue.Check
		for _, name := range all {
			if int(fnv1a32(name)%count) == index {
				want = append(want, repoCheck(name, seeded(t, name)))
			}
		}
		if want == nil {
			want = []knownvalue.Check{}
		}
		checks = append(checks, reposOf(fmt.Sprintf("data.imagesync_ecr_repositories.s%d", index), want...))
	}
	// The other filters apply first, then the shard.
	config.WriteString(`data "imagesync_ecr_repositories" "team_shard" {
  name_prefix = "team/"
  shard_index = 1
  shard_count = 2
}
`)
	var team []knownvalue.Check
	for _, name := range all {
		if strings.HasPrefix(name, "team/") && fnv1a32(name)%2 == 1 {
			team = append(team, repoCheck(name, seeded(t, name)))
		}
	}
	if team == nil {
		team = []knownvalue.Check{}
	}
	checks = append(checks, reposOf("data.imagesync_ecr_repositories.team_shard", team...))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    []resource.TestStep{{Config: config.String(), ConfigStateChecks: checks}},
	})
}

func TestAccECRRepositoriesDataSource_badShards(t *testing.T) {
	testAccPreCheck(t)
	step := func(body string, want string) resource.TestStep {
		return resource.TestStep{
			Config:      providerConfig() + "data \"imagesync_ecr_repositories\" \"bad\" {\n" + body + "}\n",
			ExpectError: regexp.MustCompile(want),
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			step("  shard_index = 4\n  shard_count = 4\n", `(?s)Shard Index Out of Range.*with data\.imagesync_ecr_repositories\.bad,.*shard_index.*numbered 0 to 3`),
			step("  shard_index = 1\n", `(?s)Shard Index Out of Range.*shard_count = 1`),
			step("  shard_count = 0\n", `(?s)Invalid Attribute Value.*shard_count.*at least 1`),
			step("  shard_index = -1\n  shard_count = 2\n", `(?s)Invalid Attribute Value.*shard_index.*at least 0`),
		},
	})
}

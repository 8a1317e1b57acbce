package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
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

func TestShardRepositories(t *testing.T) {
	var repos []ecr.Repository
	for _, name := range []string{"other", "signed/app", "team/api", "team/worker", "team/x", "team/y", "web"} {
		repos = append(repos, ecr.Repository{Name: name})
	}
	for _, count := range []int64{1, 2, 3} {
		seen := map[string]int64{}
		for index := range count {
			shard := shardRepositories(repos, index, count)
			if !slices.IsSortedFunc(shard, func(a, b ecr.Repository) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("shard %d/%d is out of order: %v", index, count, shard)
			}
			for _, r := range shard {
				if prev, dup := seen[r.Name]; dup {
					t.Errorf("%q is in shards %d and %d of %d", r.Name, prev, index, count)
				}
				seen[r.Name] = index
			}
		}
		if len(seen) != len(repos) {
			t.Errorf("%d of %d repositories are in a shard of %d", len(seen), len(repos), count)
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

// detailsRepo pushes three images to a fresh, deep ECR repository, a second
// apart so ECR's push times order them: v1; v2 and stable; v3 and latest.
// stable is pulled once. It returns the repository, its tags and the time
// between the first and the second push.
func detailsRepo(t *testing.T) (repo string, tags map[string]string, between time.Time) {
	t.Helper()
	repo = "org/" + uniqueName(t) + "/svc/api"
	v1 := pushECR(t, repo, "v1", localenv.ImageSpec{})
	time.Sleep(1100 * time.Millisecond)
	between = time.Now().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	v2 := pushECR(t, repo, "v2", localenv.ImageSpec{})
	tagECR(t, repo, "v2", "stable")
	time.Sleep(1100 * time.Millisecond)
	v3 := pushECR(t, repo, "v3", localenv.ImageSpec{OCI: true, Platforms: 2})
	tagECR(t, repo, "v3", "latest")
	if _, err := testEnv.PullECRImage(context.Background(), repo, "stable"); err != nil {
		t.Fatal(err)
	}
	return repo, map[string]string{"v1": v1.Digest, "v2": v2.Digest, "stable": v2.Digest, "v3": v3.Digest, "latest": v3.Digest}, between
}

func subset(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

var rfc3339Check = knownvalue.StringRegexp(regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`))

func TestAccECRRepositoriesDataSource_details(t *testing.T) {
	testAccPreCheck(t)
	repo, tags, between := detailsRepo(t)
	project := testEnv.GitLab.AddProject("acc/" + uniqueName(t)).Path
	folded := strings.Join(strings.Split(repo, "/")[:3], "-") + "/api"
	// moto takes an image's size from its config alone, so an index (v3) has none.
	detail := func(pulled knownvalue.Check) knownvalue.Check {
		return knownvalue.ObjectExact(map[string]knownvalue.Check{"digest": knownvalue.NotNull(),
			"size_bytes": knownvalue.NotNull(), "pushed_at": rfc3339Check, "last_pulled_at": pulled})
	}
	all := tfjsonpath.New("repositories").AtSliceIndex(0)
	config := providerConfig() + fmt.Sprintf(`
data "imagesync_ecr_repositories" "all" {
  names           = [%[1]q]
  include_details = true
}
data "imagesync_ecr_repositories" "plain" {
  names                  = [%[1]q]
  gitlab_image_separator = "__"
}
data "imagesync_ecr_repositories" "recent" {
  names       = [%[1]q]
  most_recent = 2
}
data "imagesync_ecr_repositories" "releases" {
  names       = [%[1]q]
  tag_regex   = "^v"
  most_recent = 1
}
data "imagesync_ecr_repositories" "after" {
  names        = [%[1]q]
  pushed_after = %[2]q
}
resource "imagesync_gitlab_mirrored_image" "recent" {
  source_repository = data.imagesync_ecr_repositories.recent.repositories[0].name
  target_image      = data.imagesync_ecr_repositories.recent.repositories[0].gitlab_image
  gitlab_project    = %[3]q
  images            = data.imagesync_ecr_repositories.recent.repositories[0].images
}
`, repo, between.UTC().Format(time.RFC3339), project)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: config,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				// Fed from most_recent = 2, the plan copies those images' tags only.
				plancheck.ExpectKnownValue("imagesync_gitlab_mirrored_image.recent", tfjsonpath.New("images"),
					imagesCheck(subset(tags, "v2", "stable", "v3", "latest"))),
				plancheck.ExpectKnownValue("imagesync_gitlab_mirrored_image.recent", tfjsonpath.New("target_image"), knownvalue.StringExact(folded)),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("gitlab_image"), knownvalue.StringExact(folded)),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("images"), imagesCheck(tags)),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("image_details"), knownvalue.MapExact(map[string]knownvalue.Check{
					"v1": detail(knownvalue.Null()), "v2": detail(rfc3339Check), "stable": detail(rfc3339Check),
					"v3": detail(knownvalue.Null()), "latest": detail(knownvalue.Null()),
				})),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("image_details").AtMapKey("stable").AtMapKey("digest"), knownvalue.StringExact(tags["stable"])),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("last_pulled_at"), rfc3339Check),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.all", all.AtMapKey("size_bytes"), knownvalue.NotNull()),
				// Without include_details, none of them; the filters still apply.
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.plain", all.AtMapKey("image_details"), knownvalue.Null()),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.plain", all.AtMapKey("last_pulled_at"), knownvalue.Null()),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.plain", all.AtMapKey("gitlab_image"),
					knownvalue.StringExact(strings.Join(strings.Split(repo, "/")[:3], "__")+"/api")),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.recent", all.AtMapKey("images"), imagesCheck(subset(tags, "v2", "stable", "v3", "latest"))),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.releases", all.AtMapKey("images"), imagesCheck(subset(tags, "v3"))),
				statecheck.ExpectKnownValue("data.imagesync_ecr_repositories.after", all.AtMapKey("images"), imagesCheck(subset(tags, "v2", "stable", "v3", "latest"))),
				statecheck.ExpectKnownValue("imagesync_gitlab_mirrored_image.recent", tfjsonpath.New("images"), imagesCheck(subset(tags, "v2", "stable", "v3", "latest"))),
				checkNow(func() { checkGitLabDigests(t, project+"/"+folded, subset(tags, "v2", "stable", "v3", "latest")) }),
			},
		}},
	})
}

func TestAccECRRepositoriesDataSource_sharedGitLabImage(t *testing.T) {
	testAccPreCheck(t)
	name := uniqueName(t)
	deep, flat := "org/"+name+"/api", "org-"+name+"/api"
	for _, repo := range []string{deep, flat} {
		if err := testEnv.CreateECRRepository(context.Background(), repo); err != nil {
			t.Fatal(err)
		}
	}
	config := func(extra string) string {
		return providerConfig() + fmt.Sprintf(`
data "imagesync_ecr_repositories" "both" {
  name_regex = %q
  %s
}
`, "^org[-/]"+name+"/api$", extra)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config(""),
				ExpectError: regexp.MustCompile(`(?s)ECR Repositories Share a GitLab Image Name.*` + regexp.QuoteMeta(flat) + `\s+and\s+` +
					regexp.QuoteMeta(deep) + `\s+->\s+` + regexp.QuoteMeta(`"`+flat+`"`)),
			},
			{
				// Each shard alone holds one of them; they still collide in the project.
				Config:      config("shard_count = 2\nshard_index = 1"),
				ExpectError: regexp.MustCompile(`ECR Repositories Share a GitLab Image Name`),
			},
			{
				Config:      config(`gitlab_image_separator = "/"`),
				ExpectError: regexp.MustCompile(`Invalid GitLab Image Separator`),
			},
			{
				Config:      config(`pushed_after = "last tuesday"`),
				ExpectError: regexp.MustCompile(`Invalid Timestamp`),
			},
			{
				Config: config(`gitlab_image_separator = "--"`),
				ConfigStateChecks: []statecheck.StateCheck{
					reposOf("data.imagesync_ecr_repositories.both",
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"name": knownvalue.StringExact(flat), "gitlab_image": knownvalue.StringExact(flat)}),
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"name": knownvalue.StringExact(deep), "gitlab_image": knownvalue.StringExact("org--" + name + "/api")})),
				},
			},
		},
	})
}

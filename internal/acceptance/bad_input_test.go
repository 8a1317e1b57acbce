package acceptance

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// badInput is one row of the bad-input table: a configuration terraform must
// refuse at plan, or an import ID it must refuse, and what the refusal says.
type badInput struct {
	name string
	// provider overrides attributes of the local environment's provider
	// block, by dotted path ("ecr.region"), with HCL expressions.
	provider map[string]string
	config   string // HCL added after the good resource
	importID string // when set, terraform import of importAddr with this ID instead of a plan
	want     *regexp.Regexp
}

const importAddr = "imagesync_gitlab_mirrored_image.imported"

// TestBadInput feeds the provider, the data source, the resource, import IDs
// and timeouts bad values through the terraform CLI, in a workspace that
// already holds a mirrored image: each must fail at plan or import with a
// diagnostic that names the attribute or value and says what to do, and
// leave the state file as it was, byte for byte.
func TestBadInput(t *testing.T) {
	project, _ := newProject(t)
	good := fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "good" {
  source_repository = "web"
  gitlab_project    = %q
}
`, project)
	w := newWorkspace(t, good)
	w.apply()
	before := w.state()
	if len(before) == 0 {
		t.Fatal("no state after apply")
	}
	for _, row := range badInputs(t, project) {
		t.Run(row.name, func(t *testing.T) {
			rw := *w
			rw.t = t
			out := rw.refuse(row, good)
			if _, diags, ok := strings.Cut(out, "Error: "); ok {
				t.Log("Error: " + diags)
			}
			if !row.want.MatchString(out) {
				t.Errorf("output does not match %s:\n%s", row.want, out)
			}
			if after := rw.state(); !bytes.Equal(after, before) {
				t.Errorf("state changed:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
	// The good configuration still plans empty: nothing above changed anything.
	w.write(good)
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
}

// refuse writes the row's configuration, runs the plan or the import, and
// returns the output; a zero exit fails the row.
func (w *workspace) refuse(row badInput, good string) string {
	w.t.Helper()
	w.writeProvider(row.provider, good+row.config)
	args := []string{"plan", "-input=false", "-no-color"}
	if row.importID != "" {
		args = []string{"import", "-input=false", "-no-color", importAddr, row.importID}
	}
	out, code := w.run(args...)
	if code == 0 {
		w.t.Errorf("terraform %s exited 0, want a refusal:\n%s", args[0], out)
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "plugin crashed") {
		w.t.Errorf("the provider crashed:\n%s", out)
	}
	return out
}

func badInputs(t *testing.T, project string) []badInput {
	zero := "sha256:" + strings.Repeat("0", 64)
	web := seededTags("web")
	fallbackRepo, fallbackTag, fallbackDigest := pushFallbackTag(t, web["v1.0"])
	longTag := strings.Repeat("v", 129)
	// imported is the resource block the import rows import into.
	imported := fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "imported" {
  source_repository = "web"
  gitlab_project    = %q
  target_image      = "imported"
}
`, project)
	mirrored := func(source, extra string) string {
		return fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "bad" {
  source_repository = %q
  gitlab_project    = %q
%s
}
`, source, project, extra)
	}
	onProject := func(gitlabProject string) string {
		return fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "bad" {
  source_repository = "web"
  gitlab_project    = %q
}
`, gitlabProject)
	}
	repositories := func(body string) string {
		return "\ndata \"imagesync_ecr_repositories\" \"bad\" {\n" + body + "\n}\n"
	}
	disabled := env.GitLab.AddProject("acc/" + uniqueName(t) + "-no-registry")
	env.GitLab.DisableRegistry(disabled.Path)

	return []badInput{
		// The provider block.
		{name: "provider/max_concurrent_blobs_0", provider: map[string]string{"max_concurrent_blobs": "0"},
			want: phrases("Invalid Attribute Value", "max_concurrent_blobs = 0", "max_concurrent_blobs value must be between 1 and 64, got: 0")},
		{name: "provider/max_concurrent_blobs_65", provider: map[string]string{"max_concurrent_blobs": "65"},
			want: phrases("Invalid Attribute Value", "max_concurrent_blobs = 65", "between 1 and 64, got: 65")},
		// The framework's own conversion error, before any validator runs; it
		// names the attribute and the value but calls itself a provider bug.
		{name: "provider/max_concurrent_blobs_fraction", provider: map[string]string{"max_concurrent_blobs": "1.5"},
			want: phrases("Configuration Read Error", "max_concurrent_blobs = 1.5", "1.5) is not an integer")},
		{name: "provider/requests_per_second_negative", provider: map[string]string{"requests_per_second": "-1"},
			want: phrases("Invalid Attribute Value", "requests_per_second = -1", "requests_per_second value must be at least 0")},
		{name: "provider/ecr_region", provider: map[string]string{"ecr.region": `"Europe"`},
			want: phrases("Invalid Attribute Value Match", `region = "Europe"`, "ecr.region must be an AWS region name such as eu-west-1, got: Europe")},
		{name: "provider/ecr_registry_id", provider: map[string]string{"ecr.registry_id": `"123"`},
			want: phrases("Invalid Attribute Value Match", `registry_id = "123"`, "ecr.registry_id must be a 12-digit AWS account ID such as 123456789012, got: 123")},
		{name: "provider/ecr_profile_missing", provider: map[string]string{"ecr.profile": `"no-such-profile"`},
			want: phrases("Cannot Configure the ECR Client", `profile = "no-such-profile"`, "no-such-profile")},
		{name: "provider/ecr_endpoint", provider: map[string]string{"ecr.endpoint": `"not a url"`},
			want: phrases("Invalid URL", `endpoint = "not a url"`, `The value "not a url" is not an absolute http:// or https:// URL`, "https://host[:port]")},
		{name: "provider/ecr_registry_endpoint_ftp", provider: map[string]string{"ecr.registry_endpoint": `"ftp://x"`},
			want: phrases("Invalid URL", `registry_endpoint = "ftp://x"`, `The value "ftp://x" is not an absolute http:// or https:// URL`)},
		{name: "provider/assume_role_user_arn", provider: map[string]string{"ecr.assume_role.role_arn": `"arn:aws:iam::1:user/x"`},
			want: phrases("Invalid Attribute Value Match", `role_arn = "arn:aws:iam::1:user/x"`, "must be an IAM role ARN such as arn:aws:iam::123456789012:role/migration, got: arn:aws:iam::1:user/x")},
		{name: "provider/assume_role_without_role_arn", provider: map[string]string{"ecr.assume_role.session_name": `"migration"`},
			want: phrases("Invalid Attribute Combination", "assume_role", `"ecr.assume_role.role_arn" must be specified`)},
		{name: "provider/gitlab_base_url_no_scheme", provider: map[string]string{"gitlab.base_url": `"gitlab.example.com"`},
			want: phrases("Invalid URL", `base_url = "gitlab.example.com"`, `The value "gitlab.example.com" is not an absolute`, "https://host[:port]")},
		{name: "provider/gitlab_registry_url_path", provider: map[string]string{"gitlab.registry_url": `"https://registry.example.com/v2"`},
			want: phrases("Invalid GitLab Registry URL", `registry_url = "https://registry.example.com/v2"`, "registry's root URL, e.g. https://registry.example.com", "no path")},
		{name: "provider/gitlab_registry_url_no_scheme", provider: map[string]string{"gitlab.registry_url": `"registry.example.com"`},
			want: phrases("Invalid URL", `registry_url = "registry.example.com"`, `"registry.example.com" is not an absolute`)},
		{name: "provider/gitlab_base_url_unknown", provider: map[string]string{"gitlab.base_url": "terraform_data.later.id"},
			config: "\nresource \"terraform_data\" \"later\" {}\n",
			want:   phrases("Unknown Provider Configuration Value", "gitlab.base_url is not known until apply", "-target")},

		// data "imagesync_ecr_repositories".
		{name: "data_source/name_regex", config: repositories(`  name_regex = "team/(api"`),
			want: phrases("Invalid Regular Expression", `name_regex = "team/(api"`, `The value "team/(api" is not a valid regular expression`, "missing closing )")},
		{name: "data_source/exclude_regex", config: repositories(`  exclude_regex = "["`),
			want: phrases("Invalid Regular Expression", `exclude_regex = "["`, "missing closing ]")},
		{name: "data_source/tag_regex_lookahead", config: repositories(`  tag_regex = "^v(?=1)"`),
			want: phrases("Invalid Regular Expression", `tag_regex = "^v(?=1)"`, "no look-around or backreferences", "invalid or unsupported Perl syntax")},
		{name: "data_source/names_missing", config: repositories(`  names = ["web", "does-not-exist"]`),
			want: phrases("ECR Repository Not Found", `names = ["web", "does-not-exist"]`, "Check the spelling", `'does-not-exist' does not exist`)},
		{name: "data_source/names_invalid", config: repositories(`  names = ["web", "Team/API"]`),
			want: phrases("Invalid ECR Repository Name", `names = ["web", "Team/API"]`, `The value "Team/API" is not an ECR repository name`, `e.g. "team/api"`)},
		{name: "data_source/names_uri", config: repositories(`  names = ["123456789012.dkr.ecr.us-east-1.amazonaws.com/web"]`),
			want: phrases("Invalid ECR Repository Name", "Give the repository's name, not its URI")},
		{name: "data_source/names_empty", config: repositories(`  names = []`),
			want: phrases("Invalid Attribute Value", "names = []", "names list must contain at least 1 elements, got: 0")},
		{name: "data_source/registry_id", config: repositories(`  registry_id = "12ab"`),
			want: phrases("Invalid Attribute Value Match", `registry_id = "12ab"`, "registry_id must be a 12-digit AWS account ID such as 123456789012, got: 12ab")},

		// resource "imagesync_gitlab_mirrored_image".
		{name: "resource/target_image_uppercase", config: mirrored("web", `  target_image = "Web/API"`),
			want: phrases("Invalid Target Image Name", `target_image = "Web/API"`, `The target_image "Web/API" has path segments`, `"Web", "API"`, `target_image = "web/api"`)},
		{name: "resource/target_image_three_levels", config: mirrored("web", `  target_image = "a/b/c"`),
			want: phrases("Invalid Target Image Name", `target_image = "a/b/c"`, "has 3 path segments, but GitLab allows at most 2", `target_image = "a-b/c"`)},
		{name: "resource/target_image_empty", config: mirrored("web", `  target_image = ""`),
			want: phrases("Invalid Target Image Name", `target_image = ""`, `The target_image "" is empty`, `target_image = "image"`)},
		{name: "resource/target_image_trailing_slash", config: mirrored("web", `  target_image = "api/"`),
			want: phrases("Invalid Target Image Name", `target_image = "api/"`, `""`, `target_image = "api"`)},
		{name: "resource/target_image_default_too_deep", config: mirrored("org/team/svc/api", ""),
			want: phrases("Invalid Target Image Name", "target_image is not set, so it defaults to source_repository", `"org/team/svc/api"`, `target_image = "org-team-svc/api"`)},
		{name: "resource/images_malformed_digest", config: mirrored("web", `  images = { "v1.0" = "latest" }`),
			want: phrases("Invalid Attribute Value Match", `images = { "v1.0" = "latest" }`, `images["v1.0"] must be a digest such as sha256:<64 hex digits>, got: latest`)},
		{name: "resource/images_tag_not_in_ecr", config: mirrored("web", fmt.Sprintf(`  images = { "nope" = %q }`, web["v1.0"])),
			want: phrases("Tag Not in ECR", `The ECR repository "web" has no tag "nope"`, "push it to ECR first")},
		{name: "resource/images_digest_not_in_ecr", config: mirrored("web", fmt.Sprintf(`  images = { "v1.0" = %q }`, zero)),
			want: phrases("Digest Not in ECR for This Tag", `has tag "v1.0" at digest `+web["v1.0"]+", not the planned "+zero, "Use the digest ECR holds")},
		{name: "resource/images_tag_too_long", config: mirrored("web", fmt.Sprintf(`  images = { %q = %q }`, longTag, web["v1.0"])),
			want: phrases("Invalid Attribute Value Match", `images["`+longTag+`"] must be a tag: up to 128 letters`)},
		{name: "resource/images_tag_invalid", config: mirrored("web", fmt.Sprintf(`  images = { ".hidden" = %q }`, web["v1.0"])),
			want: phrases("Invalid Attribute Value Match", `images[".hidden"] must be a tag`, "not starting with '.' or '-', got: .hidden")},
		{name: "resource/images_fallback_tag_other_digest", config: mirrored(fallbackRepo, fmt.Sprintf(`  images = { %q = %q }`, fallbackTag, fallbackDigest)),
			want: phrases("Tag GitLab Cannot Hold", fmt.Sprintf("The tag %q has the form sha256-<hex>, which GitLab reads as the digest", fallbackTag), "but it points at "+fallbackDigest, "Remove it from images")},
		{name: "resource/images_and_tag_regex", config: mirrored("web", fmt.Sprintf("  images    = { \"v1.0\" = %q }\n  tag_regex = \"^v\"", web["v1.0"])),
			want: phrases("Invalid Attribute Combination", `tag_regex = "^v"`, `Attribute "images" cannot be specified when "tag_regex" is specified`)},
		{name: "resource/tag_regex_invalid", config: mirrored("web", `  tag_regex = "v(1"`),
			want: phrases("Invalid Regular Expression", `tag_regex = "v(1"`, `The value "v(1" is not a valid regular expression`, "missing closing )")},
		{name: "resource/tag_regex_lookbehind", config: mirrored("web", `  tag_regex = "(?<=v)1"`),
			want: phrases("Invalid Regular Expression", `tag_regex = "(?<=v)1"`, "no look-around")},
		{name: "resource/gitlab_project_url", config: onProject("https://gitlab.com/group/project"),
			want: phrases("Invalid GitLab Project", `gitlab_project = "https://gitlab.com/group/project"`, "without the host", `e.g. "my-group/my-project"`)},
		{name: "resource/gitlab_project_trailing_slash", config: onProject(project + "/"),
			want: phrases("Invalid GitLab Project", fmt.Sprintf("The value %q is neither", project+"/"), "without the host or a trailing slash")},
		{name: "resource/gitlab_project_zero", config: onProject("0"),
			want: phrases("Invalid GitLab Project", `gitlab_project = "0"`, `The value "0" is neither a numeric project ID nor a full project path`)},
		{name: "resource/gitlab_project_without_namespace", config: onProject("images"),
			want: phrases("Invalid GitLab Project", `gitlab_project = "images"`, `The value "images" is neither a numeric project ID nor a full project path`, `e.g. "my-group/my-project"`)},
		{name: "resource/gitlab_project_not_found", config: onProject("acc/no-such-project"),
			want: phrases("GitLab Project Not Found", `gitlab_project = "acc/no-such-project"`, `GitLab has no project "acc/no-such-project"`, "at least the Developer role")},
		{name: "resource/gitlab_project_id_not_found", config: onProject("987654"),
			want: phrases("GitLab Project Not Found", `gitlab_project = "987654"`, `GitLab has no project "987654"`)},
		{name: "resource/gitlab_project_registry_disabled", config: onProject(disabled.Path),
			want: phrases("GitLab Container Registry Disabled", fmt.Sprintf("gitlab_project = %q", disabled.Path), "has its container registry turned off", "Enable it under Settings")},
		{name: "resource/source_repository_missing", config: mirrored("no-such-repo", ""),
			want: phrases("ECR Repository Not Found", `source_repository = "no-such-repo"`, `The ECR repository "no-such-repo" does not exist`, "Check the name")},
		{name: "resource/source_repository_invalid", config: mirrored("Team/API", ""),
			want: phrases("Invalid ECR Repository Name", `source_repository = "Team/API"`, `The value "Team/API" is not an ECR repository name`)},
		{name: "resource/source_repository_uri", config: mirrored("123456789012.dkr.ecr.us-east-1.amazonaws.com/web", ""),
			want: phrases("Invalid ECR Repository Name", "source_repository", "Give the repository's name, not its URI")},
		{name: "resource/source_repository_empty", config: mirrored("", ""),
			want: phrases("Invalid ECR Repository Name", `source_repository = ""`, `The value "" is not an ECR repository name`)},
		{name: "resource/source_registry_id_short", config: mirrored("web", `  source_registry_id = "1234"`),
			want: phrases("Invalid Attribute Value Match", `source_registry_id = "1234"`, "must be a 12-digit AWS account ID such as 123456789012, got: 1234")},
		{name: "resource/source_registry_id_other_account", config: mirrored("web", `  source_registry_id = "210987654321"`),
			want: phrases("ECR Repository Not Found", `source_repository = "web"`, `The ECR repository "web" does not exist`, "source_registry_id", `"web" in the registry of account 210987654321`)},

		// The resource's timeouts block.
		{name: "timeouts/create_parsecs", config: mirrored("web", `  timeouts { create = "10 parsecs" }`),
			want: phrases("Invalid Attribute Value Time Duration", `create = "10 parsecs"`, `"10 parsecs" must be a string containing a sequence of decimal numbers`)},
		{name: "timeouts/update_no_unit", config: mirrored("web", `  timeouts { update = "30" }`),
			want: phrases("Invalid Attribute Value Time Duration", `update = "30"`, `"30" must be a string`, `"2h45m"`)},
		{name: "timeouts/delete_negative", config: mirrored("web", `  timeouts { delete = "-5m" }`),
			want: phrases("Invalid Timeout", `delete = "-5m"`, `The timeouts.delete "-5m" is not a positive duration`, `such as "30m"`)},
		{name: "timeouts/create_zero", config: mirrored("web", `  timeouts { create = "0s" }`),
			want: phrases("Invalid Timeout", `create = "0s"`, `The timeouts.create "0s" is not a positive duration`, "leave it out for the default")},

		{name: "timeouts/read_not_supported", config: mirrored("web", `  timeouts { read = "5m" }`),
			want: phrases("Unsupported argument", `read = "5m"`, `An argument named "read" is not expected here`)},

		// terraform import imagesync_gitlab_mirrored_image.imported <id>.
		{name: "import/one_part", config: imported, importID: "not-a-valid-id",
			want: phrases("Invalid Import ID", `The import ID "not-a-valid-id" has 1 parts separated by ":", not 2 or 3`, "<source_repository>:<gitlab_project>:<target_image>")},
		{name: "import/five_parts", config: imported, importID: "a:b:c:d:e",
			want: phrases("Invalid Import ID", `The import ID "a:b:c:d:e" has 5 parts`, "<source_repository>:<gitlab_project>:<target_image>")},
		{name: "import/empty_part", config: imported, importID: ":proj:img",
			want: phrases("Invalid Import ID", `The import ID ":proj:img" has an empty part`)},
		{name: "import/source_uppercase", config: imported, importID: "Team/API:group/proj",
			want: phrases("Invalid Import ID", `names the source repository "Team/API", which is not an ECR repository name`)},
		{name: "import/project_url", config: imported, importID: "web:https://gitlab.com/g/p",
			want: phrases("Invalid Import ID", `The import ID "web:https://gitlab.com/g/p" contains a URL`, "name the GitLab project by its path (group/project) or numeric ID, not its URL")},
		{name: "import/target_too_deep", config: imported, importID: "web:group/proj:A/B/C",
			want: phrases("Invalid Import ID", `names the target image "A/B/C"`, `(e.g. "a-b/c")`)},
		{name: "import/registry_id_not_an_account", config: imported, importID: "12ab:web:group/proj:web",
			want: phrases("Invalid Import ID", `The import ID "12ab:web:group/proj:web" starts with "12ab", which is not a 12-digit AWS account ID (the source_registry_id)`, "prefixed with <source_registry_id>:")},
		{name: "import/registry_id_without_target", config: imported, importID: "210987654321:web:" + project,
			want: phrases("Invalid Import ID", `names the GitLab project "web"`, `if "210987654321" is the source_registry_id, the target image cannot be left out: give all four parts`)},
		{name: "import/space_in_project", config: imported, importID: "web: " + project,
			want: phrases("Invalid Import ID", fmt.Sprintf(`names the GitLab project " %s", which is neither a project path`, project))},
		{name: "import/project_not_found", config: imported, importID: "web:acc/no-such-project",
			want: phrases("GitLab Project Not Found", `GitLab has no project "acc/no-such-project"`, "Check the path")},
		{name: "import/block_at_plan", config: imported + "\nimport {\n  to = " + importAddr + "\n  id = \"web\"\n}\n",
			want: phrases("Invalid Import ID", `The import ID "web" has 1 parts`)},
	}
}

// phrases matches the given phrases in order, each literally except that a
// space matches any run of white space (terraform wraps long lines).
func phrases(ps ...string) *regexp.Regexp {
	quoted := make([]string, len(ps))
	for i, p := range ps {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(p), " ", `\s+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(quoted, ".*"))
}

// writeProvider writes the configuration hcl under the local environment's
// provider block with the attributes in set replaced or added.
func (w *workspace) writeProvider(set map[string]string, hcl string) {
	w.t.Helper()
	attrs := map[string]string{
		"ecr.region":            fmt.Sprintf("%q", env.Region),
		"ecr.endpoint":          fmt.Sprintf("%q", env.ECRAPIEndpoint),
		"ecr.registry_endpoint": fmt.Sprintf("%q", env.ECRRegistryEndpoint),
		"gitlab.base_url":       fmt.Sprintf("%q", env.GitLabURL),
		"gitlab.registry_url":   fmt.Sprintf("%q", env.GitLabRegistryURL),
	}
	if env.CAFile != "" {
		attrs["ecr.custom_ca_bundle"] = fmt.Sprintf("%q", env.CAFile)
		attrs["gitlab.cacert_file"] = fmt.Sprintf("%q", env.CAFile)
	}
	maps.Copy(attrs, set)
	w.writeRaw(requiredProviders + renderBlock(`provider "imagesync"`, attrs, "") + hcl)
}

// renderBlock renders attributes given by dotted path as nested blocks.
func renderBlock(header string, attrs map[string]string, indent string) string {
	var b strings.Builder
	b.WriteString(indent + header + " {\n")
	nested := map[string]map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if block, rest, ok := strings.Cut(k, "."); ok {
			if nested[block] == nil {
				nested[block] = map[string]string{}
			}
			nested[block][rest] = attrs[k]
			continue
		}
		fmt.Fprintf(&b, "%s  %s = %s\n", indent, k, attrs[k])
	}
	for _, block := range slices.Sorted(maps.Keys(nested)) {
		b.WriteString(renderBlock(block, nested[block], indent+"  "))
	}
	b.WriteString(indent + "}\n")
	return b.String()
}

// seededTags is tag -> digest of a seeded ECR repository.
func seededTags(repo string) map[string]string {
	out := map[string]string{}
	for _, img := range env.Seeded {
		if img.Repository == repo {
			out[img.Tag] = img.Digest
		}
	}
	return out
}

// pushFallbackTag makes an ECR repository whose tag sha256-<hex of other>
// points at its own image, not at other: a tag GitLab cannot hold.
func pushFallbackTag(t *testing.T, other string) (repo, tag, digest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	repo = uniqueName(t) + "-fallback"
	img, err := env.PushECRImage(ctx, repo, "v1", localenv.ImageSpec{OwnLayerSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	tag = "sha256-" + strings.TrimPrefix(other, "sha256:")
	if _, err := env.TagECRImage(ctx, repo, "v1", tag); err != nil {
		t.Fatal(err)
	}
	return repo, tag, img.Digest
}

// writeRaw replaces the configuration with hcl as it is, provider block included.
func (w *workspace) writeRaw(hcl string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, "main.tf"), []byte(hcl), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// testEnv is the local ECR and GitLab shared by the acceptance tests of this
// package; each test uses its own GitLab project, and its own ECR
// repositories when it changes them.
var testEnv *localenv.Env

var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"imagesync": providerserver.NewProtocol6WithError(New("test")()),
}

func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") == "" {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	env, err := localenv.Start(ctx, localenv.Options{Seed: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local ECR and GitLab environment:", err)
		os.Exit(1)
	}
	testEnv = env
	for k, v := range env.EnvVars() {
		os.Setenv(k, v) //nolint:usetesting // TestMain has no *testing.T; the provider runs in this process
	}
	// An empty CLI config: no dev_overrides or credentials of the machine leak in.
	cliConfig, err := os.CreateTemp("", "terraformrc-*")
	if err == nil {
		cliConfig.Close()
		os.Setenv("TF_CLI_CONFIG_FILE", cliConfig.Name()) //nolint:usetesting // see above
	}
	code := m.Run()
	if n := env.ECRWriteAttempts(); n > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d write requests reached the ECR registry with the provider's token; the read-only policy forbids them\n", n)
		code = 1
	}
	if err := env.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the local environment:", err)
	}
	if cliConfig != nil {
		os.Remove(cliConfig.Name())
	}
	os.Exit(code)
}

// providerConfig is the provider block for the local environment.
func providerConfig() string { return testEnv.ProviderHCL() }

// seeded returns the tag -> digest map that the generator pushed to repo.
func seeded(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, img := range testEnv.Seeded {
		if img.Repository == repo {
			out[img.Tag] = img.Digest
		}
	}
	if len(out) == 0 {
		t.Fatalf("nothing seeded in %q", repo)
	}
	return out
}

// uniqueName makes a lowercase name safe for ECR repositories and GitLab paths.
func uniqueName(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
}

// gitlabDigest reads a tag's manifest from the GitLab registry with skopeo,
// a client independent of the provider, and returns the sha256 of its bytes.
// found is false when the registry does not have the tag.
func gitlabDigest(t *testing.T, image, tagOrDigest string) (digest string, found bool) {
	t.Helper()
	digest, found, err := testEnv.GitLabDigest(context.Background(), image, tagOrDigest)
	if err != nil {
		t.Fatal(err)
	}
	return digest, found
}

// rawManifest returns the raw manifest bytes of an image in the GitLab registry, via skopeo.
func rawManifest(t *testing.T, image, tagOrDigest string) []byte {
	t.Helper()
	raw, found, err := testEnv.GitLabManifest(context.Background(), image, tagOrDigest)
	if err != nil || !found {
		t.Fatalf("%s %s: found %v, %v", image, tagOrDigest, found, err)
	}
	return raw
}

// checkGitLabDigests asserts, with skopeo, that every tag has its digest in GitLab.
func checkGitLabDigests(t *testing.T, image string, want map[string]string) {
	t.Helper()
	for tag, dig := range want {
		got, found := gitlabDigest(t, image, tag)
		if !found {
			t.Errorf("GitLab has no %s:%s; want %s", image, tag, dig)
			continue
		}
		if got != dig {
			t.Errorf("GitLab %s:%s is %s; want %s", image, tag, got, dig)
		}
	}
}

func TestAccProvider_badConfiguration(t *testing.T) {
	testAccPreCheck(t)
	ds := `
data "imagesync_ecr_repositories" "x" {
  names = ["web"]
}
`
	cases := []struct {
		provider string
		want     string
	}{
		{`provider "imagesync" {
  ecr { region = "Europe" }
}`, `(?s)ecr.region.*must\s+be\s+an\s+AWS\s+region`},
		{`provider "imagesync" {
  ecr { registry_id = "12345" }
}`, `(?s)registry_id.*12-digit`},
		{`provider "imagesync" {
  gitlab { base_url = "gitlab.example.com" }
}`, `(?s)Invalid URL.*gitlab.example.com`},
		{`provider "imagesync" {
  gitlab { registry_url = "https://registry.example.com/v2" }
}`, `(?s)Invalid GitLab Registry URL.*no\s+path`},
		{`provider "imagesync" {
  max_concurrent_blobs = 0
}`, `(?s)max_concurrent_blobs.*between\s+1\s+and\s+64`},
		{`provider "imagesync" {
  requests_per_second = -1
}`, `(?s)requests_per_second.*at\s+least\s+0`},
		{`provider "imagesync" {
  idle_timeout = "soon"
}`, `(?s)Invalid Duration.*idle_timeout.*"soon"`},
		{`provider "imagesync" {
  idle_timeout = "10ms"
}`, `(?s)Invalid Duration.*idle_timeout.*shorter\s+than\s+1s`},
		{`provider "imagesync" {
  gitlab { cacert_file = "/nonexistent/ca.pem" }
}`, `(?s)Cannot Read the CA Certificate File.*cacert_file.*/nonexistent/ca.pem`},
		{`provider "imagesync" {
  ecr {
    assume_role { role_arn = "migration" }
  }
}`, `(?s)role_arn.*IAM\s+role\s+ARN`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: c.provider + ds, ExpectError: regexp.MustCompile(c.want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
}

func TestAccProvider_missingGitLabToken(t *testing.T) {
	testAccPreCheck(t)
	t.Setenv("GITLAB_TOKEN", "")
	t.Setenv("CI_JOB_TOKEN", "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig() + `
resource "imagesync_gitlab_mirrored_image" "x" {
  source_repository = "web"
  gitlab_project    = "migration/images"
}
`,
			ExpectError: regexp.MustCompile(`(?s)GitLab Token Missing.*GITLAB_TOKEN`),
		}},
	})
}

func TestAccProvider_readOnlyIdentity(t *testing.T) {
	testAccPreCheck(t)
	// The provider runs as the moto IAM user that holds only the seed's
	// read-only policy; a key moto does not know is refused with a hint.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig() + `
data "imagesync_ecr_repositories" "x" {}
`,
			ExpectError: regexp.MustCompile(`(?s)Cannot List ECR Repositories.*ecr:DescribeRepositories`),
		}},
	})
}

// testAccPreCheck skips acceptance tests when TF_ACC is unset, before they
// touch the local environment that TestMain starts only then.
func testAccPreCheck(t *testing.T) {
	t.Helper()
	if testEnv == nil {
		t.Skip("acceptance test: set TF_ACC=1 (make test does) to run it against the local environment")
	}
}

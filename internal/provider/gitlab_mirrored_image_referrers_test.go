package provider

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// sbomType is the artifact type regctl and oras give an SPDX SBOM.
const sbomType = "application/spdx+json"

// Each platform of an index with its own artifacts: every platform signed
// (cosign sign --recursive), a signature on one platform only (an oras-style
// manifest pushed by the test), an SBOM attached by regctl and a signature
// of that SBOM. The plan lists them, apply copies them by digest, a referrer
// added later to a platform in ECR and one deleted in GitLab both show in the
// next plan, and ECR without its referrers API (sha256-<hex> tags only) gives
// the same plan.
func TestAccMirroredImage_referrersOfPlatforms(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "refs")
	addr := "imagesync_gitlab_mirrored_image.test"
	signed := pushECR(t, repo, "signed", localenv.ImageSpec{OCI: true, Platforms: 2, PlatformReferrers: true})
	mixed := pushECR(t, repo, "mixed", localenv.ImageSpec{OCI: true, Platforms: 2})
	mp := platformsOf(t, repo, mixed.Digest)
	sig := attachECR(t, repo, mp[0], localenv.ReferrerArtifactType, "signature of one platform")
	sbom := regctlAttach(t, repo, mp[1], sbomType, `{"spdxVersion":"SPDX-2.3","name":"arm64"}`)
	sigOfSBOM := attachECR(t, repo, sbom, localenv.ReferrerArtifactType, "signature of the sbom")
	want := map[string][]string{mp[0]: {sig}, mp[1]: {sbom}, sbom: {sigOfSBOM}}
	for platform, ref := range signed.PlatformReferrers {
		want[platform] = []string{ref}
	}
	if len(want) != 5 {
		t.Fatalf("the generator signed %d platforms of %s, want 2", len(signed.PlatformReferrers), signed.Digest)
	}
	config := mirroredConfig(project, repo, "")
	planned := func() knownvalue.Check { return referrersCheck(want) }
	t.Cleanup(func() { testEnv.ECRProxy.SetFault(nil) })

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), lazyCheck(planned)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), lazyCheck(planned))},
				Check:             func(*terraform.State) error { return referrersInGitLab(t, image, want) },
			},
			{
				// ECR without its referrers API: the sha256-<hex> fallback tags
				// give the same referrers, so nothing changes.
				PreConfig: func() { testEnv.ECRProxy.SetFault(refuseReferrersAPI) },
				Config:    config,
				PlanOnly:  true,
			},
			{
				// A signature added in ECR to a platform later is planned and copied.
				PreConfig: func() {
					testEnv.ECRProxy.SetFault(nil)
					later := attachECR(t, repo, mp[1], localenv.ReferrerArtifactType, "a later signature of arm64")
					want[mp[1]] = sortedDigests(sbom, later)
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), lazyCheck(planned)),
				}},
				Check: func(*terraform.State) error { return referrersInGitLab(t, image, want) },
			},
			{
				// A platform's signature deleted in GitLab: refresh finds it
				// missing, the plan copies it again.
				PreConfig: func() { deleteGitLabManifest(t, image, sig) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), lazyCheck(planned))},
				Check:             func(*terraform.State) error { return referrersInGitLab(t, image, want) },
			},
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// Import reads GitLab alone, which has no referrers API: the
				// next plan lists the referrers again from ECR. Nor does it
				// know what the last copy read from ECR.
				ResourceName:            addr,
				ImportState:             true,
				ImportStateId:           repo + ":" + project,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts", "referrers", "copy_bytes"},
			},
		},
	})
}

// referrer_artifact_types keeps SBOMs out while signatures go through, and
// taking the filter away plans the SBOMs.
func TestAccMirroredImage_referrerArtifactTypes(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "reftypes")
	addr := "imagesync_gitlab_mirrored_image.test"
	img := pushECR(t, repo, "v1", localenv.ImageSpec{OCI: true, Platforms: 2, PlatformReferrers: true})
	platforms := platformsOf(t, repo, img.Digest)
	platformSBOM := regctlAttach(t, repo, platforms[0], sbomType, `{"spdxVersion":"SPDX-2.3","name":"amd64"}`)
	indexSBOM := attachECR(t, repo, img.Digest, sbomType, `{"spdxVersion":"SPDX-2.3","name":"index"}`)
	signatures := map[string][]string{}
	for platform, ref := range img.PlatformReferrers {
		signatures[platform] = []string{ref}
	}
	all := map[string][]string{img.Digest: {indexSBOM}, platforms[1]: signatures[platforms[1]],
		platforms[0]: sortedDigests(signatures[platforms[0]][0], platformSBOM)}
	onlySignatures := mirroredConfig(project, repo, fmt.Sprintf("  referrer_artifact_types = [%q]", localenv.ReferrerArtifactType))

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      mirroredConfig(project, repo, `  referrer_artifact_types = ["spdx"]`),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`must be a media type`),
			},
			{
				Config: onlySignatures,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), referrersCheck(signatures)),
				}},
				Check: func(*terraform.State) error {
					if err := referrersInGitLab(t, image, signatures); err != nil {
						return err
					}
					for _, d := range []string{platformSBOM, indexSBOM} {
						if _, found := gitlabDigest(t, image, d); found {
							return fmt.Errorf("SBOM %s copied to GitLab although referrer_artifact_types leaves SBOMs out", d)
						}
					}
					return nil
				},
			},
			{
				Config:           onlySignatures,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				Config: mirroredConfig(project, repo, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), referrersCheck(all)),
				}},
				Check: func(*terraform.State) error { return referrersInGitLab(t, image, all) },
			},
		},
	})
}

// refuseReferrersAPI makes the ECR registry answer its referrers API with
// 404, as a registry without one does.
func refuseReferrersAPI(r *http.Request) (int, string, bool) {
	if strings.Contains(r.URL.Path, "/referrers/") {
		return http.StatusNotFound, `{"errors":[{"code":"NOT_FOUND","message":"not found"}]}`, true
	}
	return 0, "", false
}

func referrersCheck(want map[string][]string) knownvalue.Check {
	m := map[string]knownvalue.Check{}
	for subject, refs := range want {
		var l []knownvalue.Check
		for _, r := range refs {
			l = append(l, knownvalue.StringExact(r))
		}
		m[subject] = knownvalue.ListExact(l)
	}
	return knownvalue.MapExact(m)
}

// referrersInGitLab checks each referrer by digest in the GitLab registry
// with skopeo, a client independent of the provider.
func referrersInGitLab(t *testing.T, image string, want map[string][]string) error {
	t.Helper()
	for subject, refs := range want {
		for _, r := range refs {
			if got, found := gitlabDigest(t, image, r); !found || got != r {
				return fmt.Errorf("referrer %s of %s not in GitLab's %s (found %v, digest %s)", r, subject, image, found, got)
			}
		}
	}
	return nil
}

// platformsOf lists the platform manifests of the index at dig in ECR.
func platformsOf(t *testing.T, repo, dig string) []string {
	t.Helper()
	platforms, err := testEnv.ECRPlatforms(context.Background(), repo, dig)
	if err != nil {
		t.Fatal(err)
	}
	return platforms
}

func attachECR(t *testing.T, repo, subject, artifactType, body string) string {
	t.Helper()
	d, err := testEnv.AttachECRArtifact(context.Background(), repo, subject, artifactType, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func regctlAttach(t *testing.T, repo, subject, artifactType, body string) string {
	t.Helper()
	d, err := testEnv.RegctlArtifactPut(context.Background(), repo, subject, artifactType, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deleteGitLabManifest deletes a manifest by digest from the GitLab registry.
func deleteGitLabManifest(t *testing.T, image, dig string) {
	t.Helper()
	r, err := testEnv.GitLabRef(image, "any")
	if err != nil {
		t.Fatal(err)
	}
	if err := testEnv.RegistryClient().ManifestDelete(context.Background(), r.SetDigest(dig)); err != nil {
		t.Fatal(err)
	}
	if _, found := gitlabDigest(t, image, dig); found {
		t.Fatalf("%s@%s still in GitLab after delete", image, dig)
	}
}

func sortedDigests(d ...string) []string {
	slices.Sort(d)
	return d
}

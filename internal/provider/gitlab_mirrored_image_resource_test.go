package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// expectTagChanges checks that the plan changes exactly these tags of the
// resource's images map (added, removed or given another digest).
type expectTagChanges struct {
	address string
	tags    []string
}

func (e expectTagChanges) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.address {
			continue
		}
		before := imagesOf(rc.Change.Before)
		after := imagesOf(rc.Change.After)
		var changed []string
		for tag, d := range after {
			if before[tag] != d {
				changed = append(changed, tag)
			}
		}
		for tag := range before {
			if _, ok := after[tag]; !ok {
				changed = append(changed, tag)
			}
		}
		sort.Strings(changed)
		want := append([]string{}, e.tags...)
		sort.Strings(want)
		if strings.Join(changed, ",") != strings.Join(want, ",") {
			resp.Error = fmt.Errorf("%s: plan changes tags %v, want exactly %v (before %v, after %v)", e.address, changed, want, before, after)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", e.address)
}

func imagesOf(v any) map[string]any {
	obj, _ := v.(map[string]any)
	images, _ := obj["images"].(map[string]any)
	if images == nil {
		return map[string]any{}
	}
	return images
}

// lazyCheck builds its check when the step runs, after PreConfig changed the expectation.
type lazyCheck func() knownvalue.Check

func (l lazyCheck) CheckValue(v any) error { return l().CheckValue(v) }
func (l lazyCheck) String() string         { return l().String() }

func imagesCheck(images map[string]string) knownvalue.Check {
	m := map[string]knownvalue.Check{}
	for t, d := range images {
		m[t] = knownvalue.StringExact(d)
	}
	return knownvalue.MapExact(m)
}

func pushECR(t *testing.T, repo, tag string, spec localenv.ImageSpec) localenv.Image {
	t.Helper()
	img, err := testEnv.PushECRImage(context.Background(), repo, tag, spec)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tagECR(t *testing.T, repo, existing, tag string) localenv.Image {
	t.Helper()
	img, err := testEnv.TagECRImage(context.Background(), repo, existing, tag)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// deleteGitLabTag deletes a tag through the GitLab API, as a person would in the UI.
func deleteGitLabTag(t *testing.T, project, image, tag string) {
	t.Helper()
	var repos []struct {
		ID   int    `json:"id"`
		Path string `json:"path"`
	}
	gitlabAPI(t, http.MethodGet, "/projects/"+url.PathEscape(project)+"/registry/repositories", &repos)
	for _, r := range repos {
		if r.Path == project+"/"+image {
			gitlabAPI(t, http.MethodDelete, fmt.Sprintf("/projects/%s/registry/repositories/%d/tags/%s", url.PathEscape(project), r.ID, tag), nil)
			return
		}
	}
	t.Fatalf("GitLab project %s has no image %s", project, image)
}

func gitlabAPI(t *testing.T, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, testEnv.GitLabURL+"/api/v4"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("PRIVATE-TOKEN", testEnv.GitLabToken)
	resp, err := testEnv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// manifestPuts records the manifest PUTs the GitLab registry receives, per image path.
type manifestPuts struct {
	mu   sync.Mutex
	refs []string
}

func (m *manifestPuts) observe(r *http.Request) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		m.mu.Lock()
		m.refs = append(m.refs, strings.TrimPrefix(r.URL.Path, "/v2/"))
		m.mu.Unlock()
	}
}

// start records the manifest PUTs from now on.
func (m *manifestPuts) start() {
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) { m.observe(r); return 0, "", false })
}

// expectOnly checks that the only manifest PUT recorded was for tag.
func (m *manifestPuts) expectOnly(t *testing.T, tag string) {
	t.Helper()
	if got := m.list(); len(got) != 1 || !strings.HasSuffix(got[0], "/manifests/"+tag) {
		t.Errorf("re-apply sent manifest PUTs %v, want only the one for %s", got, tag)
	}
}

// refuseManifestPut makes the GitLab registry answer the manifest PUT of one
// tag of repo with status and body.
func refuseManifestPut(repo, tag string, status int, body string) {
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+repo+"/manifests/"+tag) {
			return status, body, true
		}
		return 0, "", false
	})
}

func (m *manifestPuts) list() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := append([]string{}, m.refs...)
	sort.Strings(out)
	return out
}

// accTarget makes a test's own ECR repository name, GitLab project and the
// image path the repository gets in that project.
func accTarget(t *testing.T, kind string) (repo, project, image string) {
	t.Helper()
	name := uniqueName(t)
	repo = kind + "/" + name
	project = testEnv.GitLab.AddProject("acc/" + name).Path
	return repo, project, project + "/" + repo
}

func mirroredConfig(project, source, extra string) string {
	return providerConfig() + fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "test" {
  source_repository = %q
  gitlab_project    = %q
%s
}
`, source, project, extra)
}

func TestAccMirroredImage_forEachFromDataSource(t *testing.T) {
	testAccPreCheck(t)
	project := testEnv.GitLab.AddProject("acc/" + uniqueName(t)).Path
	repos := []string{"signed/app", "team/api", "team/worker", "web"}
	config := providerConfig() + fmt.Sprintf(`
data "imagesync_ecr_repositories" "src" {
  name_regex = "^(web|team/.*|signed/app)$"
}

# terraform-plugin-testing cannot read state with string for_each keys, so the
# test iterates with count; examples/demo runs the for_each form for real.
resource "imagesync_gitlab_mirrored_image" "m" {
  count = length(data.imagesync_ecr_repositories.src.repositories)

  source_repository = data.imagesync_ecr_repositories.src.repositories[count.index].name
  gitlab_project    = %q
  images            = data.imagesync_ecr_repositories.src.repositories[count.index].images
}
`, project)
	var stateChecks []statecheck.StateCheck
	for i, repo := range repos { // sorted, as the data source lists them
		addr := fmt.Sprintf("imagesync_gitlab_mirrored_image.m[%d]", i)
		stateChecks = append(stateChecks,
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("images"), imagesCheck(seeded(t, repo))),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("target_reference"), knownvalue.StringExact(testEnv.GitLabRegistryHost+"/"+project+"/"+repo)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("id"), knownvalue.StringExact(repo+":"+project+":"+repo)),
		)
	}
	// Every blob leaves ECR once, however many repositories share it: the
	// shared base layers are mounted in GitLab from the first copy.
	var blobGets sync.Map
	var mounts atomic.Int32
	testEnv.ECRProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			n, _ := blobGets.LoadOrStore(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], new(atomic.Int32))
			n.(*atomic.Int32).Add(1) //nolint:forcetypeassert // only *atomic.Int32 is stored
		}
		return 0, "", false
	})
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && r.URL.Query().Get("from") != "" {
			mounts.Add(1)
		}
		return 0, "", false
	})
	t.Cleanup(func() { testEnv.ECRProxy.SetFault(nil); testEnv.GitLabProxy.SetFault(nil) })
	blobsOnce := checkNow(func() {
		blobGets.Range(func(k, v any) bool {
			if n := v.(*atomic.Int32).Load(); n != 1 { //nolint:forcetypeassert // see above
				t.Errorf("blob %v read from ECR %d times, want once", k, n)
			}
			return true
		})
		// 4 repositories share 2 base layers: 3 of them mount both.
		if n := mounts.Load(); n < 6 {
			t.Errorf("%d cross-repository mounts, want at least 6", n)
		}
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(`imagesync_gitlab_mirrored_image.m[3]`, plancheck.ResourceActionCreate),
					// The plan shows every tag and digest, and where they go, not "known after apply".
					plancheck.ExpectKnownValue(`imagesync_gitlab_mirrored_image.m[3]`, tfjsonpath.New("images"), imagesCheck(seeded(t, "web"))),
					plancheck.ExpectKnownValue(`imagesync_gitlab_mirrored_image.m[3]`, tfjsonpath.New("target_reference"),
						knownvalue.StringExact(testEnv.GitLabRegistryHost+"/"+project+"/web")),
					plancheck.ExpectKnownValue(`imagesync_gitlab_mirrored_image.m[0]`, tfjsonpath.New("referrers"),
						knownvalue.MapSizeExact(1)),
				}},
				ConfigStateChecks: append(stateChecks, checkNow(func() {
					for _, repo := range repos {
						checkGitLabDigests(t, project+"/"+repo, seeded(t, repo))
					}
					checkIndexIntact(t, project+"/team/worker", seeded(t, "team/worker"))
					checkReferrerCopied(t, project+"/signed/app")
				}), blobsOnce),
			},
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// checkNow is a state check that runs assertions against the registries
// themselves; it reports through t, so it never fails the step on its own.
type checkNow func()

func (c checkNow) CheckState(context.Context, statecheck.CheckStateRequest, *statecheck.CheckStateResponse) {
	c()
}

// checkIndexIntact checks that every platform of each index was copied.
func checkIndexIntact(t *testing.T, image string, tags map[string]string) {
	t.Helper()
	for tag := range tags {
		var index struct {
			Manifests []struct {
				Digest string `json:"digest"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(rawManifest(t, image, tag), &index); err != nil {
			t.Fatalf("%s:%s: %v", image, tag, err)
		}
		if len(index.Manifests) != 2 {
			t.Errorf("%s:%s lists %d platforms, want 2", image, tag, len(index.Manifests))
		}
		for _, m := range index.Manifests {
			if got, found := gitlabDigest(t, image, m.Digest); !found || got != m.Digest {
				t.Errorf("%s@%s: platform manifest missing or altered (found %v, digest %s)", image, m.Digest, found, got)
			}
		}
	}
}

// checkReferrerCopied checks that the signature of signed/app:v1 came along,
// by digest: GitLab has no referrers API and reads the sha256-<hex> fallback
// tag as the subject's own digest, so no fallback tag can be written there.
func checkReferrerCopied(t *testing.T, image string) {
	t.Helper()
	referrer, subject := seededReferrer(t)
	if got, found := gitlabDigest(t, image, referrer); !found || got != referrer {
		t.Errorf("referrer %s not copied to %s (found %v)", referrer, image, found)
	}
	fallback := strings.Replace(subject, "sha256:", "sha256-", 1)
	if got, _ := gitlabDigest(t, image, fallback); got != subject {
		t.Errorf("%s:%s reads as %s; GitLab's registry (and so the local one) reads it as the subject %s", image, fallback, got, subject)
	}
}

// seededReferrer is the signature the generator pushed for signed/app:v1, and its subject.
func seededReferrer(t *testing.T) (referrer, subject string) {
	t.Helper()
	for _, img := range testEnv.Seeded {
		if img.Repository == "signed/app" && img.ReferrerDigest != "" {
			return img.ReferrerDigest, img.Digest
		}
	}
	t.Fatal("the seed has no referrer")
	return "", ""
}

// A digest known only at apply (here from terraform_data) makes the
// referrers known only at apply too: the plan neither fails on the unknown
// element nor promises that no signature comes along.
func TestAccMirroredImage_digestKnownAtApply(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "late-digest")
	addr := "imagesync_gitlab_mirrored_image.test"
	signed := pushECR(t, repo, "v1", localenv.ImageSpec{Referrer: true})
	config := providerConfig() + fmt.Sprintf(`
resource "terraform_data" "digest" {
  input = %q
}

resource "imagesync_gitlab_mirrored_image" "test" {
  source_repository = %q
  gitlab_project    = %q
  images            = { v1 = terraform_data.digest.output }
}
`, signed.Digest, repo, project)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue(addr, tfjsonpath.New("referrers")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("images"), imagesCheck(map[string]string{"v1": signed.Digest})),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("referrers"), knownvalue.MapExact(map[string]knownvalue.Check{
						signed.Digest: knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(signed.ReferrerDigest)}),
					})),
					checkNow(func() {
						if got, found := gitlabDigest(t, image, signed.ReferrerDigest); !found || got != signed.ReferrerDigest {
							t.Errorf("the signature %s of v1 was not copied to %s", signed.ReferrerDigest, image)
						}
					}),
				},
			},
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

func TestAccMirroredImage_driftBothSides(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "drift")
	addr := "imagesync_gitlab_mirrored_image.test"
	a := pushECR(t, repo, "a", localenv.ImageSpec{})
	b := pushECR(t, repo, "b", localenv.ImageSpec{OCI: true})
	tagECR(t, repo, "b", "c") // two tags on one digest
	want := map[string]string{"a": a.Digest, "b": b.Digest, "c": b.Digest}
	config := mirroredConfig(project, repo, "")
	var puts manifestPuts
	var uploads atomic.Int32

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					puts.start()
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("images"), imagesCheck(want)),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("target_image"), knownvalue.StringExact(repo)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(addr, tfjsonpath.New("images"), imagesCheck(want))},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, want)
					// Two digests: each copied once, the second tag on b's digest is one more manifest PUT.
					if got := puts.list(); len(got) != 3 {
						t.Errorf("manifest PUTs %v, want 3 (a, b, c)", got)
					}
					return nil
				},
			},
			{
				// A tag moved in ECR: exactly that tag is planned.
				PreConfig: func() { a = pushECR(t, repo, "a", localenv.ImageSpec{}); want["a"] = a.Digest },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					expectTagChanges{addr, []string{"a"}},
				}},
				Check: func(*terraform.State) error { checkGitLabDigests(t, image, want); return nil },
			},
			{
				// Drift in GitLab: one tag deleted, one overwritten; apply restores both.
				PreConfig: func() {
					deleteGitLabTag(t, project, repo, "b")
					if _, err := testEnv.PushGitLabImage(context.Background(), image, "c", localenv.ImageSpec{}); err != nil {
						t.Fatal(err)
					}
					if _, found := gitlabDigest(t, image, "b"); found {
						t.Fatal("tag b still in GitLab after delete")
					}
					uploads.Store(0)
					testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
						if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
							uploads.Add(1)
						}
						return 0, "", false
					})
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					expectTagChanges{addr, []string{"b", "c"}},
				}},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, want)
					// b's manifest and blobs are still in GitLab by digest: restoring
					// both tags is manifest PUTs, no blob upload.
					if n := uploads.Load(); n != 0 {
						t.Errorf("%d blob uploads to restore tags whose content GitLab holds, want 0", n)
					}
					return nil
				},
			},
			{
				// A new tag in ECR is planned and copied.
				PreConfig: func() { d := pushECR(t, repo, "d", localenv.ImageSpec{Platforms: 2}); want["d"] = d.Digest },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectTagChanges{addr, []string{"d"}},
				}},
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(addr, tfjsonpath.New("images"), lazyCheck(func() knownvalue.Check { return imagesCheck(want) }))},
				Check:             func(*terraform.State) error { checkGitLabDigests(t, image, want); return nil },
			},
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// Tags leaving the filter leave state, but stay in GitLab.
				Config: mirroredConfig(project, repo, `  tag_regex = "^[ad]$"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectTagChanges{addr, []string{"b", "c"}},
				}},
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue(addr, tfjsonpath.New("images"),
					lazyCheck(func() knownvalue.Check { return imagesCheck(map[string]string{"a": want["a"], "d": want["d"]}) }))},
				Check: func(*terraform.State) error { checkGitLabDigests(t, image, want); return nil },
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateId:     repo + ":" + project,
				ImportStateVerify: true,
				// Import cannot know the filter: it manages every source tag GitLab holds;
				// nor what the last copy read from ECR.
				ImportStateVerifyIgnore: []string{"timeouts", "tag_regex", "images", "images.%", "images.b", "images.c", "copy_bytes"},
			},
		},
	})
	testEnv.GitLabProxy.SetFault(nil)
}

func TestAccMirroredImage_partialFailure(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "partial")
	addr := "imagesync_gitlab_mirrored_image.test"
	ok1 := pushECR(t, repo, "ok1", localenv.ImageSpec{})
	config := mirroredConfig(project, repo, "")
	var puts manifestPuts
	var ok2, bad localenv.Image
	t.Cleanup(func() { testEnv.GitLabProxy.SetFault(nil) })

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, map[string]string{"ok1": ok1.Digest})
					return nil
				},
			},
			{
				// Two new tags; the registry refuses one of them.
				PreConfig: func() {
					ok2 = pushECR(t, repo, "ok2", localenv.ImageSpec{})
					bad = pushECR(t, repo, "bad", localenv.ImageSpec{})
					refuseManifestPut(repo, "bad", http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"injected failure for tag bad"}]}`)
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)Tag Copy Failed.*bad.*injected failure for tag bad`),
			},
			{
				// ok2 landed and is in state: the re-apply plans and copies only bad.
				PreConfig: func() {
					checkGitLabDigests(t, image, map[string]string{"ok1": ok1.Digest, "ok2": ok2.Digest})
					if _, found := gitlabDigest(t, image, "bad"); found {
						t.Fatal("tag bad reached GitLab despite the injected failure")
					}
					puts.start()
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					expectTagChanges{addr, []string{"bad"}},
				}},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, map[string]string{"ok1": ok1.Digest, "ok2": ok2.Digest, "bad": bad.Digest})
					puts.expectOnly(t, "bad")
					return nil
				},
			},
		},
	})
}

func TestAccMirroredImage_tokenExpiresMidCopy(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "expiry")
	img := pushECR(t, repo, "v1", localenv.ImageSpec{OwnLayerSize: 4 << 20, Platforms: 2})
	testEnv.GitLab.SetTokenTTL(2 * time.Second)
	t.Cleanup(func() {
		testEnv.GitLab.SetTokenTTL(300 * time.Second)
		testEnv.GitLabProxy.SetFault(nil)
	})
	// The first blob upload to this image stalls past the token's lifetime
	// before it reaches the registry (the token lapses between two requests of
	// the copy); the next stalls in the middle of its body (the token lapses
	// in the middle of a blob).
	var uploads atomic.Int32
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if strings.Contains(r.URL.Path, "/"+repo+"/blobs/uploads/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			switch uploads.Add(1) {
			case 1:
				time.Sleep(2500 * time.Millisecond)
			case 2:
				r.Body = &stallingReader{r: r.Body, after: 1 << 20, pause: 2500 * time.Millisecond}
			}
		}
		return 0, "", false
	})
	before := testEnv.GitLab.TokenRequests()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: mirroredConfig(project, repo, ""),
			Check: func(*terraform.State) error {
				checkGitLabDigests(t, image, map[string]string{"v1": img.Digest})
				if n := uploads.Load(); n < 2 {
					t.Errorf("%d blob uploads seen; the stalls were not exercised", n)
				}
				if n := testEnv.GitLab.TokenRequests() - before; n < 2 {
					t.Errorf("%d registry token requests; the token should have been renewed", n)
				}
				return nil
			},
		}},
	})
}

// stallingReader pauses once after the first bytes of a request body.
type stallingReader struct {
	r     io.ReadCloser
	after int
	pause time.Duration
	read  int
}

func (s *stallingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.read < s.after && s.read+n >= s.after {
		time.Sleep(s.pause)
	}
	s.read += n
	return n, err
}

func (s *stallingReader) Close() error { return s.r.Close() }

func TestAccMirroredImage_destroy(t *testing.T) {
	testAccPreCheck(t)
	name := uniqueName(t)
	proj := testEnv.GitLab.AddProject("acc/" + name)
	project := proj.Path
	kept, deleted := "keep/"+name, "delete/"+name
	k := pushECR(t, kept, "v1", localenv.ImageSpec{})
	d := pushECR(t, deleted, "v1", localenv.ImageSpec{})
	tagECR(t, deleted, "v1", "v1.0")
	config := providerConfig() + fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "keep" {
  source_repository = %q
  gitlab_project    = %q
}
# The project by its numeric ID this time.
resource "imagesync_gitlab_mirrored_image" "delete" {
  source_repository = %q
  gitlab_project    = "%d"
  delete_on_destroy = true
}
`, kept, project, deleted, proj.ID)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: config,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("imagesync_gitlab_mirrored_image.delete", tfjsonpath.New("target_reference"),
					knownvalue.StringExact(testEnv.GitLabRegistryHost+"/"+project+"/"+deleted)),
			},
			Check: func(*terraform.State) error {
				// A tag the resource does not manage: it must survive the destroy.
				if _, err := testEnv.PushGitLabImage(context.Background(), project+"/"+deleted, "other", localenv.ImageSpec{}); err != nil {
					t.Fatal(err)
				}
				return nil
			},
		}},
		CheckDestroy: func(*terraform.State) error {
			checkGitLabDigests(t, project+"/"+kept, map[string]string{"v1": k.Digest})
			for _, tag := range []string{"v1", "v1.0"} {
				if _, found := gitlabDigest(t, project+"/"+deleted, tag); found {
					t.Errorf("tag %s survived delete_on_destroy", tag)
				}
			}
			if _, found := gitlabDigest(t, project+"/"+deleted, "other"); !found {
				t.Error("delete_on_destroy removed a tag the resource did not manage")
			}
			_ = d
			return nil
		},
	})
}

func TestAccMirroredImage_importExisting(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "imported")
	addr := "imagesync_gitlab_mirrored_image.test"
	v1 := pushECR(t, repo, "v1", localenv.ImageSpec{})
	pushECR(t, repo, "v2", localenv.ImageSpec{OCI: true})
	// Copied earlier by another tool: regclient straight from registry to registry.
	rc := testEnv.RegistryClient()
	for _, tag := range []string{"v1", "v2"} {
		src, _ := testEnv.ECRRef(repo, tag)
		dst, _ := testEnv.GitLabRef(image, tag)
		if err := rc.ImageCopy(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
	}
	config := mirroredConfig(project, repo, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:             config,
				ResourceName:       addr,
				ImportState:        true,
				ImportStateId:      repo + ":" + project + ":" + repo,
				ImportStatePersist: true,
			},
			{
				// Nothing differs: an empty plan after import.
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// v2 moves in ECR: only v2 is planned.
				PreConfig: func() { pushECR(t, repo, "v2", localenv.ImageSpec{}) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectTagChanges{addr, []string{"v2"}},
				}},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, map[string]string{"v1": v1.Digest})
					return nil
				},
			},
			{
				Config:        config,
				ResourceName:  addr,
				ImportState:   true,
				ImportStateId: "not-a-valid-id",
				ExpectError:   regexp.MustCompile(`Invalid Import ID`),
			},
		},
	})
}

func TestAccMirroredImage_badInput(t *testing.T) {
	testAccPreCheck(t)
	project := testEnv.GitLab.AddProject("acc/" + uniqueName(t)).Path
	web := seeded(t, "web")
	zero := "sha256:" + strings.Repeat("0", 64)
	cases := []struct {
		name, source, extra, project string
		want                         string
	}{
		{"uppercase target", "web", `  target_image = "Web/API"`, project, `(?s)Invalid Target Image Name.*"Web/API".*"web/api"`},
		{"deep target", "web", `  target_image = "a/b/c"`, project, `(?s)Invalid Target Image Name.*"a/b/c".*3\s+path\s+segments.*"a-b/c"`},
		{"deep default", "org/team/svc/api", "", project, `(?s)Invalid Target Image Name.*source_repository.*"org/team/svc/api".*"org-team-svc/api"`},
		{"digest not in ECR", "web", fmt.Sprintf(`  images = { "v1.0" = %q }`, zero), project, `(?s)Digest Not in ECR for This Tag.*"v1.0"`},
		{"tag not in ECR", "web", fmt.Sprintf(`  images = { "nope" = %q }`, web["v1.0"]), project, `(?s)Tag Not in ECR.*"nope"`},
		{"malformed digest", "web", `  images = { "v1.0" = "latest" }`, project, `(?s)images.*must\s+be\s+a\s+digest`},
		{"bad tag regex", "web", `  tag_regex = "v(1"`, project, `(?s)Invalid Regular Expression.*v\(1`},
		{"bad project", "web", "", "https://gitlab.com/group/project", `(?s)Invalid GitLab Project.*https://gitlab.com/group/project`},
		{"missing source", "no-such-repo", "", project, `(?s)ECR Repository Not Found.*no-such-repo`},
		{"bad source name", "Team/API", "", project, `Invalid ECR Repository Name`},
		{"images and tag_regex", "web", fmt.Sprintf("  images    = { \"v1.0\" = %q }\n  tag_regex = \"^v\"", web["v1.0"]), project, `(?s)Invalid Attribute Combination.*images`},
		{"empty target", "web", `  target_image = ""`, project, `(?s)Invalid Target Image Name.*is\s+empty`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{
			Config:      mirroredConfig(c.project, c.source, c.extra),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(c.want),
		})
	}
	// A project that does not exist is found out at plan, before review.
	steps = append(steps, resource.TestStep{
		Config:      mirroredConfig("acc/no-such-project", "web", ""),
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`(?s)GitLab Project Not Found.*acc/no-such-project`),
	})
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testAccProtoV6ProviderFactories, Steps: steps})
}

func TestAccMirroredImage_partialFailureOnCreate(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "partialcreate")
	addr := "imagesync_gitlab_mirrored_image.test"
	good := pushECR(t, repo, "good", localenv.ImageSpec{})
	bad := pushECR(t, repo, "bad", localenv.ImageSpec{OCI: true})
	config := mirroredConfig(project, repo, "")
	var puts manifestPuts
	t.Cleanup(func() { testEnv.GitLabProxy.SetFault(nil) })

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					refuseManifestPut(repo, "bad", http.StatusInternalServerError, `{"errors":[{"code":"UNKNOWN","message":"injected storage failure"}]}`)
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)Tag Copy Failed.*bad.*injected storage failure`),
			},
			{
				// Terraform taints a resource created with errors: the replacement
				// deletes nothing (delete_on_destroy is false) and copies only bad.
				PreConfig: func() {
					checkGitLabDigests(t, image, map[string]string{"good": good.Digest})
					puts.start()
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionReplace),
				}},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, map[string]string{"good": good.Digest, "bad": bad.Digest})
					puts.expectOnly(t, "bad")
					return nil
				},
			},
		},
	})
}

func TestAccMirroredImage_unreadableTargetKeepsState(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "unreadable")
	addr := "imagesync_gitlab_mirrored_image.test"
	v1 := pushECR(t, repo, "v1", localenv.ImageSpec{})
	config := mirroredConfig(project, repo, "")
	var v2 localenv.Image
	t.Cleanup(func() { testEnv.GitLabProxy.SetFault(nil) })
	// Refuse every way of reading the image's tags: a HEAD per tag, and
	// GitLab's tag listing where the registry serves it.
	var refuseHeads localenv.FaultFunc = func(r *http.Request) (int, string, bool) {
		headOfTag := r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/"+repo+"/manifests/")
		tagListing := strings.HasPrefix(r.URL.Path, "/gitlab/v1/repositories/") && strings.Contains(r.URL.Path, "/"+repo+"/tags/list")
		if headOfTag || tagListing {
			return http.StatusForbidden, "", true
		}
		return 0, "", false
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				// The refresh fails: an error, and the resource stays in state.
				PreConfig:   func() { testEnv.GitLabProxy.SetFault(refuseHeads) },
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)Cannot Read Tags From the GitLab Registry.*kept\s+in\s+state`),
			},
			{
				// A new tag, and the registry refuses reads during the apply itself:
				// nothing is claimed in state, so the next plan still adds v2.
				PreConfig: func() {
					testEnv.GitLabProxy.SetFault(nil)
					v2 = pushECR(t, repo, "v2", localenv.ImageSpec{})
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectTagChanges{addr, []string{"v2"}},
					checkNowPlan(func() { testEnv.GitLabProxy.SetFault(refuseHeads) }),
				}},
				ExpectError: regexp.MustCompile(`Cannot Read Tags From the GitLab Registry`),
			},
			{
				PreConfig: func() { testEnv.GitLabProxy.SetFault(nil) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectTagChanges{addr, []string{"v2"}},
				}},
				Check: func(*terraform.State) error {
					checkGitLabDigests(t, image, map[string]string{"v1": v1.Digest, "v2": v2.Digest})
					return nil
				},
			},
		},
	})
}

// checkNowPlan runs an action between plan and apply.
type checkNowPlan func()

func (c checkNowPlan) CheckPlan(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
	c()
}

func TestAccMirroredImage_connectionCutMidBlob(t *testing.T) {
	testAccPreCheck(t)
	repo, project, image := accTarget(t, "cut")
	img := pushECR(t, repo, "v1", localenv.ImageSpec{OwnLayerSize: 4 << 20})
	t.Cleanup(func() { testEnv.GitLabProxy.SetFault(nil) })
	// The first large blob upload breaks after 1 MiB, as a dropped connection
	// would; the registry never gets the rest.
	var cut atomic.Int32
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if strings.Contains(r.URL.Path, "/"+repo+"/blobs/uploads/") && r.ContentLength > 2<<20 && cut.Add(1) == 1 {
			r.Body = &breakingReader{r: r.Body, after: 1 << 20}
		}
		return 0, "", false
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: mirroredConfig(project, repo, ""),
			Check: func(*terraform.State) error {
				if cut.Load() == 0 {
					t.Error("no upload was cut: the fault was not exercised")
				}
				checkGitLabDigests(t, image, map[string]string{"v1": img.Digest})
				return nil
			},
		}},
	})
}

// breakingReader fails after the first bytes of a request body.
type breakingReader struct {
	r     io.ReadCloser
	after int
	read  int
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.read >= b.after {
		return 0, errors.New("connection cut by the test")
	}
	if len(p) > b.after-b.read {
		p = p[:b.after-b.read]
	}
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *breakingReader) Close() error { return b.r.Close() }

func TestAccMirroredImage_refusedMountFallsBackToCopy(t *testing.T) {
	testAccPreCheck(t)
	project := testEnv.GitLab.AddProject("acc/" + uniqueName(t)).Path
	// A GitLab whose token service will not grant the source repository's
	// scope refuses every cross-repository mount.
	var refused atomic.Int32
	testEnv.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if r.Method == http.MethodPost && r.URL.Query().Get("from") != "" {
			refused.Add(1)
			return http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED","message":"mount refused by the test"}]}`, true
		}
		return 0, "", false
	})
	t.Cleanup(func() { testEnv.GitLabProxy.SetFault(nil) })
	config := providerConfig() + fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "web" {
  source_repository = "web"
  gitlab_project    = %[1]q
}
resource "imagesync_gitlab_mirrored_image" "api" {
  source_repository = "team/api"
  gitlab_project    = %[1]q
}
`, project)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				if refused.Load() == 0 {
					t.Error("no mount was attempted: the fallback was not exercised")
				}
				checkGitLabDigests(t, project+"/web", seeded(t, "web"))
				checkGitLabDigests(t, project+"/team/api", seeded(t, "team/api"))
				return nil
			},
		}},
	})
}

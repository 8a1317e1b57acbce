package acceptance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/regclient/regclient/types/ref"
)

// The cut-over: GitLab starts to hold data of its own, and ECR is switched
// off. These tests hold the provider to never losing or silently overwriting
// GitLab's data, and to needing nothing from ECR to refresh or destroy.

func mirrorConfig(source, project, extra string) string {
	return fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "m" {
  source_repository = %q
  gitlab_project    = %q
%s
}
`, source, project, extra)
}

func push(t *testing.T, repo, tag string, spec localenv.ImageSpec) localenv.Image {
	t.Helper()
	img, err := env.PushECRImage(context.Background(), repo, tag, spec)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fixture makes a test's GitLab project and ECR repository name.
func fixture(t *testing.T, kind string) (project, repo string) {
	t.Helper()
	project, name := newProject(t)
	return project, kind + "/" + name
}

func expectGitLab(t *testing.T, image string, want map[string]string) {
	t.Helper()
	for tag, dig := range want {
		if got, found := gitlabDigest(t, image, tag); !found || got != dig {
			t.Errorf("%s:%s in GitLab is %q (found %v), want %s", image, tag, got, found, dig)
		}
	}
}

func mustMatch(t *testing.T, out, pattern string) {
	t.Helper()
	if !regexp.MustCompile(pattern).MatchString(out) {
		t.Errorf("output does not match %s:\n%s", pattern, out)
	}
}

func TestCutover_emptyRepositoryCreatedOnce(t *testing.T) {
	project, name := newProject(t)
	empty := "empty/" + name
	if err := env.CreateECRRepository(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	filtered := "filtered/" + name
	push(t, filtered, "latest", localenv.ImageSpec{})
	w := newWorkspace(t, mirrorConfig(empty, project, "")+strings.Replace(mirrorConfig(filtered, project, `  tag_regex = "^v[0-9]+$"`), `"m"`, `"f"`, 1))
	// Neither has a tag to copy: created once, and the next plan is empty.
	w.apply()
	w.mustRun(0, "plan", "-refresh-only", "-detailed-exitcode", "-input=false", "-no-color")
	// A tag arriving later is planned and copied as usual.
	v1 := push(t, empty, "v1", localenv.ImageSpec{})
	w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	w.apply()
	expectGitLab(t, project+"/"+empty, map[string]string{"v1": v1.Digest})
}

func TestCutover_overwriteWarnedAtPlan(t *testing.T) {
	project, repo := fixture(t, "overwrite")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	v2 := push(t, repo, "v2", localenv.ImageSpec{})
	native, err := env.PushGitLabImage(context.Background(), project+"/"+repo, "v1", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, mirrorConfig(repo, project, ""))
	out := w.mustRun(0, "plan", "-input=false", "-no-color", "-out=plan.tfplan")
	target := env.GitLabRegistryHost + "/" + project + "/" + repo
	mustMatch(t, out, `(?s)Warning: GitLab Tag Will Be Overwritten.*GitLab holds\s+`+regexp.QuoteMeta(target)+`:v1\s+at\s+`+native.Digest+`;\s+this\s+apply\s+replaces\s+it\s+with\s+`+v1.Digest+`\s+from\s+ECR\.`)
	if regexp.MustCompile(`:v2\s+at\s+sha256`).MatchString(out) {
		t.Error("a tag GitLab does not hold is warned about")
	}
	// The machine-readable plan carries the warning with its address, for
	// the merge-request summary.
	jsonOut := w.mustRun(0, "plan", "-input=false", "-json")
	if !hasDiagnostic(jsonOut, "warning", "GitLab Tag Will Be Overwritten", "imagesync_gitlab_mirrored_image.m") {
		t.Errorf("terraform plan -json has no overwrite warning for imagesync_gitlab_mirrored_image.m:\n%s", jsonOut)
	}
	w.mustRun(0, "apply", "-input=false", "-no-color", "plan.tfplan")
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest, "v2": v2.Digest})
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
}

// hasDiagnostic finds a diagnostic in terraform's machine-readable output.
func hasDiagnostic(jsonLines, severity, summary, address string) bool {
	sc := bufio.NewScanner(strings.NewReader(jsonLines))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Type       string `json:"type"`
			Diagnostic struct {
				Severity string `json:"severity"`
				Summary  string `json:"summary"`
				Address  string `json:"address"`
			} `json:"diagnostic"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Type == "diagnostic" &&
			line.Diagnostic.Severity == severity && line.Diagnostic.Summary == summary && line.Diagnostic.Address == address {
			return true
		}
	}
	return false
}

func TestCutover_destroyKeepsTagsPushedAgain(t *testing.T) {
	project, repo := fixture(t, "destroy")
	push(t, repo, "v1", localenv.ImageSpec{})
	push(t, repo, "v2", localenv.ImageSpec{})
	w := newWorkspace(t, mirrorConfig(repo, project, "  delete_on_destroy = true"))
	w.apply()
	// After the cut-over a team pushes v2 straight to GitLab.
	native, err := env.PushGitLabImage(context.Background(), project+"/"+repo, "v2", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	out := w.mustRun(0, "destroy", "-auto-approve", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)Warning: GitLab Tag Kept.*`+regexp.QuoteMeta(project+"/"+repo)+`:v2.*`+native.Digest)
	if _, found := gitlabDigest(t, project+"/"+repo, "v1"); found {
		t.Error("v1, which the resource copied, survived the destroy")
	}
	expectGitLab(t, project+"/"+repo, map[string]string{"v2": native.Digest})
}

// A destroy that cannot reach GitLab (no token; -refresh=false gets it past
// the refresh that would fail first) changes nothing: state keeps the managed
// tags, so the next refresh does not adopt the tags GitLab holds besides.
func TestCutover_destroyWithoutTokenKeepsState(t *testing.T) {
	project, repo := fixture(t, "destroy-no-token")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	w := newWorkspace(t, mirrorConfig(repo, project, "  delete_on_destroy = true"))
	w.apply()
	native, err := env.PushGitLabImage(context.Background(), project+"/"+repo, "native", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	noToken := *w
	noToken.env = append(slices.Clone(w.env), "GITLAB_TOKEN=", "CI_JOB_TOKEN=")
	out := noToken.mustRun(1, "destroy", "-refresh=false", "-auto-approve", "-input=false", "-no-color")
	mustMatch(t, out, `GitLab Token Missing`)
	if got := w.stateImages(); !maps.Equal(got, map[string]string{"v1": v1.Digest}) {
		t.Errorf("images in state after the refused destroy = %v, want only v1 at %s", got, v1.Digest)
	}
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	w.mustRun(0, "destroy", "-auto-approve", "-input=false", "-no-color")
	if _, found := gitlabDigest(t, project+"/"+repo, "v1"); found {
		t.Error("v1, which the resource copied, survived the destroy")
	}
	expectGitLab(t, project+"/"+repo, map[string]string{"native": native.Digest})
}

func TestCutover_importAdoptsWhatGitLabHolds(t *testing.T) {
	project, repo := fixture(t, "adopt")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	// Copied by an earlier tool.
	rc := env.RegistryClient()
	src, _ := env.ECRRef(repo, "v1")
	dst, _ := env.GitLabRef(project+"/"+repo, "v1")
	if err := rc.ImageCopy(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, mirrorConfig(repo, project, "  delete_on_destroy = true"))
	w.mustRun(0, "import", "-input=false", "-no-color", "imagesync_gitlab_mirrored_image.m", repo+":"+project)
	// Nothing differs: the import's plan is empty apart from the settings the
	// import cannot know (delete_on_destroy is configured here).
	out := w.mustRun(0, "plan", "-input=false", "-no-color")
	if strings.Contains(out, `"v1"`) {
		t.Errorf("the plan after import changes v1:\n%s", out)
	}
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
	w.mustRun(0, "destroy", "-auto-approve", "-input=false", "-no-color")
	if _, found := gitlabDigest(t, project+"/"+repo, "v1"); found {
		t.Error("the imported tag was not deleted: the import should adopt what GitLab held")
	}
}

func TestCutover_ecrSwitchedOff(t *testing.T) {
	project, repo := fixture(t, "decommissioned")
	v1 := push(t, repo, "v1", localenv.ImageSpec{Referrer: true})
	w := newWorkspace(t, mirrorConfig(repo, project, "  delete_on_destroy = true"))
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
	// ECR is gone: its API and its registry answer nothing useful any more.
	down := func(*http.Request) (int, string, bool) {
		return http.StatusServiceUnavailable, "ECR switched off by the test", true
	}
	env.ECRAPIProxy.SetFault(down)
	env.ECRProxy.SetFault(down)
	t.Cleanup(func() { env.ECRAPIProxy.SetFault(nil); env.ECRProxy.SetFault(nil) })
	env.ECRAPIProxy.ResetStats()
	env.ECRProxy.ResetStats()
	// Refresh needs only GitLab.
	w.mustRun(0, "plan", "-refresh-only", "-detailed-exitcode", "-input=false", "-no-color")
	if n := env.ECRAPIProxy.Stats().Requests + env.ECRProxy.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached ECR during the refresh, want none", n)
	}
	// A normal plan cannot know ECR's side: it says so, and is never empty.
	out := w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)Warning: ECR Not Readable: Source Tags Unknown Until Apply`)
	// Destroy works (its first step, a plan, finds ECR unreadable and goes on).
	w.mustRun(0, "destroy", "-auto-approve", "-input=false", "-no-color")
	if _, found := gitlabDigest(t, project+"/"+repo, "v1"); found {
		t.Error("destroy did not delete v1")
	}
}

func TestCutover_referrersArrivingLater(t *testing.T) {
	project, repo := fixture(t, "signed-later")
	v1 := push(t, repo, "v1", localenv.ImageSpec{Platforms: 2})
	signed := push(t, repo, "signed", localenv.ImageSpec{Referrer: true})
	// copy_referrers off first: the existing signature stays behind.
	w := newWorkspace(t, mirrorConfig(repo, project, "  copy_referrers = false"))
	w.apply()
	if _, found := gitlabDigest(t, project+"/"+repo, signed.ReferrerDigest); found {
		t.Fatal("a referrer was copied with copy_referrers = false")
	}
	// Switched on: the plan shows the signature, apply copies it by digest.
	w.write(mirrorConfig(repo, project, ""))
	out := w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)referrers.*`+signed.Digest+`.*`+signed.ReferrerDigest)
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{signed.ReferrerDigest: signed.ReferrerDigest})
	// A signature added in ECR to a digest mirrored long ago.
	sig, err := env.SignECRImage(context.Background(), repo, v1.Digest)
	if err != nil {
		t.Fatal(err)
	}
	out = w.mustRun(2, "plan", "-detailed-exitcode", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)`+v1.Digest+`.*`+sig)
	if strings.Contains(out, `"v1"`) {
		t.Errorf("the new signature re-plans the tag v1:\n%s", out)
	}
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{sig: sig, "v1": v1.Digest})
}

func TestCutover_longAndFallbackTagsLeftOut(t *testing.T) {
	project, repo := fixture(t, "odd-tags")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	long := strings.Repeat("a", 200)
	if err := env.RecordECRTag(context.Background(), repo, long, v1.Digest); err != nil {
		t.Fatal(err)
	}
	// A tag named like a referrers fallback tag that points at the image it
	// names: an ordinary tag, mirrored (GitLab reads it as that digest).
	self := strings.Replace(v1.Digest, "sha256:", "sha256-", 1)
	if _, err := env.TagECRImage(context.Background(), repo, "v1", self); err != nil {
		t.Fatal(err)
	}
	// One that names another digest cannot exist in GitLab: left out.
	other := push(t, repo, "other", localenv.ImageSpec{})
	misnamed := "sha256-" + strings.Repeat("0", 64)
	if err := env.RecordECRTag(context.Background(), repo, misnamed, other.Digest); err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, mirrorConfig(repo, project, ""))
	out := w.mustRun(0, "plan", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)Warning: Tags Left Out.*`+long[:40]+`.*200 characters.*`+misnamed[:20])
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest, "other": other.Digest, self: v1.Digest})
}

func TestCutover_crossAccountSource(t *testing.T) {
	project, repo := fixture(t, "shared")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	config := mirrorConfig(repo, project, fmt.Sprintf("  source_registry_id = %q", env.AccountID))
	w := newWorkspace(t, config)
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
	out := w.mustRun(0, "state", "show", "-no-color", "imagesync_gitlab_mirrored_image.m")
	mustMatch(t, out, `id\s+=\s+"`+env.AccountID+`:`+regexp.QuoteMeta(repo))
	// The same, imported by the ID that names the account.
	w2 := newWorkspace(t, config)
	w2.mustRun(0, "import", "-input=false", "-no-color", "imagesync_gitlab_mirrored_image.m", env.AccountID+":"+repo+":"+project+":"+repo)
	w2.apply()
}

// regctl installs regctl, a registry tool of its own, to push artifacts the
// way other tools do (with subjects, untagged, listed by a fallback tag).
func regctl(t *testing.T) func(args ...string) string {
	t.Helper()
	gobin := filepath.Join(os.TempDir(), "imagesync-acceptance-tools")
	bin := filepath.Join(gobin, "regctl")
	if _, err := os.Stat(bin); err != nil {
		install := exec.CommandContext(t.Context(), "go", "install", "github.com/regclient/regclient/cmd/regctl@v0.11.7")
		install.Env = append(os.Environ(), "GOBIN="+gobin)
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("go install regctl: %v\n%s", err, out)
		}
	}
	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("regctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	host := hostOf(env.ECRRegistryEndpoint)
	tls := env.RegctlTLS()
	run("registry", "set", "--skip-check", "--tls", tls["tls"], "--cacert", tls["regcert"], host)
	run("registry", "login", host, "-u", "AWS", "-p", env.ECRPassword)
	return run
}

func TestCutover_artifactsFromOtherTools(t *testing.T) {
	project, repo := fixture(t, "tools")
	v1 := push(t, repo, "v1", localenv.ImageSpec{Platforms: 2})
	regctl := regctl(t)
	subject := hostOf(env.ECRRegistryEndpoint) + "/" + repo + "@" + v1.Digest
	dir := t.TempDir()
	sbom := filepath.Join(dir, "sbom.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","name":"`+repo+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// An SBOM and an attestation of the index, untagged, listed by regctl in
	// the sha256-<hex> fallback tag (distribution has no referrers API), and
	// a signature of the SBOM.
	regctl("artifact", "put", "--subject", subject, "--artifact-type", "application/spdx+json",
		"--file", sbom, "--file-media-type", "application/spdx+json")
	regctl("artifact", "put", "--subject", subject, "--artifact-type", "application/vnd.in-toto+json",
		"--file", sbom, "--file-media-type", "application/vnd.in-toto+json", "--annotation", "kind=attestation")
	rl, err := env.RegistryClient().ReferrerList(context.Background(), mustRef(t, subject))
	if err != nil || len(rl.Descriptors) != 2 {
		t.Fatalf("regctl's referrers: %v, %v", rl.Descriptors, err)
	}
	sbomDigest := ""
	for _, d := range rl.Descriptors {
		if d.ArtifactType == "application/spdx+json" {
			sbomDigest = d.Digest.String()
		}
	}
	regctl("artifact", "put", "--subject", strings.Replace(subject, v1.Digest, sbomDigest, 1),
		"--artifact-type", "application/vnd.dev.cosign.artifact.sig.v1+json", "--file", sbom, "--file-media-type", "application/octet-stream")

	w := newWorkspace(t, mirrorConfig(repo, project, ""))
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
	for _, d := range rl.Descriptors {
		expectGitLab(t, project+"/"+repo, map[string]string{d.Digest.String(): d.Digest.String()})
	}
	sigs, err := env.RegistryClient().ReferrerList(context.Background(), mustRef(t, strings.Replace(subject, v1.Digest, sbomDigest, 1)))
	if err != nil || len(sigs.Descriptors) != 1 {
		t.Fatalf("the SBOM's signature: %v, %v", sigs.Descriptors, err)
	}
	signature := sigs.Descriptors[0].Digest.String()
	expectGitLab(t, project+"/"+repo, map[string]string{signature: signature})
	out := w.mustRun(0, "state", "show", "-no-color", "imagesync_gitlab_mirrored_image.m")
	mustMatch(t, out, `(?s)referrers\s+=\s+\{.*"`+sbomDigest+`"\s+=\s+\[\s+"`+signature+`"`)
}

func mustRef(t *testing.T, s string) ref.Ref {
	t.Helper()
	r, err := ref.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A signature tagged on its own, mirrored without the tag of its image:
// GitLab refuses a manifest whose subject it lacks, so the subject goes
// first, by digest.
func TestCutover_taggedReferrerWithoutItsImage(t *testing.T) {
	project, repo := fixture(t, "tagged-sig")
	img := push(t, repo, "image", localenv.ImageSpec{Referrer: true})
	if _, err := env.TagECRImageDigest(context.Background(), repo, img.ReferrerDigest, "signature"); err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, mirrorConfig(repo, project, `  tag_regex = "^signature$"`))
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"signature": img.ReferrerDigest, img.Digest: img.Digest})
	if _, found := gitlabDigest(t, project+"/"+repo, "image"); found {
		t.Error("the tag image was copied though tag_regex leaves it out")
	}
}

// The data source leaves out what GitLab cannot hold, so a for_each over it
// plans and applies.
func TestCutover_dataSourceLeavesOutLongTags(t *testing.T) {
	project, repo := fixture(t, "ds-odd-tags")
	v1 := push(t, repo, "v1", localenv.ImageSpec{})
	long := strings.Repeat("b", 150)
	if err := env.RecordECRTag(context.Background(), repo, long, v1.Digest); err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t, fmt.Sprintf(`
data "imagesync_ecr_repositories" "src" {
  names = [%q]
}

resource "imagesync_gitlab_mirrored_image" "m" {
  for_each = { for r in data.imagesync_ecr_repositories.src.repositories : r.name => r }

  source_repository = each.key
  gitlab_project    = %q
  images            = each.value.images
}
`, repo, project))
	out := w.mustRun(0, "plan", "-input=false", "-no-color")
	mustMatch(t, out, `(?s)Warning: Tags Left Out.*`+long[:30]+`.*150 characters`)
	w.apply()
	expectGitLab(t, project+"/"+repo, map[string]string{"v1": v1.Digest})
}

// ECR refuses its registry token at apply, after the plan was made. The plan
// Terraform makes again at apply needs the token already (to add up
// copy_bytes, and with copy_referrers to list the referrers), so it fails
// there, naming the permission, before anything is changed: the state stands,
// never an inconsistent final plan, and the next apply converges. For a new
// resource and for an update, with and without copy_referrers.
func TestCutover_ecrLoginRefusedAtApply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  string
		update bool
	}{
		{"create", "  copy_referrers = false", false},
		{"create_with_referrers", "", false},
		{"update", "  copy_referrers = false", true},
		{"update_with_referrers", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			project, repo := fixture(t, "login-refused")
			want := map[string]string{"v1": push(t, repo, "v1", localenv.ImageSpec{Referrer: true}).Digest}
			w := newWorkspace(t, mirrorConfig(repo, project, tc.extra))
			if tc.update {
				w.apply()
				want["v2"] = push(t, repo, "v2", localenv.ImageSpec{Platforms: 2, Referrer: true}).Digest
			}
			w.mustRun(0, "plan", "-input=false", "-no-color", "-out=plan.tfplan")
			before := w.state()
			refuseECRToken(t)
			out, code := w.run("apply", "-input=false", "-no-color", "plan.tfplan")
			if code == 0 {
				t.Fatalf("apply without an ECR registry token succeeded:\n%s", out)
			}
			mustMatch(t, out, `(?s)Error: Cannot (Log In to the ECR Registry|List Referrers in ECR).*ecr:GetAuthorizationToken`)
			if strings.Contains(out, "inconsistent") || strings.Contains(out, "panic") {
				t.Errorf("the failed apply left Terraform inconsistent:\n%s", out)
			}
			expectStateUntouched(t, before, w.state())
			env.ECRAPIProxy.SetFault(nil)
			w.apply()
			expectGitLab(t, project+"/"+repo, want)
		})
	}
}

// expectStateUntouched checks that a failed apply recorded nothing: the
// same state as before, or for a new resource none of its instances.
func expectStateUntouched(t *testing.T, before, after []byte) {
	t.Helper()
	created := before == nil && strings.Contains(string(after), `"attributes"`)
	if created || (before != nil && string(after) != string(before)) {
		t.Errorf("the failed apply changed the state:\nbefore: %s\nafter: %s", before, after)
	}
}

// refuseECRToken makes the ECR API refuse ecr:GetAuthorizationToken until
// the test ends.
func refuseECRToken(t *testing.T) {
	env.ECRAPIProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
			return http.StatusBadRequest, `{"__type":"AccessDeniedException","message":"injected: not authorized to perform ecr:GetAuthorizationToken"}`, true
		}
		return 0, "", false
	})
	t.Cleanup(func() { env.ECRAPIProxy.SetFault(nil) })
}

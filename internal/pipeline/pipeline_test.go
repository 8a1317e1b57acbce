package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// TestPipeline runs examples/gitlab-ci under gitlab-ci-local against the
// local ECR and GitLab, as a team would live with it: a merge request, the
// default branch with the manual apply, scheduled drift checks, four shards,
// two applies racing for one state, job-token mode, and a reshard. Each
// scenario checks outcomes with clients independent of the provider (moto's
// API, skopeo, the state GitLab stored) and logs its duration.
func TestPipeline(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set: the pipeline needs terraform, gitlab-ci-local, moto_server and docker-registry")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	env := localenv.New(t, localenv.Options{Seed: true})
	r, err := NewRunner(t.Context(), env, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pat := env.GitLabToken // the migration team's access token
	personal := map[string]string{"GITLAB_TOKEN": pat, "IMAGESYNC_NOTE_TOKEN": pat}

	repo, err := r.NewRepo("migration", "migration/images", nil)
	if err != nil {
		t.Fatal(err)
	}
	scenario(t, "1 merge request plans", func(t *testing.T) { mergeRequestPlans(t, repo, personal) })
	scenario(t, "2 default branch applies", func(t *testing.T) { defaultBranchApplies(t, repo, personal) })
	scenario(t, "3 schedule finds drift", func(t *testing.T) { scheduleFindsDrift(t, repo, personal) })
	scenario(t, "3b switching ECR off", func(t *testing.T) { switchingECROff(t, repo, personal) })

	for _, name := range []string{"svc/alpha", "svc/beta", "svc/gamma", "svc/delta"} {
		if _, err := env.PushECRImage(t.Context(), name, "v1", localenv.ImageSpec{OwnLayerSize: 16 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	sharded, err := r.NewRepo("sharded", "migration/sharded", func(s string) string {
		return strings.Replace(s, "shard_count: 1", "shard_count: 4", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	scenario(t, "4 four shards in parallel", func(t *testing.T) { fourShards(t, sharded, personal) })
	scenario(t, "5 two applies of one shard", func(t *testing.T) { racingApplies(t, sharded, personal) })

	own, err := r.NewRepo("own", "team-b/mirror", nil)
	if err != nil {
		t.Fatal(err)
	}
	scenario(t, "6 job token into its own project", func(t *testing.T) { jobTokenMode(t, own) })
	scenario(t, "7 reshard from four shards to two", func(t *testing.T) { reshard(t, sharded, personal) })
}

// scenario runs a sub-test and logs how long it took; the scenarios build on
// each other, so the first failure stops the rest.
func scenario(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	start := time.Now()
	ok := t.Run(name, f)
	t.Logf("scenario %q: %s in %.1fs", name, map[bool]string{true: "passed", false: "FAILED"}[ok], time.Since(start).Seconds())
	if !ok {
		t.FailNow()
	}
}

// run runs a pipeline and fails the test on anything but the expected job outcomes.
func run(t *testing.T, repo *Repo, p Pipeline, want map[string]string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	res, err := repo.Run(ctx, p)
	if err != nil {
		t.Fatalf("gitlab-ci-local: %v\n%s", err, res.Output)
	}
	t.Logf("%s pipeline of %s: exit %d in %.1fs", p.Source, repo.Project.Path, res.ExitCode, res.Duration.Seconds())
	if got := res.Jobs(); !equalMaps(got, want) {
		t.Fatalf("jobs = %v, want %v\n%s", got, want, res.Output)
	}
	return res
}

// expectRanCLI checks that a job ran the CLI under test (tofu when
// TF_ACC_TERRAFORM_PATH names OpenTofu): the job echoes its commands, and
// init names the product.
func expectRanCLI(t *testing.T, res Result, job string, cli localenv.CLI) {
	t.Helper()
	product := "Terraform"
	if cli.OpenTofu {
		product = "OpenTofu"
	}
	log := res.Log(job)
	for _, want := range []string{"$ " + cli.Name() + " init", product + " has been successfully initialized"} {
		if !strings.Contains(log, want) {
			t.Errorf("%s ran another CLI than %s: its log lacks %q\n%s", job, cli.Path, want, log)
		}
	}
}

func mergeRequestPlans(t *testing.T, repo *Repo, vars map[string]string) {
	gl := repo.runner.Env.GitLab
	// Someone pushed web:v1.0 straight to GitLab before the migration.
	native, err := repo.runner.Env.PushGitLabImage(t.Context(), strings.ToLower(repo.Project.Path)+"/web", "v1.0", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	iid := gl.OpenMergeRequest(repo.Project.Path)
	// A Developer's pipeline: the state may be read, not locked or written.
	res := run(t, repo, Pipeline{Source: "merge_request_event", MRIID: iid, Role: fakegitlab.RoleDeveloper, Variables: vars},
		map[string]string{ValidateJob: "PASS", PlanJob(0, 1): "PASS"})
	expectRanCLI(t, res, PlanJob(0, 1), repo.runner.cli)

	want := ecrImages(t, repo.runner.Env)
	report := widgetReport(t, res, PlanJob(0, 1))
	if report != (widget{Create: len(want)}) {
		t.Errorf("widget report %+v, want %d to create and nothing else: one per ECR repository", report, len(want))
	}
	planned := planLine.FindStringSubmatch(res.Log(PlanJob(0, 1)))
	if planned == nil || planned[1] != fmt.Sprint(report.Create) || planned[2] != fmt.Sprint(report.Update) || planned[3] != fmt.Sprint(report.Delete) {
		t.Errorf("terraform's plan line %q disagrees with the widget report %+v", planned, report)
	}
	summary := artifact(t, res, PlanJob(0, 1), ".imagesync/imagesync-0-of-1/summary.md")
	for repoName, tags := range want {
		for tag, digest := range tags {
			row := fmt.Sprintf("| `%s` | `%s` | added |  | `%s` |", repoName, tag, digest[:len("sha256:")+12])
			if repoName == "web" && tag == "v1.0" {
				row = fmt.Sprintf("| `web` | `v1.0` | added, overwrites GitLab's | `%s` | `%s` |", native.Digest[:len("sha256:")+12], digest[:len("sha256:")+12])
				overwrite := fmt.Sprintf("- `%s/%s/web:v1.0` holds `%s`, replaced by `%s` from ECR",
					repo.runner.Env.GitLabRegistryHost, strings.ToLower(repo.Project.Path), native.Digest, digest)
				if !strings.Contains(summary, overwrite) {
					t.Errorf("summary lacks the overwrite warning %q:\n%s", overwrite, summary)
				}
			}
			if !strings.Contains(summary, row) {
				t.Errorf("summary lacks %s:%s (%s):\n%s", repoName, tag, row, summary)
			}
		}
	}
	notes := gl.Notes(repo.Project.Path, iid)
	if len(notes) != 1 || notes[0].Body != summary {
		t.Errorf("merge request notes = %+v, want the summary once", notes)
	}
	if st, ok := gl.TerraformState(repo.Project.Path, "imagesync-0-of-1"); ok && st.Versions > 0 {
		t.Errorf("a merge request plan wrote the state: %+v", st)
	}
}

// planLine is Terraform's summary line of a plan.
var planLine = regexp.MustCompile(`Plan: (\d+) to add, (\d+) to change, (\d+) to destroy\.`)

func defaultBranchApplies(t *testing.T, repo *Repo, vars map[string]string) {
	res := run(t, repo, Pipeline{Source: "push", Manual: ApplyJobs(1), Variables: vars},
		map[string]string{ValidateJob: "PASS", PlanJob(0, 1): "PASS", ApplyJob(0, 1): "PASS"})
	want := ecrImages(t, repo.runner.Env)
	checkGitLabDigests(t, repo, want)
	if got := stateImages(t, repo, "imagesync-0-of-1"); !equalImages(got, want) {
		t.Errorf("state holds %v, want %v", got, want)
	}
	if !strings.Contains(res.Log(ApplyJob(0, 1)), fmt.Sprintf("Apply complete! Resources: %d added", len(want))) {
		t.Errorf("apply log:\n%s", res.Log(ApplyJob(0, 1)))
	}
}

func scheduleFindsDrift(t *testing.T, repo *Repo, vars map[string]string) {
	env := repo.runner.Env
	before := ecrImages(t, env)["web"]["latest"]
	moved, err := env.PushECRImage(t.Context(), "web", "latest", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	priced := maps.Clone(vars)
	priced["IMAGESYNC_ECR_PRICE_PER_GB"] = "1000"
	res := run(t, repo, Pipeline{Source: "schedule", Variables: priced}, map[string]string{DriftJob(0, 1): "FAIL"})
	verdict := fmt.Sprintf("Drift: 1 tag in 1 repository differs between ECR and GitLab: web:latest (GitLab %s, ECR %s).",
		before[:len("sha256:")+12], moved.Digest[:len("sha256:")+12])
	if log := res.Log(DriftJob(0, 1)); !strings.Contains(log, verdict) {
		t.Errorf("drift log lacks %q:\n%s", verdict, log)
	}
	if !regexp.MustCompile(regexp.QuoteMeta(DriftJob(0, 1)) + ` +finished in .* FAIL 2`).MatchString(res.Output) {
		t.Errorf("the drift job did not end with exit code 2:\n%s", res.Output)
	}
	summary := artifact(t, res, DriftJob(0, 1), ".imagesync/imagesync-0-of-1/summary.md")
	if !strings.Contains(summary, "| `web` | `latest` | changed |") {
		t.Errorf("drift summary:\n%s", summary)
	}
	expectEgress(t, summary, "web", moved.Bytes, 1000)
	if got, _ := gitlabDigest(t, repo, "web", "latest"); got != before {
		t.Fatalf("the drift check changed GitLab: web:latest is %s, was %s", got, before)
	}

	run(t, repo, Pipeline{Source: "push", Manual: ApplyJobs(1), Variables: vars},
		map[string]string{ValidateJob: "PASS", PlanJob(0, 1): "PASS", ApplyJob(0, 1): "PASS"})
	if got, _ := gitlabDigest(t, repo, "web", "latest"); got != moved.Digest {
		t.Fatalf("after the apply web:latest is %s in GitLab, want %s", got, moved.Digest)
	}
	res = run(t, repo, Pipeline{Source: "schedule", Variables: vars}, map[string]string{DriftJob(0, 1): "PASS"})
	if !strings.Contains(res.Log(DriftJob(0, 1)), "No drift: every managed tag in GitLab has the digest it has in ECR.") {
		t.Errorf("green drift log:\n%s", res.Log(DriftJob(0, 1)))
	}
}

// expectEgress checks the summary's "Read from ECR" for one repository that
// copies size bytes: its row, the total and the cost at pricePerGB.
func expectEgress(t *testing.T, summary, repository string, size int64, pricePerGB float64) {
	t.Helper()
	cost := fmt.Sprintf("At %g per GB of ECR data transfer, that is at most **%.2f**.", pricePerGB, float64(size)/1e9*pricePerGB)
	for _, want := range []string{
		"#### Read from ECR",
		fmt.Sprintf("| `%s` | %d (", repository, size),
		fmt.Sprintf("| total | %d (", size),
		cost,
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary's bytes read from ECR lack %q:\n%s", want, summary)
		}
	}
}

// switchingECROff: after the cut-over the scheduled drift check writes a
// verification report; while nobody pulls from ECR it says every repository
// is quiet, and after a pull of web:latest the check's warning, the
// summary's "Still pulled from ECR" and the report name it.
func switchingECROff(t *testing.T, repo *Repo, vars map[string]string) {
	env := repo.runner.Env
	// The cut-over comes after the migration's own reads of ECR.
	time.Sleep(1100 * time.Millisecond)
	cutover := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	vars = maps.Clone(vars)
	vars["TF_VAR_cutover_at"] = cutover.Format(time.RFC3339)
	const report = ".imagesync/imagesync-0-of-1/verification.json"

	res := run(t, repo, Pipeline{Source: "schedule", Variables: vars}, map[string]string{DriftJob(0, 1): "PASS"})
	quiet := verificationOf(t, res, report)
	if quiet.Quiet == nil || !*quiet.Quiet || !quiet.InSync || !strings.HasPrefix(quiet.Verdict, "Every repository is quiet") {
		t.Errorf("report before any pull: quiet %v, in sync %v, %q", quiet.Quiet, quiet.InSync, quiet.Verdict)
	}
	checkReportDigests(t, repo, quiet)
	if log := res.Log(DriftJob(0, 1)); strings.Contains(log, "Still pulled from ECR") {
		t.Errorf("a quiet drift check warns:\n%s", log)
	}

	if _, err := env.PullECRImage(t.Context(), "web", "latest"); err != nil {
		t.Fatal(err)
	}
	res = run(t, repo, Pipeline{Source: "schedule", Variables: vars}, map[string]string{DriftJob(0, 1): "PASS"})
	log := res.Log(DriftJob(0, 1))
	if !regexp.MustCompile(`(?s)Warning: Check block assertion failed.*Still pulled from ECR after the cut-over at ` +
		regexp.QuoteMeta(vars["TF_VAR_cutover_at"]) + `: web \(last pull 20`).MatchString(log) {
		t.Errorf("the drift log lacks the check's warning naming web:\n%s", log)
	}
	summary := artifact(t, res, DriftJob(0, 1), ".imagesync/imagesync-0-of-1/summary.md")
	if !strings.Contains(summary, "#### Still pulled from ECR") || !regexp.MustCompile("\\| `web` \\| `latest` \\| 20").MatchString(summary) {
		t.Errorf("the drift summary does not name web:latest under Still pulled from ECR:\n%s", summary)
	}
	pulled := verificationOf(t, res, report)
	if pulled.Quiet == nil || *pulled.Quiet || !strings.HasPrefix(pulled.Verdict, "Still pulled from ECR: 1 repository was pulled") {
		t.Errorf("report after a pull: quiet %v, %q", pulled.Quiet, pulled.Verdict)
	}
	for _, r := range pulled.Repositories {
		if (r.Repository == "web") != r.PulledAfterCutover {
			t.Errorf("report: %s pulled after the cut-over = %v", r.Repository, r.PulledAfterCutover)
		}
	}
}

// verificationReport is the drift job's verification.json, as a team reads it.
type verificationReport struct {
	VerifiedAt   string `json:"verified_at"`
	CutoverAt    string `json:"cutover_at"`
	InSync       bool   `json:"in_sync"`
	Quiet        *bool  `json:"quiet"`
	Verdict      string `json:"verdict"`
	Repositories []struct {
		Repository         string `json:"repository"`
		LastECRPull        string `json:"last_ecr_pull"`
		PulledAfterCutover bool   `json:"pulled_after_cutover"`
		Tags               []struct {
			Tag          string   `json:"tag"`
			ECRDigest    string   `json:"ecr_digest"`
			GitLabDigest string   `json:"gitlab_digest"`
			Referrers    []string `json:"referrers"`
		} `json:"tags"`
	} `json:"repositories"`
}

func verificationOf(t *testing.T, res Result, path string) verificationReport {
	t.Helper()
	var r verificationReport
	if err := json.Unmarshal([]byte(artifact(t, res, DriftJob(0, 1), path)), &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// checkReportDigests holds the report to moto's and skopeo's digests: every
// repository and tag, in both registries.
func checkReportDigests(t *testing.T, repo *Repo, r verificationReport) {
	t.Helper()
	want := ecrImages(t, repo.runner.Env)
	got := map[string]map[string]string{}
	signed := false
	for _, rr := range r.Repositories {
		got[rr.Repository] = map[string]string{}
		for _, tag := range rr.Tags {
			got[rr.Repository][tag.Tag] = tag.ECRDigest
			if gl, _ := gitlabDigest(t, repo, rr.Repository, tag.Tag); gl != tag.GitLabDigest {
				t.Errorf("report: %s:%s GitLab digest %s, skopeo reads %s", rr.Repository, tag.Tag, tag.GitLabDigest, gl)
			}
			signed = signed || (rr.Repository == "signed/app" && len(tag.Referrers) > 0)
		}
	}
	if !signed {
		t.Errorf("report: no tag of signed/app lists its signature")
	}
	if !equalImages(got, want) {
		t.Errorf("report's ECR digests %v, moto's %v", got, want)
	}
}

func fourShards(t *testing.T, repo *Repo, vars map[string]string) {
	const n = 4
	want := map[string]string{ValidateJob: "PASS"}
	for i := range n {
		want[PlanJob(i, n)], want[ApplyJob(i, n)] = "PASS", "PASS"
	}
	run(t, repo, Pipeline{Source: "push", Manual: ApplyJobs(n), Variables: vars}, want)

	all := ecrImages(t, repo.runner.Env)
	owner := map[string]int{}
	for i := range n {
		st := stateImages(t, repo, fmt.Sprintf("imagesync-%d-of-%d", i, n))
		if len(st) == 0 {
			t.Errorf("shard %d manages nothing; choose repository names that fill every shard", i)
		}
		for name, tags := range st {
			if prev, dup := owner[name]; dup {
				t.Errorf("%s is in the states of shards %d and %d", name, prev, i)
			}
			owner[name] = i
			if shard := int(fnv1a32(name) % n); shard != i {
				t.Errorf("%s is in shard %d, but FNV-1a 32 of its name modulo %d is %d", name, i, n, shard)
			}
			if !equalImages(map[string]map[string]string{name: tags}, map[string]map[string]string{name: all[name]}) {
				t.Errorf("shard %d holds %s at %v, ECR has %v", i, name, tags, all[name])
			}
		}
	}
	for name := range all {
		if _, ok := owner[name]; !ok {
			t.Errorf("%s is in no shard's state", name)
		}
	}

	want = map[string]string{ValidateJob: "PASS"}
	for i := range n {
		want[PlanJob(i, n)] = "PASS"
	}
	res := run(t, repo, Pipeline{Source: "push", Variables: vars}, want)
	for i := range n {
		if report := widgetReport(t, res, PlanJob(i, n)); report != (widget{}) || !strings.Contains(res.Log(PlanJob(i, n)), "No changes.") {
			t.Errorf("rerun of shard %d: report %+v, log:\n%s", i, report, res.Log(PlanJob(i, n)))
		}
	}
}

// racingApplies starts two applies of the same saved plan at once. The
// registry holds the manifest writes of whichever got the lock until the
// other has been refused the lock, so the two really overlap.
func racingApplies(t *testing.T, repo *Repo, vars map[string]string) {
	const n, shard = 4, 2 // shard 2 of 4 holds svc/alpha
	env, gl := repo.runner.Env, repo.runner.Env.GitLab
	state := fmt.Sprintf("imagesync-%d-of-%d", shard, n)
	if _, err := env.PushECRImage(t.Context(), "svc/alpha", "v2", localenv.ImageSpec{OwnLayerSize: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	run(t, repo, Pipeline{Source: "push", Jobs: []string{PlanJob(shard, n)}, Variables: vars}, map[string]string{PlanJob(shard, n): "PASS"})
	before, _ := gl.TerraformState(repo.Project.Path, state)
	second, err := repo.Copy("sharded-second")
	if err != nil {
		t.Fatal(err)
	}
	release := holdManifestWritesUntil(env, func() bool {
		st, _ := gl.TerraformState(repo.Project.Path, state)
		return st.LockConflicts > before.LockConflicts
	})
	defer release()

	apply := Pipeline{Source: "push", Manual: []string{ApplyJob(shard, n)}, Jobs: []string{ApplyJob(shard, n)}, Variables: vars}
	var wg sync.WaitGroup
	results := make([]Result, 2)
	for i, r := range []*Repo{repo, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			results[i], _ = r.Run(ctx, apply)
		}()
	}
	wg.Wait()

	var passed, failed []Result
	for _, res := range results {
		if res.Jobs()[ApplyJob(shard, n)] == "PASS" {
			passed = append(passed, res)
		} else {
			failed = append(failed, res)
		}
	}
	if len(passed) != 1 || len(failed) != 1 {
		t.Fatalf("%d applies passed and %d failed, want one each:\n%s\n----\n%s", len(passed), len(failed), results[0].Output, results[1].Output)
	}
	after, _ := gl.TerraformState(repo.Project.Path, state)
	if after.LockConflicts == before.LockConflicts {
		t.Errorf("the second apply never met the lock")
	}
	log := failed[0].Log(ApplyJob(shard, n))
	t.Logf("the winning apply took %.1fs, the losing one %.1fs and ended: %s", passed[0].Duration.Seconds(), failed[0].Duration.Seconds(), lastError(log))
	if !strings.Contains(log, "Saved plan is stale") && !strings.Contains(log, "Error acquiring the state lock") {
		t.Errorf("the losing apply failed for another reason:\n%s", log)
	}
	if after.Versions != before.Versions+1 || after.Serial <= before.Serial || after.LockedBy != "" {
		t.Errorf("state before %+v, after %+v: want exactly one more version and no lock left", before, after)
	}
	if got := stateImages(t, repo, state)["svc/alpha"]; got["v2"] != ecrImages(t, env)["svc/alpha"]["v2"] {
		t.Errorf("state holds svc/alpha %v after the apply", got)
	}
	want := map[string]string{ValidateJob: "PASS"}
	for i := range n {
		want[PlanJob(i, n)] = "PASS"
	}
	res := run(t, repo, Pipeline{Source: "push", Variables: vars}, want)
	for i := range n {
		if report := widgetReport(t, res, PlanJob(i, n)); report != (widget{}) {
			t.Errorf("after the race shard %d plans %+v, want no changes", i, report)
		}
	}
}

// lastError is the first line of the last "Error:" in a job log.
func lastError(log string) string {
	i := strings.LastIndex(log, "Error: ")
	if i < 0 {
		return "(no error)"
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	return strings.TrimRight(strings.TrimLeft(line, "│ "), " ")
}

// reshard goes from four shards to two as the guide says: the new states
// import what the old ones managed (no image is copied), imagesync:retire
// empties the old states without destroying anything, and once reshard_from
// is back to 0 every plan is empty.
func reshard(t *testing.T, repo *Repo, vars map[string]string) {
	const from, n = 4, 2
	env := repo.runner.Env
	if err := repo.Edit(".gitlab-ci.yml", func(s string) string {
		return strings.Replace(s, "shard_count: 4", "shard_count: 2\n      reshard_from: 4", 1)
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ValidateJob: "PASS", RetireJob: "PASS"}
	for i := range n {
		want[PlanJob(i, n)], want[ApplyJob(i, n)] = "PASS", "PASS"
	}
	env.GitLabProxy.ResetStats()
	res := run(t, repo, Pipeline{Source: "push", Manual: append(ApplyJobs(n), RetireJob), Variables: vars}, want)
	if writes := env.GitLabProxy.Stats().ByMethod; writes["PUT"]+writes["POST"]+writes["PATCH"] != 0 {
		t.Errorf("the reshard wrote to the GitLab registry: %v", writes)
	}
	all := ecrImages(t, env)
	seen := map[string]bool{}
	for i := range n {
		if report := widgetReport(t, res, PlanJob(i, n)); report.Create != 0 || report.Delete != 0 {
			t.Errorf("new shard %d plans %+v; its mirrors should be imported, not created", i, report)
		}
		for name := range stateImages(t, repo, fmt.Sprintf("imagesync-%d-of-%d", i, n)) {
			seen[name] = true
			if int(fnv1a32(name)%n) != i {
				t.Errorf("%s landed in new shard %d", name, i)
			}
		}
	}
	for name := range all {
		if !seen[name] {
			t.Errorf("%s is in no new state", name)
		}
	}
	for i := range from {
		if left := stateImages(t, repo, fmt.Sprintf("imagesync-%d-of-%d", i, from)); len(left) != 0 {
			t.Errorf("retired state %d still manages %v", i, left)
		}
	}
	checkGitLabDigests(t, repo, all)

	if err := repo.Edit(".gitlab-ci.yml", func(s string) string { return strings.Replace(s, "\n      reshard_from: 4", "", 1) }); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{ValidateJob: "PASS"}
	for i := range n {
		want[PlanJob(i, n)] = "PASS"
	}
	res = run(t, repo, Pipeline{Source: "push", Variables: vars}, want)
	for i := range n {
		if report := widgetReport(t, res, PlanJob(i, n)); report != (widget{}) {
			t.Errorf("after the reshard shard %d plans %+v, want no changes", i, report)
		}
	}
}

// holdManifestWritesUntil delays manifest PUTs at the GitLab registry until
// done reports true (or a minute passes); release ends the hold.
func holdManifestWritesUntil(env *localenv.Env, done func() bool) (release func()) {
	stop := make(chan struct{})
	env.GitLabProxy.SetFault(func(r *http.Request) (int, string, bool) {
		if r.Method != "PUT" || !strings.Contains(r.URL.Path, "/manifests/") {
			return 0, "", false
		}
		deadline := time.After(time.Minute)
		for !done() {
			select {
			case <-stop:
				return 0, "", false
			case <-deadline:
				return 0, "", false
			case <-time.After(50 * time.Millisecond):
			}
		}
		return 0, "", false
	})
	return func() {
		close(stop)
		env.GitLabProxy.SetFault(nil)
	}
}

func jobTokenMode(t *testing.T, repo *Repo) {
	gl := repo.runner.Env.GitLab
	// No GITLAB_TOKEN and no note token: the job token is all there is.
	iid := gl.OpenMergeRequest(repo.Project.Path)
	res := run(t, repo, Pipeline{Source: "merge_request_event", MRIID: iid, Role: fakegitlab.RoleDeveloper},
		map[string]string{ValidateJob: "PASS", PlanJob(0, 1): "PASS"})
	if log := res.Log(PlanJob(0, 1)); !strings.Contains(log, "merge request note skipped: set the masked CI/CD variable IMAGESYNC_NOTE_TOKEN") {
		t.Errorf("plan log does not say the note was skipped:\n%s", log)
	}
	if notes := gl.Notes(repo.Project.Path, iid); len(notes) != 0 {
		t.Errorf("notes posted without a note token: %+v", notes)
	}
	run(t, repo, Pipeline{Source: "push", Manual: ApplyJobs(1)},
		map[string]string{ValidateJob: "PASS", PlanJob(0, 1): "PASS", ApplyJob(0, 1): "PASS"})
	checkGitLabDigests(t, repo, ecrImages(t, repo.runner.Env))
}

// ecrImages lists every ECR repository's tags and digests from moto's API.
func ecrImages(t *testing.T, env *localenv.Env) map[string]map[string]string {
	t.Helper()
	ctx := t.Context()
	api := env.ECRClient(ctx, false)
	out := map[string]map[string]string{}
	repos, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos.Repositories {
		name := aws.ToString(r.RepositoryName)
		out[name] = map[string]string{}
		imgs, err := api.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: r.RepositoryName})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range imgs.ImageIds {
			if id.ImageTag != nil {
				out[name][aws.ToString(id.ImageTag)] = aws.ToString(id.ImageDigest)
			}
		}
	}
	return out
}

// checkGitLabDigests reads every tag from the GitLab registry with skopeo.
func checkGitLabDigests(t *testing.T, repo *Repo, want map[string]map[string]string) {
	t.Helper()
	for name, tags := range want {
		for tag, digest := range tags {
			if got, found := gitlabDigest(t, repo, name, tag); got != digest {
				t.Errorf("GitLab %s/%s:%s is %q (found %v), ECR has %s", repo.Project.Path, name, tag, got, found, digest)
			}
		}
	}
}

func gitlabDigest(t *testing.T, repo *Repo, image, tag string) (string, bool) {
	t.Helper()
	digest, found, err := repo.runner.Env.GitLabDigest(t.Context(), strings.ToLower(repo.Project.Path)+"/"+image, tag)
	if err != nil {
		t.Fatal(err)
	}
	return digest, found
}

// stateImages reads, from the state GitLab stores, each mirrored repository's images.
func stateImages(t *testing.T, repo *Repo, name string) map[string]map[string]string {
	t.Helper()
	st, ok := repo.runner.Env.GitLab.TerraformState(repo.Project.Path, name)
	if !ok || st.Data == nil {
		t.Fatalf("GitLab has no state %s in %s", name, repo.Project.Path)
	}
	var doc struct {
		Resources []struct {
			Type      string
			Instances []struct {
				Attributes struct {
					SourceRepository string            `json:"source_repository"`
					Images           map[string]string `json:"images"`
				}
			}
		}
	}
	if err := json.Unmarshal(st.Data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range doc.Resources {
		if r.Type != "imagesync_gitlab_mirrored_image" {
			continue
		}
		for _, in := range r.Instances {
			out[in.Attributes.SourceRepository] = in.Attributes.Images
		}
	}
	return out
}

type widget struct{ Create, Update, Delete int }

func widgetReport(t *testing.T, res Result, job string) widget {
	t.Helper()
	var w struct {
		Create *int `json:"create"`
		Update *int `json:"update"`
		Delete *int `json:"delete"`
	}
	b := artifact(t, res, job, ".imagesync/report.json")
	if err := json.Unmarshal([]byte(b), &w); err != nil || w.Create == nil || w.Update == nil || w.Delete == nil {
		t.Fatalf("report.json of %s is not the widget's {\"create\",\"update\",\"delete\"}: %q (%v)", job, b, err)
	}
	return widget{*w.Create, *w.Update, *w.Delete}
}

func artifact(t *testing.T, res Result, job, path string) string {
	t.Helper()
	b, err := res.Artifact(job, path)
	if err != nil {
		t.Fatalf("artifact %s of %s: %v\n%s", path, job, err, res.Output)
	}
	return string(b)
}

// fnv1a32 is the shard hash the data source documents, written out here.
func fnv1a32(s string) uint32 {
	h := uint32(2166136261)
	for _, b := range []byte(s) {
		h ^= uint32(b)
		h *= 16777619
	}
	return h
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func equalImages(a, b map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !equalMaps(a[k], b[k]) {
			return false
		}
	}
	return true
}

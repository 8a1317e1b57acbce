// Package pipeline runs the GitLab CI pipeline that ships in examples/gitlab-ci
// with gitlab-ci-local (shell executor) against the local environment, with the
// variables GitLab would give its jobs: the pipeline tests use it, and
// `make pipeline` shows it. No production code imports this package.
package pipeline

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// GitLabCILocalVersion is the gitlab-ci-local the pipeline is tested with;
// later versions need Node.js 22.
const GitLabCILocalVersion = "4.60.0"

// exampleFiles are the files of examples/gitlab-ci a migration repository holds.
var exampleFiles = []string{".gitlab-ci.yml", ".gitignore", "imagesync.gitlab-ci.yml", "main.tf", "retire/main.tf"}

// Runner builds the provider and plansummary once and makes migration
// repositories that run the example pipeline.
type Runner struct {
	Env *localenv.Env
	// Output, if set, receives gitlab-ci-local's output as it runs.
	Output io.Writer

	root      string // the checkout
	work      string
	cliConfig string       // TF_CLI_CONFIG_FILE running the fresh provider build
	binDir    string       // plansummary
	cli       localenv.CLI // the terraform or tofu the jobs run
}

// NewRunner checks for gitlab-ci-local and rsync and builds, from the
// checkout at root, the provider and plansummary into work. The jobs run
// terraform from PATH, or the Terraform or OpenTofu TF_ACC_TERRAFORM_PATH names.
func NewRunner(ctx context.Context, env *localenv.Env, root, work string) (*Runner, error) {
	for _, tool := range []string{"gitlab-ci-local", "rsync", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found on PATH (.ci/deps.sh installs gitlab-ci-local@%s and rsync): %w", tool, GitLabCILocalVersion, err)
		}
	}
	r := &Runner{Env: env, root: root, work: work, binDir: filepath.Join(work, "bin")}
	var err error
	if r.cli, err = localenv.TestedCLI(ctx); err != nil {
		return nil, err
	}
	if r.cliConfig, err = localenv.BuildProvider(ctx, root, work); err != nil {
		return nil, err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(r.binDir, "plansummary"), "./internal/cmd/plansummary")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building plansummary: %w\n%s", err, out)
	}
	return r, nil
}

// Repo is a migration repository: a git checkout of examples/gitlab-ci that
// runs as the CI project of one GitLab project.
type Repo struct {
	Dir     string
	Project fakegitlab.Project
	runner  *Runner
}

// NewRepo makes a repository named name for the GitLab project path (added
// to the fake GitLab if new). edit, if set, rewrites its .gitlab-ci.yml, e.g.
// to set the include's inputs.
func (r *Runner) NewRepo(name, project string, edit func(ciYAML string) string) (*Repo, error) {
	repo := &Repo{Dir: filepath.Join(r.work, name), Project: r.Env.GitLab.AddProject(project), runner: r}
	if err := os.MkdirAll(repo.Dir, 0o750); err != nil {
		return nil, err
	}
	for _, f := range exampleFiles {
		b, err := os.ReadFile(filepath.Join(r.root, "examples", "gitlab-ci", f))
		if err != nil {
			return nil, err
		}
		if f == ".gitignore" {
			b = append(b, ".gitlab-ci-local/\n"...)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo.Dir, f)), 0o750); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(repo.Dir, f), b, 0o600); err != nil {
			return nil, err
		}
	}
	if err := repo.git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	if edit == nil {
		return repo, repo.commit("migration repository from examples/gitlab-ci")
	}
	return repo, repo.Edit(".gitlab-ci.yml", edit)
}

// Edit rewrites a file of the repository and commits it.
func (repo *Repo) Edit(file string, edit func(string) string) error {
	p := filepath.Join(repo.Dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(edit(string(b))), 0o600); err != nil {
		return err
	}
	return repo.commit("edit " + file)
}

func (repo *Repo) commit(msg string) error {
	if err := repo.git("add", "-A"); err != nil {
		return err
	}
	return repo.git("-c", "user.name=imagesync tests", "-c", "user.email=tests@example.com", "commit", "-q", "--allow-empty", "-m", msg)
}

func (repo *Repo) git(args ...string) error {
	cmd := exec.CommandContext(context.Background(), "git", args...)
	cmd.Dir = repo.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Copy duplicates the repository with its gitlab-ci-local state (the
// artifacts of the jobs run so far), so that two runs can go at once.
func (repo *Repo) Copy(name string) (*Repo, error) {
	dst := filepath.Join(repo.runner.work, name)
	if out, err := exec.CommandContext(context.Background(), "cp", "-a", repo.Dir, dst).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying %s: %w\n%s", repo.Dir, err, out)
	}
	return &Repo{Dir: dst, Project: repo.Project, runner: repo.runner}, nil
}

// Pipeline is a pipeline as GitLab would start it.
type Pipeline struct {
	Source string          // CI_PIPELINE_SOURCE: "merge_request_event", "push" (the default branch) or "schedule"
	MRIID  int             // merge request pipelines: CI_MERGE_REQUEST_IID
	Role   fakegitlab.Role // role of the user the job token acts for; default Maintainer
	Manual []string        // manual jobs to run, e.g. ApplyJobs(n)
	Jobs   []string        // run only these jobs, with the artifacts earlier runs left
	// Variables are the project's CI/CD variables on top of the ECR ones,
	// e.g. GITLAB_TOKEN or IMAGESYNC_NOTE_TOKEN.
	Variables map[string]string
}

// Result is what a pipeline run left.
type Result struct {
	Output   string
	ExitCode int
	Duration time.Duration
	repo     *Repo
}

// Job names of the example pipeline; plan, apply and drift run once per shard.
const (
	ValidateJob = "imagesync:validate"
	RetireJob   = "imagesync:retire"
	planJob     = "imagesync:plan"
	applyJob    = "imagesync:apply"
	driftJob    = "imagesync:drift"
)

// shardJob is the name gitlab-ci-local gives shard index (0-based) of a
// parallel: n job.
func shardJob(job string, index, n int) string { return fmt.Sprintf("%s: [%d/%d]", job, index+1, n) }

// PlanJob, ApplyJob and DriftJob name one shard's job.
func PlanJob(index, n int) string  { return shardJob(planJob, index, n) }
func ApplyJob(index, n int) string { return shardJob(applyJob, index, n) }
func DriftJob(index, n int) string { return shardJob(driftJob, index, n) }

// ApplyJobs names the apply jobs of every shard.
func ApplyJobs(n int) []string {
	jobs := make([]string, n)
	for i := range jobs {
		jobs[i] = ApplyJob(i, n)
	}
	return jobs
}

// Run runs the pipeline with gitlab-ci-local in the repository. A pipeline
// that fails is a Result with a non-zero ExitCode, not an error.
func (repo *Repo) Run(ctx context.Context, p Pipeline) (Result, error) {
	// Each job starts from a fresh checkout, as on a runner; artifacts stay.
	if err := os.RemoveAll(filepath.Join(repo.Dir, ".gitlab-ci-local", "builds")); err != nil {
		return Result{}, err
	}
	args := []string{"--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source", "--color=false",
		"--home", filepath.Join(repo.runner.work, "gitlab-ci-local-home")}
	vars, unset := repo.ciVariables(p)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		args = append(args, "--variable", k+"="+vars[k])
	}
	for _, k := range unset {
		args = append(args, "--unset-variable", k)
	}
	for _, m := range p.Manual {
		args = append(args, "--manual", m)
	}
	args = append(args, p.Jobs...)

	cmd := exec.CommandContext(ctx, "gitlab-ci-local", args...)
	cmd.Dir = repo.Dir
	cmd.Env = repo.runner.processEnv()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if w := repo.runner.Output; w != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, w), io.MultiWriter(&out, w)
	}
	start := time.Now()
	err := cmd.Run()
	res := Result{Output: out.String(), Duration: time.Since(start), repo: repo}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		res.ExitCode, err = exit.ExitCode(), nil
	}
	return res, err
}

// ciVariables are the predefined variables GitLab gives the jobs of p, and
// the project's CI/CD variables; unset lists the predefined variables that
// the pipeline does not have (a merge request pipeline has no CI_COMMIT_BRANCH).
func (repo *Repo) ciVariables(p Pipeline) (vars map[string]string, unset []string) {
	env, gl := repo.runner.Env, repo.runner.Env.GitLab
	role := p.Role
	if role == 0 {
		role = fakegitlab.RoleMaintainer
	}
	jobToken := gl.NewJobToken(repo.Project.Path, role)
	vars = map[string]string{
		"CI_PIPELINE_SOURCE": p.Source, "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_BRANCH": "main",
		"CI_PROJECT_ID": strconv.Itoa(repo.Project.ID), "CI_PROJECT_PATH": repo.Project.Path,
		"CI_SERVER_URL": env.GitLabURL, "CI_API_V4_URL": env.GitLabURL + "/api/v4",
		"CI_JOB_TOKEN": jobToken, "CI_REGISTRY": env.GitLabRegistryHost, "CI_REGISTRY_USER": "gitlab-ci-token",
		"CI_REGISTRY_PASSWORD": jobToken, "CI_REGISTRY_IMAGE": strings.ToLower(env.GitLabRegistryHost + "/" + repo.Project.Path),
		// The project's CI/CD variables for ECR: the read-only key. The
		// endpoints exist only because ECR is local here.
		"AWS_ACCESS_KEY_ID": env.AccessKeyID, "AWS_SECRET_ACCESS_KEY": env.SecretAccessKey, "AWS_REGION": env.Region,
		"AWS_ENDPOINT_URL_ECR": env.ECRAPIEndpoint, "IMAGESYNC_ECR_REGISTRY_ENDPOINT": env.ECRRegistryEndpoint,
	}
	// The local GitLab has its own CA, as many self-managed ones do: the
	// runner gives its jobs CI_SERVER_TLS_CA_FILE, and the project sets
	// AWS_CA_BUNDLE for ECR's side (local here too). Over plain HTTP
	// (debugging) the registry URL must be given; https://$CI_REGISTRY is right
	// otherwise.
	maps.Copy(vars, env.CAEnvVars())
	if env.CAFile == "" {
		vars["IMAGESYNC_GITLAB_REGISTRY_URL"] = env.GitLabRegistryURL
	}
	if p.Source == "merge_request_event" {
		vars["CI_MERGE_REQUEST_IID"] = strconv.Itoa(p.MRIID)
		vars["CI_COMMIT_REF_NAME"] = "migration-change"
		delete(vars, "CI_COMMIT_BRANCH")
		unset = append(unset, "CI_COMMIT_BRANCH")
	}
	if r := repo.runner; r.cli.OpenTofu {
		vars["IMAGESYNC_TERRAFORM"] = "tofu" // as the guide tells OpenTofu users
	}
	for k, v := range p.Variables {
		vars[k] = v
	}
	return vars, unset
}

// processEnv is gitlab-ci-local's environment: the machine's, without
// anything that could stand in for a CI/CD variable, plus the fresh
// provider build and plansummary.
func (r *Runner) processEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "GITLAB_") || strings.HasPrefix(k, "CI_") ||
			strings.HasPrefix(k, "TF_") || strings.HasPrefix(k, "IMAGESYNC_") || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	path := r.binDir
	if dir := filepath.Dir(r.cli.Path); dir != "." { // a CLI named by its path goes first on PATH
		path += string(os.PathListSeparator) + dir
	}
	return append(env, "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TF_CLI_CONFIG_FILE="+r.cliConfig, "CHECKPOINT_DISABLE=1")
}

// jobLine matches gitlab-ci-local's closing line per job, " PASS  name" or
// " FAIL  name", where a parallel job's name ends in " [i/n]". Its warnings
// (" WARN  Avoid overriding...") are prose and do not match.
var jobLine = regexp.MustCompile(`(?m)^ (PASS|FAIL|WARN) +(\S+(?: \[\d+/\d+\])?) *$`)

// Jobs is each job's outcome, "PASS", "FAIL" or "WARN" (failed, allowed to fail).
func (res Result) Jobs() map[string]string {
	out := map[string]string{}
	for _, m := range jobLine.FindAllStringSubmatch(res.Output, -1) {
		out[m[2]] = m[1]
	}
	return out
}

// Log is the output of one job, without terminal colors.
func (res Result) Log(job string) string {
	b, _ := os.ReadFile(filepath.Join(res.repo.Dir, ".gitlab-ci-local", "output", safeJobName(job)+".log"))
	return stripANSI(string(b))
}

// Artifact reads a file from a job's artifacts, e.g. ".imagesync/report.json".
func (res Result) Artifact(job, path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(res.repo.Dir, ".gitlab-ci-local", "artifacts", safeJobName(job), filepath.FromSlash(path)))
}

// safeJobName is gitlab-ci-local's Utils.safeDockerString: every run of
// characters outside [A-Za-z0-9_-] becomes its unpadded base64url.
func safeJobName(job string) string {
	return unsafeRun.ReplaceAllStringFunc(job, func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) })
}

var (
	unsafeRun = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
	ansi      = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")
)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

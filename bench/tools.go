package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

const (
	regsyncModule = "github.com/regclient/regclient/cmd/regsync@v0.11.7"
	// crane v0.21.4 and later refuse a token realm on a private IP literal
	// (go-containerregistry #2258, an SSRF guard); the local GitLab's realm
	// is http://127.0.0.1:P/jwt/auth, so the bench pins the last release
	// before that check. The copy path is the same.
	craneModule = "github.com/google/go-containerregistry/cmd/crane@v0.21.3"
	cmdTimeout  = 30 * time.Minute
)

type tools struct {
	terraform, skopeo, regsync, crane string
	perf                              string // "" when perf cannot profile here
	versions                          map[string]string
	cliConfig                         string // terraform CLI config with dev_overrides
}

// setupTools finds or installs skopeo, regsync and crane and builds the
// provider into work/plugins, with a CLI config like `make demo` uses.
func setupTools(ctx context.Context, root, work string) (*tools, error) {
	t := &tools{versions: map[string]string{}}
	var err error
	if t.terraform, err = exec.LookPath("terraform"); err != nil {
		return nil, errors.New("terraform not found on PATH (make deps checks for it)")
	}
	if t.skopeo, err = exec.LookPath("skopeo"); err != nil {
		if os.Geteuid() != 0 {
			return nil, errors.New("skopeo not found: run make deps (apt-get install skopeo)")
		}
		logf("  apt-get install skopeo")
		if out, err := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "skopeo").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get install skopeo: %w\n%s", err, out)
		}
		if t.skopeo, err = exec.LookPath("skopeo"); err != nil {
			return nil, err
		}
	}
	gobin := filepath.Join(work, "gobin")
	install := func(name, module string) (string, error) {
		// One on PATH is used when it is the pinned version.
		_, want, _ := strings.Cut(module, "@")
		if p, err := exec.LookPath(name); err == nil && goModVersion(ctx, p) == want {
			return p, nil
		}
		logf("  go install %s", module)
		cmd := exec.CommandContext(ctx, "go", "install", module)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin)
		cmd.Dir = work // outside the module: its go.mod must not change
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go install %s: %w\n%s", module, err, out)
		}
		return filepath.Join(gobin, name), nil
	}
	if t.regsync, err = install("regsync", regsyncModule); err != nil {
		return nil, err
	}
	if t.crane, err = install("crane", craneModule); err != nil {
		return nil, err
	}
	tfv := exec.CommandContext(ctx, t.terraform, "version")
	tfv.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	out, _ := tfv.CombinedOutput()
	t.versions["terraform"] = lineWithPrefix(string(out), "Terraform ")
	out, _ = exec.CommandContext(ctx, t.skopeo, "--version").CombinedOutput()
	t.versions["skopeo"] = strings.TrimPrefix(lineWithPrefix(string(out), "skopeo version "), "skopeo version ")
	t.versions["regsync"] = goModVersion(ctx, t.regsync)
	t.versions["crane"] = goModVersion(ctx, t.crane)

	t.perf = findPerf(ctx)
	if t.cliConfig, err = localenv.BuildProvider(ctx, root, work); err != nil {
		return nil, err
	}
	t.versions["provider"] = "this checkout"
	return t, nil
}

func lineWithPrefix(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return "?"
}

// goModVersion is the main module version of a Go binary (go version -m).
func goModVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	return "?"
}

// sample is one timed execution, with the proxies' counters.
type sample struct {
	secs              float64
	ecrBytes, glBytes int64
	ecrReqs, glReqs   int64            // registry requests (ECR's includes its S3 redirects)
	api               map[string]int64 // ECR API calls by action
	problems          []string         // verification after a cold run
}

func (s sample) apiCalls() int64 {
	var n int64
	for _, v := range s.api {
		n += v
	}
	return n
}

// add sums two samples of steps run one after the other.
func (s sample) add(o sample) sample {
	out := sample{secs: s.secs + o.secs, ecrBytes: s.ecrBytes + o.ecrBytes, glBytes: s.glBytes + o.glBytes,
		ecrReqs: s.ecrReqs + o.ecrReqs, glReqs: s.glReqs + o.glReqs, api: map[string]int64{}}
	for k, v := range s.api {
		out.api[k] += v
	}
	for k, v := range o.api {
		out.api[k] += v
	}
	return out
}

// step is one command of a run, measured on its own.
type step struct {
	name string
	run  func(ctx context.Context) error
}

// runSteps are the commands of one run: the cold copy (one or more steps,
// e.g. terraform plan -out then apply), the rerun on the finished mirror,
// and an optional read-only check (regsync check).
type runSteps struct {
	cold  []step
	rerun step
	check *step
}

type toolResult struct {
	tool        string
	label       string
	cold, rerun []sample
	// rerunLoopback is the rerun once more with the WAN lifted (-wan only).
	rerunLoopback []sample
	coldSteps     [][]sample // per run, per cold step
	check         []sample
	checkCommand  string
	errs          []string
}

// toolRunner prepares a run (untimed) into a fresh project.
type toolRunner struct {
	name, label string
	prepare     func(ctx context.Context, dir, project string) (runSteps, error)
}

// parallelism is the peers' "at their best" setting: regsync's parallel,
// crane copies and skopeo sync processes at a time; the provider's
// max_concurrent_blobs default is the same 8.
const parallelism = 8

func (b *bench) allRunners() []toolRunner {
	return []toolRunner{
		{name: "provider", label: "provider (`terraform plan -out`, then `apply` of the plan)", prepare: b.prepareProvider(false)},
		{name: "provider-noref", label: "provider, `copy_referrers = false`", prepare: b.prepareProvider(true)},
		// Over a WAN a repository mostly waits on round trips: more of them
		// at once is the setting the README advises there.
		{name: "provider-p40", label: "provider, `terraform -parallelism=40`", prepare: b.prepareProvider(false, "-parallelism=40")},
		{name: "skopeo", label: "`skopeo sync --all --preserve-digests`, sequential (one process)", prepare: b.prepareSkopeo(1)},
		{name: "skopeo-8", label: fmt.Sprintf("`skopeo sync`, %d repositories at a time (one process each, one shared blob-info cache)", parallelism), prepare: b.prepareSkopeo(parallelism)},
		{name: "regsync", label: "`regsync once`, sequential (no `parallel`, the default)", prepare: b.prepareRegsync(0)},
		{name: "regsync-8", label: fmt.Sprintf("`regsync once`, `parallel: %d` in defaults", parallelism), prepare: b.prepareRegsync(parallelism)},
		{name: "crane", label: "`crane copy`, one tag at a time", prepare: b.prepareCrane(1)},
		{name: "crane-8", label: fmt.Sprintf("`crane copy`, %d repositories at a time (a repository's tags one after another)", parallelism), prepare: b.prepareCrane(parallelism)},
	}
}

func (b *bench) measure(ctx context.Context, f func(ctx context.Context) error) (sample, error) {
	b.env.ECRProxy.ResetStats()
	b.env.GitLabProxy.ResetStats()
	b.env.ECRAPIProxy.ResetStats()
	t0 := time.Now()
	err := f(ctx)
	s := sample{secs: time.Since(t0).Seconds()}
	es, gs, as := b.env.ECRProxy.Stats(), b.env.GitLabProxy.Stats(), b.env.ECRAPIProxy.Stats()
	s.ecrBytes, s.ecrReqs = es.BytesToClient, es.Requests
	s.glBytes, s.glReqs = gs.BytesFromClient, gs.Requests
	s.api = as.ByAction
	return s, err
}

// measureSteps runs steps one after the other, each measured on its own.
func (b *bench) measureSteps(ctx context.Context, steps []step) (total sample, each []sample, err error) {
	total.api = map[string]int64{}
	for _, st := range steps {
		s, err := b.measure(ctx, st.run)
		if err != nil {
			return total, each, fmt.Errorf("%s: %w", st.name, err)
		}
		each = append(each, s)
		total = total.add(s)
	}
	return total, each, nil
}

// measureCold runs the cold steps; logged, it keeps their request log as
// the timeline.
func (b *bench) measureCold(ctx context.Context, logged bool, steps []step) (sample, []sample, error) {
	if logged {
		log := b.env.LogRequests()
		busy0, total0 := machineCPU()
		defer func() {
			b.timeline = newTimeline(log.Entries())
			b.timeline.cpuBusy = busyShare(busy0, total0)
		}()
		defer b.env.StopLogging()
	}
	return b.measureSteps(ctx, steps)
}

func (b *bench) runTool(ctx context.Context, r toolRunner, run int, res *toolResult) {
	project := fmt.Sprintf("bench/%s-%d", r.name, run)
	p := b.env.GitLab.AddProject(project)
	dir := filepath.Join(b.work, "runs", fmt.Sprintf("%s-%d", r.name, run))
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf("run %d: ", run) + fmt.Sprintf(format, args...)
		logf("%s FAILED %s", r.name, msg)
		res.errs = append(res.errs, msg)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail("%v", err)
		return
	}
	defer os.RemoveAll(dir)
	steps, err := r.prepare(ctx, dir, p.Path)
	if err != nil {
		fail("prepare: %v", err)
		return
	}
	s, each, err := b.measureCold(ctx, r.name == "provider" && run == 1, steps.cold)
	if err != nil {
		fail("cold: %v", err)
		return
	}
	s.problems = b.verify(ctx, b.w, p.ImagePrefix)
	if len(s.problems) > 0 {
		fail("cold copy incomplete: %d problems, first: %s", len(s.problems), s.problems[0])
	}
	res.cold = append(res.cold, s)
	res.coldSteps = append(res.coldSteps, each)
	logf("%-9s run %d cold:  %6.2fs  ECR %s  GitLab %s  %d requests", r.name, run, s.secs, mb(s.ecrBytes), mb(s.glBytes), s.ecrReqs+s.glReqs)
	rs, err := b.measure(ctx, steps.rerun.run)
	if err != nil {
		fail("rerun: %v", err)
		return
	}
	res.rerun = append(res.rerun, rs)
	logf("%-9s run %d rerun: %6.2fs  ECR %s  %d ECR + %d GitLab requests", r.name, run, rs.secs, mb(rs.ecrBytes), rs.ecrReqs, rs.glReqs)
	b.loopbackRerun(ctx, r, steps.rerun, res)
	if steps.check != nil {
		cs, err := b.measure(ctx, steps.check.run)
		if err != nil {
			fail("%s: %v", steps.check.name, err)
			return
		}
		res.check, res.checkCommand = append(res.check, cs), steps.check.name
		logf("%-9s run %d %s: %6.2fs  %d ECR + %d GitLab requests", r.name, run, steps.check.name, cs.secs, cs.ecrReqs, cs.glReqs)
	}
}

// inPool runs jobs, at most n at a time, and returns the first error.
func inPool(ctx context.Context, n int, jobs []func(ctx context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, job := range jobs {
		g.Go(func() error { return job(ctx) })
	}
	return g.Wait()
}

// runCmd runs a command with its output in logPath (and on stderr with -v);
// a failure carries the output's tail.
func (b *bench) runCmd(ctx context.Context, dir string, env []string, logPath string, name string, args ...string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	var tail tailBuffer
	out := io.MultiWriter(f, &tail)
	if b.o.verbose {
		out = io.MultiWriter(out, os.Stderr)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), fmt.Errorf("%s exited %d: %s", filepath.Base(name), exit.ExitCode(), tail.String())
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// tailBuffer keeps the last 2 KB written.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil))) }

// ---- provider ----

// providerTF selects the workload's repositories as a user migrating a
// whole registry would, by prefix and, for a shard, by shard_index and
// shard_count (each shard its own working directory and state).
const providerTF = `terraform {
  required_providers {
    imagesync = {
      source = "imagesync/imagesync"
    }
  }
}

provider "imagesync" {}

variable "gitlab_project" {
  type = string
}

variable "name_prefix" {
  type = string
}

variable "shard_index" {
  type    = number
  default = 0
}

variable "shard_count" {
  type    = number
  default = 1
}

variable "copy_referrers" {
  type    = bool
  default = true
}

data "imagesync_ecr_repositories" "all" {
  name_prefix = var.name_prefix
  shard_index = var.shard_index
  shard_count = var.shard_count
}

locals {
  repositories = { for r in data.imagesync_ecr_repositories.all.repositories : r.name => r }
}

resource "imagesync_gitlab_mirrored_image" "mirror" {
  for_each = local.repositories

  source_repository = each.key
  gitlab_project    = var.gitlab_project
  images            = each.value.images
  copy_referrers    = var.copy_referrers
}
`

// tfVars are one working directory's variables.
type tfVars struct {
	project, prefix        string
	shardIndex, shardCount int
	noReferrers            bool
}

func (b *bench) tfEnv() []string {
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+b.tools.cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	for k, v := range b.env.EnvVars() {
		env = append(env, k+"="+v)
	}
	// The configuration names no CA: the variables trust it, as in CI.
	for k, v := range b.env.CAEnvVars() {
		env = append(env, k+"="+v)
	}
	return env
}

// tfDir writes the configuration into dir and runs terraform init.
func (b *bench) tfDir(ctx context.Context, dir string, v tfVars) error {
	if v.shardCount == 0 {
		v.shardCount = 1
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(providerTF), 0o600); err != nil {
		return err
	}
	vars, err := json.Marshal(map[string]any{"gitlab_project": v.project, "name_prefix": v.prefix,
		"shard_index": v.shardIndex, "shard_count": v.shardCount, "copy_referrers": !v.noReferrers})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vars, 0o600); err != nil {
		return err
	}
	return b.tfInit(ctx, dir)
}

// tfInit runs terraform init in dir, logging to its terraform.log.
func (b *bench) tfInit(ctx context.Context, dir string) error {
	_, err := b.runCmd(ctx, dir, b.tfEnv(), filepath.Join(dir, "terraform.log"), b.tools.terraform, "init", "-input=false", "-no-color")
	return err
}

// tfSteps are the provider's cold copy as CI runs it (plan into a file in
// the merge request, apply of that plan) and its no-op rerun (a plan), each
// with extra flags, e.g. -parallelism.
func (b *bench) tfSteps(dir string, extra ...string) (plan, apply, rerun step) {
	tf := func(ctx context.Context, args ...string) (int, error) {
		args = append(args[:1:1], append(slices.Clone(extra), args[1:]...)...)
		return b.runCmd(ctx, dir, b.tfEnv(), filepath.Join(dir, "terraform.log"), b.tools.terraform, args...)
	}
	plan = step{name: "terraform plan -out", run: func(ctx context.Context) error {
		_, err := tf(ctx, "plan", "-out=cold.tfplan", "-input=false", "-no-color")
		return err
	}}
	apply = step{name: "terraform apply (the plan)", run: func(ctx context.Context) error {
		_, err := tf(ctx, "apply", "-input=false", "-no-color", "cold.tfplan")
		return err
	}}
	rerun = step{name: "terraform plan", run: func(ctx context.Context) error {
		code, err := tf(ctx, "plan", "-detailed-exitcode", "-input=false", "-no-color")
		if code == 2 {
			return errors.New("the rerun plan is not empty (exit 2)")
		}
		return err
	}}
	return plan, apply, rerun
}

func (b *bench) prepareProvider(noReferrers bool, extra ...string) func(ctx context.Context, dir, project string) (runSteps, error) {
	return func(ctx context.Context, dir, project string) (runSteps, error) {
		if err := b.tfDir(ctx, dir, tfVars{project: project, prefix: repoPrefix, noReferrers: noReferrers}); err != nil {
			return runSteps{}, err
		}
		plan, apply, rerun := b.tfSteps(dir, extra...)
		return runSteps{cold: []step{plan, apply}, rerun: rerun}, nil
	}
}

// ---- skopeo sync ----

// prepareSkopeo syncs with one skopeo process for every repository
// (procs 1), or with procs processes at a time, one repository each, all
// sharing one blob-info cache, so that a blob one process copied is
// mounted, not copied, by the others.
func (b *bench) prepareSkopeo(procs int) func(ctx context.Context, dir, project string) (runSteps, error) {
	return func(ctx context.Context, dir, project string) (runSteps, error) {
		groups := [][]repoW{b.w.repos}
		if procs > 1 {
			groups = nil
			for _, r := range b.w.repos {
				groups = append(groups, []repoW{r})
			}
		}
		var yamls []string
		for i, g := range groups {
			path := filepath.Join(dir, fmt.Sprintf("sync-%04d.yaml", i))
			if err := b.writeSkopeoYAML(path, g); err != nil {
				return runSteps{}, err
			}
			yamls = append(yamls, path)
		}
		env, err := skopeoHome(dir)
		if err != nil {
			return runSteps{}, err
		}
		var jobs []func(context.Context) error
		for _, y := range yamls {
			args := append([]string{"sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker"}, b.env.SkopeoTLSFlags("dest-")...)
			args = append(args, "--dest-creds", "root:"+b.env.GitLabToken, y, b.env.GitLabRegistryHost+"/"+project)
			jobs = append(jobs, func(ctx context.Context) error {
				_, err := b.runCmd(ctx, dir, env, filepath.Join(dir, "skopeo.log"), b.tools.skopeo, args...)
				return err
			})
		}
		sync := step{name: "skopeo sync", run: func(ctx context.Context) error { return inPool(ctx, procs, jobs) }}
		return runSteps{cold: []step{sync}, rerun: sync}, nil
	}
}

// writeSkopeoYAML writes skopeo's sync file: one registry with repos and
// their tags (JSON is YAML).
func (b *bench) writeSkopeoYAML(path string, repos []repoW) error {
	images := map[string][]string{}
	for _, r := range repos {
		images[r.name] = r.tags
	}
	registry := map[string]any{
		"tls-verify":  b.env.CAFile != "",
		"credentials": map[string]string{"username": "AWS", "password": b.env.ECRPassword},
		"images":      images,
	}
	if dir := b.env.CertDir(); dir != "" {
		registry["cert-dir"] = dir
	}
	return writeConfig(path, map[string]any{hostOf(b.env.ECRRegistryEndpoint): registry})
}

// skopeoHome is the environment of skopeo runs in dir: a blob-info cache
// of their own. skopeo's cache remembers where blobs already are in the
// destination and would mount them from an earlier run's project. Root
// keeps it in /var/lib/containers/cache; _CONTAINERS_ROOTLESS_UID makes
// containers/image treat us as a rootless user, whose cache
// (blob-info-cache-v1.boltdb) lives under XDG_DATA_HOME: a fresh directory
// per run, shared by the run's processes.
func skopeoHome(dir string) ([]string, error) {
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "data"), filepath.Join(home, "config"), filepath.Join(home, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	env := append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"))
	if os.Geteuid() == 0 {
		env = append(env, "_CONTAINERS_ROOTLESS_UID=65534")
	}
	return env, nil
}

// ---- regsync ----

// prepareRegsync syncs with regsync once, parallel steps at a time (0:
// regsync's default, one after the other); its check is regsync check,
// which reads both sides and copies nothing.
func (b *bench) prepareRegsync(parallel int) func(ctx context.Context, dir, project string) (runSteps, error) {
	return func(ctx context.Context, dir, project string) (runSteps, error) {
		cfgPath := filepath.Join(dir, "regsync.yaml")
		if err := b.writeRegsyncConfig(cfgPath, project, b.w.repos, parallel); err != nil {
			return runSteps{}, err
		}
		once := step{name: "regsync once", run: b.regsyncCmd(dir, cfgPath, "once")}
		check := step{name: "regsync check", run: b.regsyncCmd(dir, cfgPath, "check")}
		return runSteps{cold: []step{once}, rerun: once, check: &check}, nil
	}
}

func (b *bench) regsyncCmd(dir, cfgPath, verb string) func(ctx context.Context) error {
	env := append(os.Environ(), "HOME="+dir)
	return func(ctx context.Context) error {
		_, err := b.runCmd(ctx, dir, env, filepath.Join(dir, "regsync.log"), b.tools.regsync, verb, "-c", cfgPath)
		return err
	}
}

// writeRegsyncConfig writes a regsync configuration with one repository
// step per ECR repository, into project.
func (b *bench) writeRegsyncConfig(path, project string, repos []repoW, parallel int) error {
	ecrHost := hostOf(b.env.ECRRegistryEndpoint)
	type sync struct {
		Source string `json:"source"`
		Target string `json:"target"`
		Type   string `json:"type"`
	}
	defaults := map[string]any{"skipDockerConfig": true}
	if parallel > 0 {
		defaults["parallel"] = parallel
	}
	var syncs []sync
	for _, r := range repos {
		syncs = append(syncs, sync{
			Source: ecrHost + "/" + r.name,
			Target: b.env.GitLabRegistryHost + "/" + project + "/" + r.name,
			Type:   "repository",
		})
	}
	return writeConfig(path, map[string]any{
		"version": 1,
		"creds": []map[string]string{
			b.regsyncCreds(ecrHost, "AWS", b.env.ECRPassword),
			b.regsyncCreds(b.env.GitLabRegistryHost, "root", b.env.GitLabToken),
		},
		"defaults": defaults,
		"sync":     syncs,
	})
}

// regsyncCreds is regsync's entry for a registry of the environment: its
// CA as regcert, or plain HTTP.
func (b *bench) regsyncCreds(host, user, pass string) map[string]string {
	creds := map[string]string{"registry": host, "user": user, "pass": pass}
	maps.Copy(creds, b.env.RegctlTLS())
	return creds
}

// ---- crane ----

// prepareCrane copies tag by tag, one crane copy per tag as a seed
// pipeline's loop does, procs repositories at a time.
func (b *bench) prepareCrane(procs int) func(ctx context.Context, dir, project string) (runSteps, error) {
	return func(ctx context.Context, dir, project string) (runSteps, error) {
		cfgDir := filepath.Join(dir, "docker")
		if err := os.MkdirAll(cfgDir, 0o700); err != nil {
			return runSteps{}, err
		}
		// crane trusts a CA only through Go's system pool (SSL_CERT_FILE);
		// --insecure is its plain-HTTP switch.
		env := append(os.Environ(), "DOCKER_CONFIG="+cfgDir, "HOME="+dir)
		var insecure []string
		if b.env.CAFile != "" {
			env = append(env, "SSL_CERT_FILE="+b.env.CAFile)
		} else {
			insecure = []string{"--insecure"}
		}
		logPath := filepath.Join(dir, "crane.log")
		ecrHost := hostOf(b.env.ECRRegistryEndpoint)
		for _, l := range [][2]string{{ecrHost, "AWS:" + b.env.ECRPassword}, {b.env.GitLabRegistryHost, "root:" + b.env.GitLabToken}} {
			user, pass, _ := strings.Cut(l[1], ":")
			if _, err := b.runCmd(ctx, dir, env, logPath, b.tools.crane, "auth", "login", l[0], "-u", user, "-p", pass); err != nil {
				return runSteps{}, err
			}
		}
		// A repository's tags one after another: two crane processes
		// pushing the same blobs into one repository at once make
		// distribution 2.8 refuse a manifest (DIGEST_INVALID,
		// MANIFEST_BLOB_UNKNOWN), so parallel copies go to different
		// repositories, as a loop run with xargs -P would.
		var jobs []func(context.Context) error
		for _, r := range b.w.repos {
			jobs = append(jobs, func(ctx context.Context) error {
				for _, tag := range r.tags {
					args := append(append([]string{"copy"}, insecure...), ecrHost+"/"+r.name+":"+tag, b.env.GitLabRegistryHost+"/"+project+"/"+r.name+":"+tag)
					if _, err := b.runCmd(ctx, dir, env, logPath, b.tools.crane, args...); err != nil {
						return err
					}
				}
				return nil
			})
		}
		copyAll := step{name: "crane copy", run: func(ctx context.Context) error { return inPool(ctx, procs, jobs) }}
		return runSteps{cold: []step{copyAll}, rerun: copyAll}, nil
	}
}

func hostOf(endpoint string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	return strings.TrimSuffix(h, "/")
}

// writeConfig writes a tool's configuration as indented JSON, which YAML
// readers take as it is; 0600, since it holds credentials.
func writeConfig(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

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
			return nil, fmt.Errorf("apt-get install skopeo: %v\n%s", err, out)
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
			return "", fmt.Errorf("go install %s: %v\n%s", module, err, out)
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
	ecrReqs, glReqs   int64
	problems          []string // verification after a cold run
	exitNote          string
}

type toolResult struct {
	tool        string
	cold, rerun []sample
	errs        []string
}

// toolRunner prepares a run (untimed), then runs the cold copy and the rerun.
type toolRunner struct {
	name string
	// prepare returns the cold and rerun commands of one run into project.
	prepare func(ctx context.Context, dir, project string) (cold, rerun func(ctx context.Context) error, err error)
}

func (b *bench) allRunners() []toolRunner {
	return []toolRunner{
		{name: "provider", prepare: b.prepareProvider},
		{name: "skopeo", prepare: b.prepareSkopeo},
		{name: "regsync", prepare: b.prepareRegsync},
		{name: "crane", prepare: b.prepareCrane},
	}
}

func (b *bench) measure(ctx context.Context, f func(ctx context.Context) error) (sample, error) {
	b.env.ECRProxy.ResetStats()
	b.env.GitLabProxy.ResetStats()
	t0 := time.Now()
	err := f(ctx)
	s := sample{secs: time.Since(t0).Seconds()}
	es, gs := b.env.ECRProxy.Stats(), b.env.GitLabProxy.Stats()
	s.ecrBytes, s.ecrReqs = es.BytesToClient, es.Requests
	s.glBytes, s.glReqs = gs.BytesFromClient, gs.Requests
	return s, err
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
	cold, rerun, err := r.prepare(ctx, dir, p.Path)
	if err != nil {
		fail("prepare: %v", err)
		return
	}
	s, err := b.measure(ctx, cold)
	if err != nil {
		fail("cold: %v", err)
		return
	}
	s.problems = b.verify(ctx, b.w, p.ImagePrefix)
	if len(s.problems) > 0 {
		fail("cold copy incomplete: %d problems, first: %s", len(s.problems), s.problems[0])
	}
	res.cold = append(res.cold, s)
	logf("%-8s run %d cold:  %6.2fs  ECR %s  GitLab %s  %d requests", r.name, run, s.secs, mb(s.ecrBytes), mb(s.glBytes), s.ecrReqs+s.glReqs)
	rs, err := b.measure(ctx, rerun)
	if err != nil {
		fail("rerun: %v", err)
		return
	}
	res.rerun = append(res.rerun, rs)
	logf("%-8s run %d rerun: %6.2fs  ECR %s  GitLab %d requests", r.name, run, rs.secs, mb(rs.ecrBytes), rs.glReqs)
}

// runCmd runs a command with its output in logPath (and on stderr with -v);
// a failure carries the output's tail.
func (b *bench) runCmd(ctx context.Context, dir string, env []string, logPath string, name string, args ...string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	var tail tailBuffer
	var out io.Writer = io.MultiWriter(f, &tail)
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

variable "repos" {
  type = list(string)
}

data "imagesync_ecr_repositories" "all" {
  names = var.repos
}

resource "imagesync_gitlab_mirrored_image" "mirror" {
  for_each = { for r in data.imagesync_ecr_repositories.all.repositories : r.name => r }

  source_repository = each.key
  gitlab_project    = var.gitlab_project
  images            = each.value.images
}
`

func (b *bench) tfEnv() []string {
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+b.tools.cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	for k, v := range b.env.EnvVars() {
		env = append(env, k+"="+v)
	}
	return env
}

// tfDir writes the configuration for repos into dir and runs terraform init.
func (b *bench) tfDir(ctx context.Context, dir, project string, repos []string) error {
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(providerTF), 0o644); err != nil {
		return err
	}
	vars, err := json.Marshal(map[string]any{"gitlab_project": project, "repos": repos})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vars, 0o644); err != nil {
		return err
	}
	_, err = b.runCmd(ctx, dir, b.tfEnv(), filepath.Join(dir, "terraform.log"), b.tools.terraform, "init", "-input=false", "-no-color")
	return err
}

func (b *bench) tfApply(ctx context.Context, dir string) error {
	_, err := b.runCmd(ctx, dir, b.tfEnv(), filepath.Join(dir, "terraform.log"), b.tools.terraform,
		"apply", "-auto-approve", "-input=false", "-no-color")
	return err
}

func (b *bench) prepareProvider(ctx context.Context, dir, project string) (func(context.Context) error, func(context.Context) error, error) {
	if err := b.tfDir(ctx, dir, project, b.w.names()); err != nil {
		return nil, nil, err
	}
	cold := func(ctx context.Context) error { return b.tfApply(ctx, dir) }
	rerun := func(ctx context.Context) error {
		code, err := b.runCmd(ctx, dir, b.tfEnv(), filepath.Join(dir, "terraform.log"), b.tools.terraform,
			"plan", "-detailed-exitcode", "-input=false", "-no-color")
		if code == 2 {
			return errors.New("the rerun plan is not empty (exit 2)")
		}
		return err
	}
	return cold, rerun, nil
}

// ---- skopeo sync ----

func (b *bench) prepareSkopeo(ctx context.Context, dir, project string) (func(context.Context) error, func(context.Context) error, error) {
	images := map[string][]string{}
	for _, r := range b.w.repos {
		images[r.name] = r.tags
	}
	// JSON is YAML: skopeo's sync file, one registry with every repository
	// and its tags.
	src := map[string]any{
		hostOf(b.env.ECRRegistryEndpoint): map[string]any{
			"tls-verify":  false,
			"credentials": map[string]string{"username": "AWS", "password": b.env.ECRPassword},
			"images":      images,
		},
	}
	yamlPath := filepath.Join(dir, "sync.yaml")
	if err := writeConfig(yamlPath, src); err != nil {
		return nil, nil, err
	}
	// skopeo's blob-info cache remembers where blobs already are in the
	// destination and would mount them from an earlier run's project. Root
	// keeps it in /var/lib/containers/cache; _CONTAINERS_ROOTLESS_UID makes
	// containers/image treat us as a rootless user, whose cache lives under
	// XDG_DATA_HOME: a fresh directory per run.
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "data"), filepath.Join(home, "config"), filepath.Join(home, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	env := append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"))
	if os.Geteuid() == 0 {
		env = append(env, "_CONTAINERS_ROOTLESS_UID=65534")
	}
	cache := filepath.Join(home, "data", "containers", "cache", "blob-info-cache-v1.boltdb")
	sync := func(ctx context.Context) error {
		defer func() {
			if _, err := os.Stat(cache); err != nil && b.o.verbose {
				logf("skopeo: no blob-info cache at %s: %v", cache, err)
			}
		}()
		_, err := b.runCmd(ctx, dir, env, filepath.Join(dir, "skopeo.log"), b.tools.skopeo,
			"sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
			"--dest-tls-verify=false", "--dest-creds", "root:"+b.env.GitLabToken,
			yamlPath, b.env.GitLabRegistryHost+"/"+project)
		return err
	}
	return sync, sync, nil
}

// ---- regsync ----

func (b *bench) prepareRegsync(ctx context.Context, dir, project string) (func(context.Context) error, func(context.Context) error, error) {
	ecrHost := hostOf(b.env.ECRRegistryEndpoint)
	type sync struct {
		Source string `json:"source"`
		Target string `json:"target"`
		Type   string `json:"type"`
	}
	cfg := map[string]any{
		"version": 1,
		"creds": []map[string]string{
			{"registry": ecrHost, "tls": "disabled", "user": "AWS", "pass": b.env.ECRPassword},
			{"registry": b.env.GitLabRegistryHost, "tls": "disabled", "user": "root", "pass": b.env.GitLabToken},
		},
		"defaults": map[string]any{"skipDockerConfig": true},
	}
	var syncs []sync
	for _, r := range b.w.repos {
		syncs = append(syncs, sync{
			Source: ecrHost + "/" + r.name,
			Target: b.env.GitLabRegistryHost + "/" + project + "/" + r.name,
			Type:   "repository",
		})
	}
	cfg["sync"] = syncs
	cfgPath := filepath.Join(dir, "regsync.yaml")
	if err := writeConfig(cfgPath, cfg); err != nil {
		return nil, nil, err
	}
	env := append(os.Environ(), "HOME="+dir)
	once := func(ctx context.Context) error {
		_, err := b.runCmd(ctx, dir, env, filepath.Join(dir, "regsync.log"), b.tools.regsync, "once", "-c", cfgPath)
		return err
	}
	return once, once, nil
}

// ---- crane ----

func (b *bench) prepareCrane(ctx context.Context, dir, project string) (func(context.Context) error, func(context.Context) error, error) {
	cfgDir := filepath.Join(dir, "docker")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		return nil, nil, err
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+cfgDir, "HOME="+dir)
	logPath := filepath.Join(dir, "crane.log")
	ecrHost := hostOf(b.env.ECRRegistryEndpoint)
	for _, l := range [][2]string{{ecrHost, "AWS:" + b.env.ECRPassword}, {b.env.GitLabRegistryHost, "root:" + b.env.GitLabToken}} {
		user, pass, _ := strings.Cut(l[1], ":")
		if _, err := b.runCmd(ctx, dir, env, logPath, b.tools.crane, "auth", "login", l[0], "-u", user, "-p", pass); err != nil {
			return nil, nil, err
		}
	}
	// One tag at a time, the shape of a seed pipeline's loop.
	loop := func(ctx context.Context) error {
		for _, r := range b.w.repos {
			for _, tag := range r.tags {
				if _, err := b.runCmd(ctx, dir, env, logPath, b.tools.crane, "copy", "--insecure",
					ecrHost+"/"+r.name+":"+tag, b.env.GitLabRegistryHost+"/"+project+"/"+r.name+":"+tag); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return loop, loop, nil
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

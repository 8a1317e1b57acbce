// Package acceptance runs the provider through the terraform CLI against the
// local environment, for what terraform-plugin-testing cannot do: compare the
// state file byte for byte after a refused plan, import by ID from the
// command line, interrupt or kill terraform in the middle of an apply, or
// restart a registry under it. The provider is built from this checkout and
// run through a dev_overrides CLI configuration, by terraform from PATH or the
// Terraform or OpenTofu binary TF_ACC_TERRAFORM_PATH names.
package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

var (
	env       *localenv.Env
	cliConfig string       // TF_CLI_CONFIG_FILE running the fresh build
	cli       localenv.CLI // the terraform or tofu the tests run
)

func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") == "" {
		os.Exit(m.Run()) // every test skips itself
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	work, err := os.MkdirTemp("", "imagesync-acceptance-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return 0, err
	}
	if cli, err = localenv.TestedCLI(ctx); err != nil {
		return 0, err
	}
	if cliConfig, err = localenv.BuildProvider(ctx, root, work); err != nil {
		return 0, err
	}
	if env, err = localenv.Start(ctx, localenv.Options{Seed: true}); err != nil {
		return 0, fmt.Errorf("starting the local ECR and GitLab environment: %w", err)
	}
	defer env.Close()
	code := m.Run()
	if n := env.ECRWriteAttempts(); n > 0 {
		return 1, fmt.Errorf("%d write requests reached the ECR registry with the provider's token", n)
	}
	return code, nil
}

// workspace is one Terraform working directory with its own state.
type workspace struct {
	t        *testing.T
	dir      string
	env      []string
	provider string // the provider block; the local environment's unless changed
	hcl      string // the rest of the configuration
}

// newWorkspace makes a working directory whose configuration is the local
// environment's provider block plus hcl, initialised.
func newWorkspace(t *testing.T, hcl string) *workspace {
	t.Helper()
	skipWithoutEnv(t)
	w := &workspace{t: t, dir: t.TempDir(), provider: env.ProviderHCL()}
	w.env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1")
	for k, v := range env.EnvVars() {
		w.env = append(w.env, k+"="+v)
	}
	w.write(hcl)
	if out, code := w.run("init", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("terraform init exited %d:\n%s", code, out)
	}
	return w
}

// newProject adds the test's own GitLab project, acc/<name>, and returns its
// path and the name, for the test's other resources. Every test starts here or
// at newWorkspace, so without TF_ACC it skips before it touches the absent
// environment.
func newProject(t *testing.T) (project, name string) {
	t.Helper()
	skipWithoutEnv(t)
	name = uniqueName(t)
	return env.GitLab.AddProject("acc/" + name).Path, name
}

// skipWithoutEnv skips a test when TestMain started no local environment.
func skipWithoutEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("TF_ACC not set: these tests need terraform, moto_server and docker-registry")
	}
}

const requiredProviders = `terraform {
  required_providers {
    imagesync = { source = "imagesync/imagesync" }
  }
}
`

// write replaces the configuration (the provider block is always there).
func (w *workspace) write(hcl string) {
	w.t.Helper()
	w.hcl = hcl
	if err := os.WriteFile(filepath.Join(w.dir, "main.tf"), []byte(requiredProviders+w.provider+"\n"+hcl), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// useProvider replaces the provider block, keeping the rest, and adds
// variables (K=V) to terraform's environment, later ones winning.
func (w *workspace) useProvider(provider string, vars ...string) {
	w.t.Helper()
	w.provider = provider
	w.env = append(w.env, vars...)
	w.write(w.hcl)
}

// command prepares terraform (or tofu) with args in the workspace.
func (w *workspace) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cli.Path, args...)
	cmd.Dir, cmd.Env = w.dir, w.env
	return cmd
}

// run runs terraform to the end and returns its combined output and exit code.
func (w *workspace) run(args ...string) (string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, code, err := cli.Run(ctx, w.dir, w.env, args...)
	if err != nil {
		w.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, code
}

// mustRun runs terraform and fails the test unless it exits with want.
func (w *workspace) mustRun(want int, args ...string) string {
	w.t.Helper()
	out, code := w.run(args...)
	if code != want {
		w.t.Fatalf("terraform %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// apply applies the configuration and checks that a plan afterwards is empty.
func (w *workspace) apply() {
	w.t.Helper()
	w.mustRun(0, "apply", "-auto-approve", "-input=false", "-no-color")
	w.mustRun(0, "plan", "-detailed-exitcode", "-input=false", "-no-color")
}

// state returns the state file's bytes (nil when there is none).
func (w *workspace) state() []byte {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	if err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	return b
}

// stateImages returns the images map of the workspace's (one) resource, nil
// when the state holds none.
func (w *workspace) stateImages() map[string]string {
	w.t.Helper()
	raw := w.state()
	if len(raw) == 0 {
		return nil
	}
	var st struct {
		Resources []struct {
			Instances []struct {
				Attributes struct {
					Images map[string]string `json:"images"`
				} `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		w.t.Fatalf("state file: %v", err)
	}
	for _, r := range st.Resources {
		for _, in := range r.Instances {
			return in.Attributes.Images
		}
	}
	return nil
}

// uniqueName makes a lowercase name safe for ECR repositories and GitLab paths.
func uniqueName(t *testing.T) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%100000)
}

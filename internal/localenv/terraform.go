package localenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hashicorp/go-version"
)

// ProviderAddresses are the addresses `source = "imagesync/imagesync"` means:
// Terraform reads it on registry.terraform.io, OpenTofu on registry.opentofu.org.
var ProviderAddresses = []string{
	"registry.terraform.io/imagesync/imagesync",
	"registry.opentofu.org/imagesync/imagesync",
}

// BuildProvider builds the provider from the checkout at root into work and
// writes a Terraform CLI configuration that uses it, returned as its path (for
// TF_CLI_CONFIG_FILE). dev_overrides runs the fresh build; a filesystem mirror
// holds the same binary so that terraform init, which ignores overrides, finds
// it too, and nothing is downloaded. Both name Terraform's and OpenTofu's
// address, so either CLI runs it.
func BuildProvider(ctx context.Context, root, work string) (cliConfig string, err error) {
	pluginDir := filepath.Join(work, "plugins")
	bin := filepath.Join(pluginDir, "terraform-provider-imagesync")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the provider: %w\n%s", err, out)
	}
	mirror := filepath.Join(work, "mirror")
	var overrides, includes strings.Builder
	for _, addr := range ProviderAddresses {
		mirrored := filepath.Join(mirror, filepath.FromSlash(addr), "0.1.0", runtime.GOOS+"_"+runtime.GOARCH)
		if err := os.MkdirAll(mirrored, 0o755); err != nil {
			return "", err
		}
		if err := os.Link(bin, filepath.Join(mirrored, "terraform-provider-imagesync_v0.1.0")); err != nil {
			return "", err
		}
		fmt.Fprintf(&overrides, "    %q = %q\n", addr, pluginDir)
		fmt.Fprintf(&includes, "%q, ", addr)
	}
	cliConfig = filepath.Join(work, "terraformrc")
	err = os.WriteFile(cliConfig, fmt.Appendf(nil, `provider_installation {
  dev_overrides {
%s  }
  filesystem_mirror {
    path    = %q
    include = [%s]
  }
}
`, overrides.String(), mirror, strings.TrimSuffix(includes.String(), ", ")), 0o600)
	return cliConfig, err
}

// CLI is the Terraform or OpenTofu command a test, the demo or the pipeline runs.
type CLI struct {
	Path     string // a path, or a name looked up on PATH
	OpenTofu bool
	Version  *version.Version
}

// TerraformPathEnv names the CLI to run instead of terraform from PATH. It is
// terraform-plugin-testing's own setting, so one variable points every
// acceptance test, resource.Test or not, at the same binary.
const TerraformPathEnv = "TF_ACC_TERRAFORM_PATH"

// TestedCLI is the CLI named by TF_ACC_TERRAFORM_PATH, else terraform from PATH.
func TestedCLI(ctx context.Context) (CLI, error) {
	path := os.Getenv(TerraformPathEnv)
	if path == "" {
		path = "terraform"
	}
	return NewCLI(ctx, path)
}

// NewCLI asks the command at path for its version: `terraform version` begins
// with "Terraform v1.5.7", `tofu version` with "OpenTofu v1.10.6" (the -json
// form does not tell them apart).
func NewCLI(ctx context.Context, path string) (CLI, error) {
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return CLI{}, fmt.Errorf("%s version: %w", path, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	name, ver, ok := strings.Cut(strings.TrimSpace(first), " v")
	if !ok || (name != "Terraform" && name != "OpenTofu") {
		return CLI{}, fmt.Errorf("%s version printed %q, neither Terraform nor OpenTofu", path, first)
	}
	v, err := version.NewVersion(ver)
	if err != nil {
		return CLI{}, fmt.Errorf("%s version: %w", path, err)
	}
	return CLI{Path: path, OpenTofu: name == "OpenTofu", Version: v}, nil
}

// Name is the command as a person types it: terraform or tofu.
func (c CLI) Name() string {
	if c.OpenTofu {
		return "tofu"
	}
	return "terraform"
}

// ProviderAddress is what this CLI makes of source = "imagesync/imagesync".
func (c CLI) ProviderAddress() string {
	if c.OpenTofu {
		return ProviderAddresses[1]
	}
	return ProviderAddresses[0]
}

// AtLeast reports whether the CLI's version is v or later.
func (c CLI) AtLeast(v string) bool {
	return c.Version.GreaterThanOrEqual(version.Must(version.NewVersion(v)))
}

// Run runs the CLI with args in dir, with the environment env, to the end and
// returns its combined output and exit code; err is set only when it did not
// run (or ctx ended it).
func (c CLI) Run(ctx context.Context, dir string, env []string, args ...string) (out string, code int, err error) {
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Dir, cmd.Env = dir, env
	b, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return string(b), exit.ExitCode(), nil
	}
	return string(b), 0, err
}

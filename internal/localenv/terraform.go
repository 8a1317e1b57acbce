package localenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BuildProvider builds the provider from the checkout at root into work and
// writes a Terraform CLI configuration that uses it, returned as its path (for
// TF_CLI_CONFIG_FILE). dev_overrides runs the fresh build; a filesystem mirror
// holds the same binary so that terraform init, which ignores overrides, finds
// it too, and nothing is downloaded.
func BuildProvider(ctx context.Context, root, work string) (cliConfig string, err error) {
	pluginDir := filepath.Join(work, "plugins")
	bin := filepath.Join(pluginDir, "terraform-provider-imagesync")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the provider: %w\n%s", err, out)
	}
	mirror := filepath.Join(work, "mirror")
	mirrored := filepath.Join(mirror, "registry.terraform.io", "imagesync", "imagesync", "0.1.0", runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(mirrored, 0o755); err != nil {
		return "", err
	}
	if err := os.Link(bin, filepath.Join(mirrored, "terraform-provider-imagesync_v0.1.0")); err != nil {
		return "", err
	}
	cliConfig = filepath.Join(work, "terraformrc")
	err = os.WriteFile(cliConfig, fmt.Appendf(nil, `provider_installation {
  dev_overrides {
    "registry.terraform.io/imagesync/imagesync" = %q
  }
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/imagesync/*"]
  }
}
`, pluginDir, mirror), 0o600)
	return cliConfig, err
}

package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// testedCLI skips the test without TF_ACC and otherwise returns the
// terraform or tofu to run.
func testedCLI(t *testing.T) localenv.CLI {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set: these tests run terraform (or tofu) and, to install, the snapshot of make snapshot")
	}
	cli, err := localenv.TestedCLI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// writeCLIConfig writes a CLI configuration that installs the imagesync
// provider from the filesystem mirror at dir and from nowhere else: no
// dev_overrides, no network.
func writeCLIConfig(t *testing.T, dir string) string {
	t.Helper()
	quoted := make([]string, len(localenv.ProviderAddresses))
	for i, addr := range localenv.ProviderAddresses {
		quoted[i] = fmt.Sprintf("%q", addr)
	}
	path := filepath.Join(t.TempDir(), "terraformrc")
	config := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = [%s]
  }
}
`, dir, strings.Join(quoted, ", "))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// workspace is one working directory run by one CLI with one CLI configuration.
type workspace struct {
	t   *testing.T
	cli localenv.CLI
	dir string
	env []string
}

// newWorkspace makes an empty working directory; vars are set for the CLI
// on top of this process's environment, without any TF_ setting of its own.
func newWorkspace(t *testing.T, cli localenv.CLI, cliConfig string, vars map[string]string) *workspace {
	t.Helper()
	w := &workspace{t: t, cli: cli, dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") {
			w.env = append(w.env, kv)
		}
	}
	w.env = append(w.env, "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	for k, v := range vars {
		w.env = append(w.env, k+"="+v)
	}
	return w
}

func (w *workspace) write(name, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workspace) read(name string) string {
	w.t.Helper()
	return string(readFile(w.t, filepath.Join(w.dir, name)))
}

// run runs the CLI to the end and returns its combined output and exit code.
func (w *workspace) run(args ...string) (string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 5*time.Minute)
	defer cancel()
	out, code, err := w.cli.Run(ctx, w.dir, w.env, args...)
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", w.cli.Name(), strings.Join(args, " "), err, out)
	}
	return out, code
}

// mustRun runs the CLI and fails the test unless it exits with want.
func (w *workspace) mustRun(want int, args ...string) string {
	w.t.Helper()
	out, code := w.run(args...)
	if code != want {
		w.t.Fatalf("%s %s exited %d, want %d:\n%s", w.cli.Name(), strings.Join(args, " "), code, want, out)
	}
	return out
}

package install

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// Minimum versions the GitLab CI example needs, as the docs state them.
const (
	terraformForExamples = "1.7.0"  // import blocks with for_each, removed blocks
	openTofuForExamples  = "1.10.0" // removed blocks with a lifecycle block
)

// exampleNeeds are the examples that need a newer language than the provider
// itself, with the error an older Terraform gives without required_version.
var exampleNeeds = []struct {
	dir          string
	feature      string
	olderRefusal string
}{
	{"examples/gitlab-ci", "import blocks with for_each", `An argument named "for_each" is not expected here`},
	{"examples/gitlab-ci/retire", "removed blocks", `Blocks of type "removed" are not expected here`},
}

// requiredVersion is the example's required_version line.
var requiredVersion = regexp.MustCompile(`(?m)^\s*required_version\s*=.*\n`)

// TestExamples_versionRequirements validates the GitLab CI example with the
// CLI under test. A version new enough accepts it; an older Terraform stops
// at its required_version, and without that line at the block it does not
// know: the reason the docs give for the minimum.
func TestExamples_versionRequirements(t *testing.T) {
	cli := testedCLI(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cliConfig, err := localenv.BuildProvider(t.Context(), root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newEnough := cli.AtLeast(terraformForExamples)
	if cli.OpenTofu {
		// required_version >= 1.7.0 lets OpenTofu 1.7 to 1.9 through to the
		// removed block's lifecycle they do not know; the docs name 1.10.
		if newEnough = cli.AtLeast(openTofuForExamples); !newEnough {
			t.Skipf("OpenTofu %s: the examples need %s", cli.Version, openTofuForExamples)
		}
	}
	for _, ex := range exampleNeeds {
		t.Run(ex.feature, func(t *testing.T) {
			config := string(readFile(t, filepath.Join(root, ex.dir, "main.tf")))
			if !requiredVersion.MatchString(config) {
				t.Fatalf("%s/main.tf has no required_version", ex.dir)
			}
			w := newWorkspace(t, cli, cliConfig, nil)
			w.write("main.tf", config)
			if newEnough {
				w.mustRun(0, "init", "-backend=false", "-input=false", "-no-color")
				w.mustRun(0, "validate", "-no-color")
				return
			}
			out := w.mustRun(1, "init", "-backend=false", "-input=false", "-no-color")
			if !strings.Contains(out, "Unsupported Terraform Core version") || !strings.Contains(out, terraformForExamples) {
				t.Errorf("%s %s: init did not stop at required_version >= %s:\n%s", cli.Name(), cli.Version, terraformForExamples, out)
			}
			w.write("main.tf", requiredVersion.ReplaceAllString(config, ""))
			if out := w.mustRun(1, "init", "-backend=false", "-input=false", "-no-color"); !strings.Contains(out, ex.olderRefusal) {
				t.Errorf("%s %s without required_version: want %q in\n%s", cli.Name(), cli.Version, ex.olderRefusal, out)
			}
		})
	}
}

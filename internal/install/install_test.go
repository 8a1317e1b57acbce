package install

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// TestInstall_fromReleaseZip installs the snapshot's zip as a user installs
// a release: init from a filesystem mirror (both registries' addresses, no
// dev_overrides) against a lock file holding the zip's hash from SHA256SUMS,
// as a lock written by a registry install does; then plan, apply and an
// empty plan against the local environment. A lock with another hash is
// refused first, so the hash is really checked.
func TestInstall_fromReleaseZip(t *testing.T) {
	cli := testedCLI(t)
	rel := readRelease(t)
	zipHash := rel.zipHash(t)
	mirror := rel.mirror(t, localenv.ProviderAddresses)

	env := localenv.New(t, localenv.Options{Seed: true})
	agents := recordUserAgents(env.GitLabProxy)
	project := env.GitLab.AddProject("install/" + cli.Name()).Path
	w := newWorkspace(t, cli, writeCLIConfig(t, mirror), env.EnvVars())
	w.write("main.tf", fmt.Sprintf(`terraform {
  required_providers {
    imagesync = {
      source  = "imagesync/imagesync"
      version = %q
    }
  }
}

%s
resource "imagesync_gitlab_mirrored_image" "web" {
  source_repository = "web"
  gitlab_project    = %q
}
`, rel.version, env.ProviderHCL(), project))

	addr := cli.ProviderAddress()
	w.write(".terraform.lock.hcl", lockFile(addr, rel.version, "zh:"+strings.Repeat("0", 64)))
	if out := w.mustRun(1, "init", "-input=false", "-no-color"); !strings.Contains(out, "match any of the checksums") {
		t.Fatalf("init with a lock file holding another hash failed otherwise than on the checksum:\n%s", out)
	}
	w.write(".terraform.lock.hcl", lockFile(addr, rel.version, zipHash))
	w.mustRun(0, "init", "-input=false", "-no-color")
	expectLocked(t, w.read(".terraform.lock.hcl"), addr, rel.version, zipHash)
	installed := filepath.Join(w.dir, ".terraform", "providers", filepath.FromSlash(addr), rel.version,
		runtime.GOOS+"_"+runtime.GOARCH, "terraform-provider-imagesync_v"+rel.version)
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("init did not unpack the release's binary: %v", err)
	}

	w.mustRun(2, "plan", "-input=false", "-no-color", "-detailed-exitcode")
	w.mustRun(0, "apply", "-input=false", "-no-color", "-auto-approve")
	w.mustRun(0, "plan", "-input=false", "-no-color", "-detailed-exitcode")
	expectMirrored(t, env, strings.ToLower(project)+"/web", "web")
	if ua := "terraform-provider-imagesync/" + rel.version; !slices.Contains(agents(), ua) {
		t.Errorf("the GitLab registry saw the user agents %q, none of them %q: the release does not report its version", agents(), ua)
	}
}

// lockFile is a dependency lock file with one provider pinned to version.
func lockFile(addr, version string, hashes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider %q {\n  version     = %q\n  constraints = %q\n  hashes = [\n", addr, version, version)
	for _, h := range hashes {
		fmt.Fprintf(&b, "    %q,\n", h)
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// expectLocked checks that init kept the provider at version with the zip's
// hash, and added the h1: hash of what it unpacked.
func expectLocked(t *testing.T, lock, addr, version, zipHash string) {
	t.Helper()
	for _, want := range []string{fmt.Sprintf("provider %q", addr), fmt.Sprintf("version     = %q", version), fmt.Sprintf("%q", zipHash), `"h1:`} {
		if !strings.Contains(lock, want) {
			t.Errorf("the lock file after init lacks %s:\n%s", want, lock)
		}
	}
}

// expectMirrored checks with skopeo, a client independent of the provider,
// that GitLab holds every seeded tag of repo at its ECR digest.
func expectMirrored(t *testing.T, env *localenv.Env, image, repo string) {
	t.Helper()
	seeded := 0
	for _, img := range env.Seeded {
		if img.Repository != repo {
			continue
		}
		seeded++
		got, found, err := env.GitLabDigest(t.Context(), image, img.Tag)
		if err != nil {
			t.Fatal(err)
		}
		if !found || got != img.Digest {
			t.Errorf("GitLab %s:%s = %q (found %v), want ECR's %s", image, img.Tag, got, found, img.Digest)
		}
	}
	if seeded == 0 {
		t.Fatalf("nothing seeded in %q", repo)
	}
}

// recordUserAgents makes proxy note every User-Agent it forwards; the
// returned function lists them.
func recordUserAgents(proxy *localenv.Proxy) func() []string {
	var mu sync.Mutex
	seen := map[string]bool{}
	proxy.SetFault(func(r *http.Request) (int, string, bool) {
		mu.Lock()
		seen[r.UserAgent()] = true
		mu.Unlock()
		return 0, "", false
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for ua := range seen {
			out = append(out, ua)
		}
		slices.Sort(out)
		return out
	}
}

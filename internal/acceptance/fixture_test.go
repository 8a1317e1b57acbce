package acceptance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regclient/regclient/types/manifest"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// faultFixture is a test's own ECR repository, pushed with several tags, its own
// GitLab project, and a workspace mirroring the one into the other.
type faultFixture struct {
	t         *testing.T
	repo      string            // ECR repository
	project   string            // GitLab project path
	image     string            // GitLab image path: project/repo
	want      map[string]string // tag -> digest in ECR
	referrers []string          // referrer digests in ECR
	w         *workspace
}

// taggedSpec is one image to push.
type taggedSpec struct {
	tag  string
	spec localenv.ImageSpec
}

// standardImages is a repository worth interrupting: Docker and OCI, single
// and multi-platform, layers of layer bytes (some half that), a signed image,
// and a second tag on a digest.
func standardImages(layer int64) []taggedSpec {
	return []taggedSpec{
		{"v1", localenv.ImageSpec{OwnLayerSize: layer}},
		{"v2", localenv.ImageSpec{OCI: true, Platforms: 2, OwnLayerSize: layer}},
		{"v3", localenv.ImageSpec{OCI: true, OwnLayerSize: layer / 2}},
		{"v4", localenv.ImageSpec{Platforms: 2, OwnLayerSize: layer / 2}},
		{"signed", localenv.ImageSpec{OCI: true, Referrer: true}},
	}
}

// newFaultFixture pushes images (and "latest" as a second tag of the first one)
// to a fresh ECR repository and writes a workspace that mirrors it into a
// fresh GitLab project.
func newFaultFixture(t *testing.T, images []taggedSpec) *faultFixture {
	t.Helper()
	project, name := newProject(t)
	f := &faultFixture{t: t, repo: "faults/" + name, project: project, want: map[string]string{}}
	f.image = f.project + "/" + f.repo
	ctx := t.Context()
	for _, img := range images {
		pushed, err := env.PushECRImage(ctx, f.repo, img.tag, img.spec)
		if err != nil {
			t.Fatal(err)
		}
		f.want[img.tag] = pushed.Digest
		if pushed.ReferrerDigest != "" {
			f.referrers = append(f.referrers, pushed.ReferrerDigest)
		}
	}
	latest, err := env.TagECRImage(ctx, f.repo, images[0].tag, "latest")
	if err != nil {
		t.Fatal(err)
	}
	f.want["latest"] = latest.Digest
	f.w = newWorkspace(t, fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "this" {
  source_repository = %q
  gitlab_project    = %q
}
`, f.repo, f.project))
	return f
}

// layersOver lists the digests of the fixture's layers of at least size
// bytes, read from ECR with the environment's own client.
func (f *faultFixture) layersOver(size int64) []string {
	f.t.Helper()
	rc := env.RegistryClient()
	var out []string
	var walk func(tagOrDigest string)
	walk = func(tagOrDigest string) {
		r, err := env.ECRRef(f.repo, "latest")
		if err != nil {
			f.t.Fatal(err)
		}
		if strings.HasPrefix(tagOrDigest, "sha256:") {
			r = r.SetDigest(tagOrDigest)
		} else {
			r = r.SetTag(tagOrDigest)
		}
		m, err := rc.ManifestGet(f.t.Context(), r)
		if err != nil {
			f.t.Fatal(err)
		}
		if idx, ok := m.(manifest.Indexer); ok {
			list, _ := idx.GetManifestList()
			for _, d := range list {
				walk(d.Digest.String())
			}
			return
		}
		if img, ok := m.(manifest.Imager); ok {
			layers, _ := img.GetLayers()
			for _, l := range layers {
				if l.Size >= size && !slices.Contains(out, l.Digest.String()) {
					out = append(out, l.Digest.String())
				}
			}
		}
	}
	for tag := range f.want {
		walk(tag)
	}
	return out
}

// applyJSON runs terraform apply with machine-readable output and returns
// its exit code and diagnostics; the output must hold no secret.
func (f *faultFixture) applyJSON() (int, []diagnostic) {
	f.t.Helper()
	out, code := f.w.run("apply", "-auto-approve", "-input=false", "-json")
	expectNoSecrets(f.t, "terraform apply output", out)
	return code, diagnosticsOf(out)
}

// diagnostic is one diagnostic of terraform's -json output.
type diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Address  string `json:"address"`
}

func (d diagnostic) String() string { return d.Severity + ": " + d.Summary + ": " + d.Detail }

func diagnosticsOf(out string) []diagnostic {
	var diags []diagnostic
	for _, line := range strings.Split(out, "\n") {
		var msg struct {
			Type       string     `json:"type"`
			Diagnostic diagnostic `json:"diagnostic"`
		}
		if json.Unmarshal([]byte(line), &msg) == nil && msg.Type == "diagnostic" {
			diags = append(diags, msg.Diagnostic)
		}
	}
	return diags
}

func errorsOf(diags []diagnostic) []diagnostic {
	var out []diagnostic
	for _, d := range diags {
		if d.Severity == "error" {
			out = append(out, d)
		}
	}
	return out
}

// expectApplied fails the test unless an apply exited 0 without errors.
func (f *faultFixture) expectApplied(what string, code int, diags []diagnostic) {
	f.t.Helper()
	if code != 0 || len(errorsOf(diags)) > 0 {
		f.t.Fatalf("%s exited %d, want 0; errors: %v", what, code, errorsOf(diags))
	}
}

// expectConverged checks every tag's and referrer's digest in GitLab with
// skopeo, a client independent of the provider, and that a plan is empty.
func (f *faultFixture) expectConverged() {
	f.t.Helper()
	f.expectImageHolds(f.image)
	out, code := f.w.run("plan", "-detailed-exitcode", "-input=false", "-no-color")
	expectNoSecrets(f.t, "terraform plan output", out)
	if code != 0 {
		f.t.Fatalf("plan after convergence exited %d, want 0 (no changes):\n%s", code, out)
	}
}

// expectImageHolds checks with skopeo that the GitLab image holds every
// tag of the fixture at ECR's digest, and every referrer.
func (f *faultFixture) expectImageHolds(image string) {
	f.t.Helper()
	for _, tag := range slices.Sorted(maps.Keys(f.want)) {
		if got, found := gitlabDigest(f.t, image, tag); got != f.want[tag] {
			f.t.Errorf("GitLab %s:%s = %q (found %v), want ECR's %s", image, tag, got, found, f.want[tag])
		}
	}
	for _, r := range f.referrers {
		if got, found := gitlabDigest(f.t, image, r); !found || got != r {
			f.t.Errorf("referrer %s not in GitLab %s (%q)", r, image, got)
		}
	}
}

// gitlabDigest reads a manifest from the GitLab registry with skopeo and
// returns the sha256 of its bytes; found is false when the registry does
// not have it.
func gitlabDigest(t *testing.T, image, tagOrDigest string) (digest string, found bool) {
	t.Helper()
	digest, found, err := env.GitLabDigest(t.Context(), image, tagOrDigest)
	if err != nil {
		t.Fatal(err)
	}
	return digest, found
}

// expectStateTruthful checks that every tag the state records is in GitLab
// with that digest: an interrupted apply may record less, never more.
func (f *faultFixture) expectStateTruthful() (recorded int) {
	f.t.Helper()
	images := f.w.stateImages()
	for tag, dig := range images {
		if got, found := gitlabDigest(f.t, f.image, tag); got != dig || dig != f.want[tag] {
			f.t.Errorf("state records %s = %s, GitLab holds %q (found %v), ECR %s", tag, dig, got, found, f.want[tag])
		}
	}
	return len(images)
}

// background is terraform running in its own process group, with its
// combined output kept.
type background struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// start runs terraform with args in the background.
func (w *workspace) start(args ...string) *background {
	w.t.Helper()
	b := &background{cmd: w.command(w.t.Context(), args...), out: &syncBuffer{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		b.code = b.cmd.ProcessState.ExitCode()
		close(b.done)
	}()
	w.t.Cleanup(func() {
		if !b.exited() {
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	})
	return b
}

func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for terraform to exit; ok is false if it did not.
func (b *background) wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-b.done:
		return b.code, true
	case <-time.After(timeout):
		return 0, false
	}
}

// waitFor polls cond until it holds, terraform exits, or timeout passes.
func (b *background) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !b.exited() {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(child); ok && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// procStat reads a process's parent and state ('Z' for a zombie).
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	fields := strings.Fields(string(rest))
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return ppid, fields[0][0], err == nil
}

// alive is a process that exists and is not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z'
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// hostOf is an endpoint URL's host:port.
func hostOf(endpoint string) string {
	return strings.TrimPrefix(strings.TrimPrefix(endpoint, "https://"), "http://")
}

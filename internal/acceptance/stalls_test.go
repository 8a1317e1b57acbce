package acceptance

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// stallLimit is how long an apply over a stalled connection may run: with
// the default idle_timeout (60 s) it must end by itself well before.
const stallLimit = 3 * time.Minute

// TestStallTable holds the connections that stop as NAT gateways, load
// balancers and hung servers leave them: open, silent. Each row mirrors a
// fresh repository while one kind of connection stalls, with the provider's
// default settings; every apply ends by itself within stallLimit, and every
// row ends with every digest checked by skopeo and an empty plan. A row's
// fault picks only its own repository's requests, so the rows, which each
// wait out at least one idle timeout, run side by side.
func TestStallTable(t *testing.T) {
	skipWithoutEnv(t)
	rows := []struct {
		name string
		run  func(t *testing.T) outcome
	}{
		{"S3_download_stalled_mid-body", rowS3DownloadStalled},
		{"GitLab_stops_reading_an_upload", rowUploadNotRead},
		{"GitLab_registry_never_answers_the_headers", rowRegistryHung},
		{"manifest_HEAD_stalls", rowManifestHeadStalls},
	}
	var (
		mu      sync.Mutex
		summary = []string{"| row | first apply | second apply | skopeo + empty plan | seconds |", "| --- | --- | --- | --- | --- |"}
	)
	t.Run("rows", func(t *testing.T) {
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				var got outcome
				defer func() {
					verdict := "ok"
					if t.Failed() {
						verdict = "FAILED"
					}
					mu.Lock()
					summary = append(summary, fmt.Sprintf("| %s | %s | %s | %s | %.1f |", row.name, got.first, got.second, verdict, time.Since(start).Seconds()))
					mu.Unlock()
				}()
				got = row.run(t)
			})
		}
	})
	t.Log("stall table:\n" + strings.Join(summary, "\n"))
}

// applyBounded runs an apply with -json and fails the test unless it ends by
// itself within stallLimit; it returns the exit code, the diagnostics and
// how long it took.
func (f *faultFixture) applyBounded() (int, []diagnostic, time.Duration) {
	f.t.Helper()
	start := time.Now()
	b := f.w.start("apply", "-auto-approve", "-input=false", "-json")
	code, exited := b.wait(stallLimit)
	if !exited {
		// Waited out a while longer, so the failure says how long it held.
		code, exited = b.wait(stallLimit)
		f.t.Errorf("the apply ran for more than %s (ended by itself after %s: %v): a stalled connection holds it", stallLimit, time.Since(start).Round(time.Second), exited)
	}
	took := time.Since(start)
	out := b.out.String()
	expectNoSecrets(f.t, "terraform apply output", out)
	if !exited {
		f.t.FailNow()
	}
	return code, diagnosticsOf(out), took
}

// addGitLabNetFault adds a connection fault on GitLab's registry for this
// row, beside the other rows' faults.
func addGitLabNetFault(t *testing.T, f func(r *http.Request) localenv.NetFault) (lift func()) {
	remove := env.GitLabProxy.AddNetFault(f)
	t.Cleanup(remove)
	return remove
}

// rowS3DownloadStalled: S3 sends half of a large layer, then nothing, the
// connection held open. The read gives up after idle_timeout and the layer
// is fetched again from where it stopped (a Range request).
func rowS3DownloadStalled(t *testing.T) outcome {
	f := newFaultFixture(t, standardImages(2<<20))
	large := f.layersOver(1 << 20)
	var (
		victim  atomic.Pointer[string]
		resumed atomic.Int32
	)
	env.S3.SetFault(func(r *http.Request) localenv.S3Fault {
		repo, dig, ok := env.S3.LayerOf(r)
		switch {
		case !ok || repo != f.repo:
		case victim.Load() == nil && slices.Contains(large, dig) && victim.CompareAndSwap(nil, &dig):
			return localenv.S3StallBody
		case victim.Load() != nil && *victim.Load() == dig && r.Header.Get("Range") != "":
			resumed.Add(1)
		}
		return localenv.S3Serve
	})
	t.Cleanup(func() { env.S3.SetFault(nil) })
	code, diags, took := f.applyBounded()
	f.expectApplied("apply with a stalled S3 download", code, diags)
	if victim.Load() == nil {
		t.Fatal("no large layer was downloaded from S3")
	}
	if resumed.Load() == 0 {
		t.Error("the stalled layer was not fetched again with a Range request")
	}
	f.expectConverged()
	return outcome{first: fmt.Sprintf("exit 0 in %.0fs, the layer resumed with Range", took.Seconds()), second: "not needed"}
}

// rowUploadNotRead: GitLab's registry reads half of a layer upload, then
// stops reading; the provider's writes block. The upload is given up after
// idle_timeout and sent again.
func rowUploadNotRead(t *testing.T) outcome {
	f := newFaultFixture(t, standardImages(4<<20))
	return stallGitLabOnce(t, f, localenv.NetStallUpload, "an upload the registry stopped reading", "large upload", func(r *http.Request) bool {
		large := r.ContentLength < 0 || r.ContentLength >= 1<<20
		return blobUploads.match(f.image, r) && r.Body != nil && r.Body != http.NoBody && large
	})
}

// stallGitLabOnce gives the first GitLab registry request that matches the
// fault, then holds the apply to ending by itself, complete and converged.
func stallGitLabOnce(t *testing.T, f *faultFixture, fault localenv.NetFault, what, request string, match func(*http.Request) bool) outcome {
	var stalled atomic.Bool
	addGitLabNetFault(t, func(r *http.Request) localenv.NetFault {
		if match(r) && stalled.CompareAndSwap(false, true) {
			return fault
		}
		return localenv.NetServe
	})
	code, diags, took := f.applyBounded()
	f.expectApplied("apply with "+what, code, diags)
	if !stalled.Load() {
		t.Fatalf("no %s reached GitLab's registry", request)
	}
	f.expectConverged()
	return outcome{first: fmt.Sprintf("exit 0 in %.0fs", took.Seconds()), second: "not needed"}
}

// rowRegistryHung: GitLab's registry accepts every connection for the
// row's two images (two resources mirroring one ECR repository, applied in
// parallel) and never answers, until the fault is lifted. The apply ends by
// itself, every error naming GitLab, the registry's host and what stalled;
// once the registry answers again, the next apply converges.
func rowRegistryHung(t *testing.T) outcome {
	f := newFaultFixture(t, standardImages(64<<10))
	second := f.repo + "-again"
	f.w.write(f.w.hcl + fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "again" {
  source_repository = %q
  gitlab_project    = %q
  target_image      = %q
}
`, f.repo, f.project, second))
	var hung atomic.Int32
	lift := addGitLabNetFault(t, func(r *http.Request) localenv.NetFault {
		if strings.HasPrefix(r.URL.Path, "/v2/"+f.project+"/") {
			hung.Add(1)
			return localenv.NetStallHeaders
		}
		return localenv.NetServe
	})
	code, diags, took := f.applyBounded()
	lift()
	errs := errorsOf(diags)
	if code == 0 || len(errs) == 0 || hung.Load() == 0 {
		t.Fatalf("apply against a hung registry exited %d with %d errors after %d hung requests, want a failure", code, len(errs), hung.Load())
	}
	expectHungErrors(t, errs, f.image+":", f.project+"/"+second+":")
	f.reapplyConverges("apply once the registry answers again")
	f.expectImageHolds(f.project + "/" + second)
	return outcome{
		first:  fmt.Sprintf("exit %d in %.0fs, %d error(s) over 2 resources naming GitLab, the host and the stall", code, took.Seconds(), len(errs)),
		second: "exit 0",
	}
}

// expectHungErrors checks that every error names GitLab, its registry host
// and the stall, and that each target has errors of its own.
func expectHungErrors(t *testing.T, errs []diagnostic, targets ...string) {
	t.Helper()
	for _, d := range errs {
		for _, want := range []string{"GitLab", env.GitLabRegistryHost, "no progress", "waiting for the response headers"} {
			if !strings.Contains(d.Detail, want) {
				t.Errorf("diagnostic %q lacks %q:\n%s", d.Summary, want, d.Detail)
			}
		}
	}
	for _, target := range targets {
		if !slices.ContainsFunc(errs, func(d diagnostic) bool { return strings.Contains(d.Detail, target) }) {
			t.Errorf("no error names %s", target)
		}
	}
}

// rowManifestHeadStalls: the first manifest HEAD of the image (does GitLab
// hold this tag already?) never gets its headers. It is given up after
// idle_timeout and asked again.
func rowManifestHeadStalls(t *testing.T) outcome {
	f := newFaultFixture(t, standardImages(64<<10))
	return stallGitLabOnce(t, f, localenv.NetStallHeaders, "a stalled manifest HEAD", "manifest HEAD", func(r *http.Request) bool {
		return r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/"+f.image+"/manifests/")
	})
}

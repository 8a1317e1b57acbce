package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digestS = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
)

// evidenceShow is a `terraform show -json` plan with no changes: web and
// signed/app mirrored, web:latest pulled at webPull, signed/app's untagged
// image at signedPull, under the cut-over cutover.
func evidenceShow(t *testing.T, cutover, webPull, signedPull string) string {
	t.Helper()
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	listed := []map[string]any{
		{"name": "signed/app", "last_pulled_at": nullable(signedPull), "images": map[string]string{"v1": digestB},
			"image_details": map[string]any{"v1": map[string]any{"digest": digestB, "last_pulled_at": nil}}},
		{"name": "web", "last_pulled_at": nullable(webPull), "images": map[string]string{"latest": digestA, "v1": digestA},
			"image_details": map[string]any{"latest": map[string]any{"digest": digestA, "last_pulled_at": nullable(webPull)},
				"v1": map[string]any{"digest": digestA, "last_pulled_at": nullable(webPull)}}},
	}
	mirror := func(repo string, images map[string]string, refs map[string][]string) map[string]any {
		return map[string]any{"source_repository": repo, "target_reference": "registry.example.com/g/p/" + repo,
			"images": images, "referrers": refs}
	}
	web := mirror("web", map[string]string{"latest": digestA, "v1": digestA}, map[string][]string{})
	signed := mirror("signed/app", map[string]string{"v1": digestB}, map[string][]string{digestB: {digestS}})
	vars := map[string]any{"gitlab_project": map[string]any{"value": "g/p"}}
	if cutover != "" {
		vars["cutover_at"] = map[string]any{"value": cutover}
	}
	change := func(addr string, v map[string]any) map[string]any {
		return map[string]any{"address": addr, "mode": "managed", "type": mirroredImageType,
			"change": map[string]any{"actions": []string{"no-op"}, "before": v, "after": v, "after_unknown": map[string]any{}}}
	}
	show := map[string]any{
		"format_version": "1.2", "timestamp": "2026-03-02T10:00:00Z", "variables": vars,
		"resource_changes": []any{change(`imagesync_gitlab_mirrored_image.mirror["web"]`, web),
			change(`imagesync_gitlab_mirrored_image.mirror["signed/app"]`, signed)},
		"prior_state": map[string]any{"values": map[string]any{"root_module": map[string]any{"resources": []any{
			map[string]any{"address": "data.imagesync_ecr_repositories.shard", "mode": "data", "type": dataSourceType,
				"values": map[string]any{"repositories": listed}},
			map[string]any{"address": `imagesync_gitlab_mirrored_image.mirror["web"]`, "mode": "managed", "type": mirroredImageType, "values": web},
			map[string]any{"address": `imagesync_gitlab_mirrored_image.mirror["signed/app"]`, "mode": "managed", "type": mirroredImageType, "values": signed},
		}}}},
	}
	b, err := json.Marshal(show)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "plan.show.json")
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func runEvidence(t *testing.T, show string) (summary string, report verificationReport) {
	t.Helper()
	dir := t.TempDir()
	md, ver := filepath.Join(dir, "summary.md"), filepath.Join(dir, "verification.json")
	var out strings.Builder
	if err := run(options{show: show, markdown: md, verification: ver, drift: true}, &out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	raw, err := os.ReadFile(ver)
	if err != nil || json.Unmarshal(raw, &report) != nil {
		t.Fatalf("verification report: %v\n%s", err, raw)
	}
	return string(b), report
}

func TestStillPulledFromECR(t *testing.T) {
	summary, report := runEvidence(t, evidenceShow(t, "2026-03-01T00:00:00Z", "2026-03-01T08:30:00Z", "2026-03-01T09:00:00Z"))
	for _, want := range []string{
		"#### Still pulled from ECR",
		"| `signed/app` | (an image no listed tag names) | 2026-03-01T09:00:00Z |",
		"| `web` | `latest` | 2026-03-01T08:30:00Z |",
		"| `web` | `v1` | 2026-03-01T08:30:00Z |",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if report.Quiet == nil || *report.Quiet || report.Verdict != "Still pulled from ECR: 2 repositories were pulled after "+
		"2026-03-01T00:00:00Z; every managed tag in GitLab has the digest it has in ECR." {
		t.Errorf("report: quiet %v, verdict %q", report.Quiet, report.Verdict)
	}
	if report.VerifiedAt != "2026-03-02T10:00:00Z" || report.CutoverAt != "2026-03-01T00:00:00Z" || !report.InSync {
		t.Errorf("report header: %+v", report)
	}
	if len(report.Repositories) != 2 {
		t.Fatalf("report repositories: %+v", report.Repositories)
	}
	signed := report.Repositories[0]
	if signed.Repository != "signed/app" || !signed.PulledAfterCutover || len(signed.Tags) != 1 ||
		!reflect.DeepEqual(signed.Tags[0], verifiedTag{Tag: "v1", ECRDigest: digestB, GitLabDigest: digestB, Referrers: []string{digestS}}) ||
		strings.Join(signed.Tags[0].Referrers, ",") != digestS {
		t.Errorf("report of signed/app: %+v", signed)
	}
}

func TestEveryRepositoryQuiet(t *testing.T) {
	// Pulls before the cut-over do not count.
	summary, report := runEvidence(t, evidenceShow(t, "2026-03-01T00:00:00Z", "2026-02-27T08:30:00Z", ""))
	if strings.Contains(summary, "Still pulled") {
		t.Errorf("a quiet plan's summary:\n%s", summary)
	}
	if report.Quiet == nil || !*report.Quiet || !strings.HasPrefix(report.Verdict, "Every repository is quiet: ECR recorded no pull") {
		t.Errorf("report: quiet %v, verdict %q", report.Quiet, report.Verdict)
	}
	if r := report.Repositories[1]; r.Repository != "web" || r.LastECRPull != "2026-02-27T08:30:00Z" || r.PulledAfterCutover ||
		r.Tags[0].Tag != "latest" || r.Tags[0].ECRDigest != digestA || r.Tags[0].GitLabDigest != digestA {
		t.Errorf("report of web: %+v", r)
	}
}

func TestPullsNotJudgedWithoutCutover(t *testing.T) {
	summary, report := runEvidence(t, evidenceShow(t, "", "2026-03-01T08:30:00Z", ""))
	if strings.Contains(summary, "Still pulled") || report.Quiet != nil || !strings.HasPrefix(report.Verdict, "Pulls not judged: no cut-over time") {
		t.Errorf("without a cut-over: quiet %v, verdict %q\n%s", report.Quiet, report.Verdict, summary)
	}
}

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteEgress(t *testing.T) {
	size := func(n int64) *int64 { return &n }
	changes := []repoChange{
		{Repository: "team/api", Tags: []tagChange{{Tag: "v1", Kind: tagAdded}}, CopyBytes: size(1_500_000_000)},
		{Repository: "web", Tags: []tagChange{{Tag: "latest", Kind: tagChanged}, {Tag: "v0", Kind: tagUnmanaged}}, CopyBytes: size(2_345)},
		{Repository: "old", Tags: []tagChange{{Tag: "v0", Kind: tagUnmanaged}}}, // copies nothing
		{Repository: "later", TagsLater: true},
	}
	var b strings.Builder
	writeEgress(&b, changes, 0.09)
	for _, want := range []string{
		"The apply reads at most **1.5 GB** from ECR plus what 1 repository holds whose size the plan could not read",
		"At 0.09 per GB of ECR data transfer, that is at most **0.14**.",
		"| `team/api` | 1500000000 (1.5 GB) |",
		"| `web` | 2345 (2.3 kB) |",
		"| `later` | unknown |",
		"| total | 1500002345 (1.5 GB) |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("egress lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "`old`") {
		t.Errorf("a repository that copies nothing is listed:\n%s", b.String())
	}
	var cheap strings.Builder
	writeEgress(&cheap, changes[1:2], 0.09)
	if !strings.Contains(cheap.String(), "that is at most **less than 0.01**.") {
		t.Errorf("a cost below a cent:\n%s", cheap.String())
	}
	var none strings.Builder
	writeEgress(&none, changes[2:3], 0)
	if none.Len() != 0 {
		t.Errorf("a plan that copies nothing: %q", none.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 52_428_800: "52.4 MB", 3_000_000_000_000: "3.0 TB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The egress fixture is real Terraform 1.11 output (the GitLab registry's
// port rewritten) of the first plan of examples/demo on the local
// environment. Its copy_bytes agree with the seeded images as a client
// reading ECR's manifests adds them up (web: two images sharing 1 MiB of base
// layers, counted once; signed/app: the image and its signature), and
// testdata/egress.summary.md, which the GitLab CI guide shows, is the
// summary's section for it at 0.09 per GB.
func TestEgressOnFixture(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "summary.md")
	opts := options{show: "testdata/egress.show.json", log: "testdata/egress.plan.log.jsonl", report: filepath.Join(dir, "plan.json"),
		markdown: md, pricePerGB: 0.09}
	if err := run(opts, io.Discard); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/egress.summary.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), string(want)) {
		t.Errorf("the summary's bytes read from ECR differ from testdata/egress.summary.md:\n%s", got)
	}
	for _, row := range []string{"| `web` | 1182666 (1.2 MB) |", "| `signed/app` | 1116792 (1.1 MB) |", "| total | 4800276 (4.8 MB) |"} {
		if !strings.Contains(string(got), row) {
			t.Errorf("summary lacks %q:\n%s", row, got)
		}
	}
}

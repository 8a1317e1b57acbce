package provider

import (
	"strings"
	"testing"
)

func TestUnmirrorableTag(t *testing.T) {
	own := "sha256:" + strings.Repeat("ab", 32)
	other := "sha256:" + strings.Repeat("cd", 32)
	tests := []struct {
		tag, digest string
		want        string // part of the reason; "" when GitLab can hold it
	}{
		{"v1.2.3", own, ""},
		{strings.Repeat("a", 128), own, ""},
		{strings.Repeat("a", 129), own, "129 characters long"},
		{strings.Repeat("a", 300), own, "ECR allows 300"},
		{".hidden", own, "not a valid OCI tag"},
		{"sha256-" + strings.Repeat("ab", 32), own, ""},
		{"sha256-" + strings.Repeat("ab", 32), other, "GitLab reads as the digest"},
		{"sha256-" + strings.Repeat("ab", 32) + ".sig", other, ""}, // cosign's tag scheme is an ordinary tag
	}
	for _, tt := range tests {
		got := unmirrorableTag(tt.tag, tt.digest)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("unmirrorableTag(%.20q…, …) = %q, want %q", tt.tag, got, tt.want)
		}
	}
}

func TestMirrorableTagsSplits(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	keep, leftOut := mirrorableTags(map[string]string{"v1": dig, strings.Repeat("x", 200): dig, "latest": dig})
	if len(keep) != 2 || keep["v1"] != dig || keep["latest"] != dig {
		t.Errorf("kept %v", keep)
	}
	if len(leftOut) != 1 || !strings.Contains(leftOut[0], "200 characters") {
		t.Errorf("left out %v", leftOut)
	}
}

func TestRecordCopiedForgetsUnmanagedTags(t *testing.T) {
	prior := copiedDigests{"v1": "sha256:1", "gone": "sha256:2", "v2": "sha256:3"}
	got := recordCopied(prior, map[string]string{"v2": "sha256:4", "v3": "sha256:5"}, map[string]string{"v1": "sha256:1", "v2": "sha256:4", "v3": "sha256:5"})
	want := copiedDigests{"v1": "sha256:1", "v2": "sha256:4", "v3": "sha256:5"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

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

func TestParseImportID(t *testing.T) {
	tests := []struct {
		id, source, registryID, project, image, problem string
	}{
		{id: "team/api:platform/images", source: "team/api", project: "platform/images", image: "team/api"},
		{id: "team/api:platform/images:api", source: "team/api", project: "platform/images", image: "api"},
		{id: "team/api:42:api", source: "team/api", project: "42", image: "api"},
		{id: "210987654321:base/runtime:platform/images:runtime", registryID: "210987654321", source: "base/runtime", project: "platform/images", image: "runtime"},
		{id: "not-a-valid-id", problem: "has 1 parts"},
		{id: "a:b:c:d:e", problem: "has 5 parts"},
		{id: ":platform/images:api", problem: "empty part"},
		{id: "Team/API:platform/images", problem: "not an ECR repository name"},
		{id: "web:https://gitlab.com/g/p", problem: `GitLab project "https"`},
		{id: "web:group/proj:A/B/C", problem: "names the target image"},
	}
	for _, tt := range tests {
		m, problem := parseImportID(tt.id)
		if tt.problem != "" {
			if !strings.Contains(problem, tt.problem) {
				t.Errorf("%q: problem %q, want it to say %q", tt.id, problem, tt.problem)
			}
			continue
		}
		if problem != "" || m.SourceRepository.ValueString() != tt.source || m.SourceRegistryID.ValueString() != tt.registryID ||
			m.GitLabProject.ValueString() != tt.project || m.TargetImage.ValueString() != tt.image {
			t.Errorf("%q: %+v %q", tt.id, m, problem)
		}
		if m.ID.ValueString() != mirroredImageID(m) {
			t.Errorf("%q: ID %q is not the canonical %q", tt.id, m.ID.ValueString(), mirroredImageID(m))
		}
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

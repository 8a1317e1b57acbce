package provider

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
)

func TestKeepImages(t *testing.T) {
	day := func(n int) time.Time { return time.Date(2026, 1, n, 0, 0, 0, 0, time.UTC) }
	details := []ecr.ImageDetail{
		{Digest: "sha256:old", PushedAt: day(1)},
		{Digest: "sha256:mid", PushedAt: day(5)},
		{Digest: "sha256:new", PushedAt: day(9)},
		{Digest: "sha256:twin", PushedAt: day(9)},
	}
	images := map[string]string{
		"v1": "sha256:old", "v2": "sha256:mid", "v3": "sha256:new", "latest": "sha256:new", "stable": "sha256:new",
		"twin": "sha256:twin", "racing": "sha256:undescribed",
	}
	tests := []struct {
		name string
		sel  imageSelection
		want []string
	}{
		{"no filter", imageSelection{includeDetails: true}, []string{"latest", "racing", "stable", "twin", "v1", "v2", "v3"}},
		{"pushed after", imageSelection{pushedAfter: day(4)}, []string{"latest", "stable", "twin", "v2", "v3"}},
		{"pushed after is strict", imageSelection{pushedAfter: day(5)}, []string{"latest", "stable", "twin", "v3"}},
		// new and twin share a push time; the digest orders them.
		{"most recent", imageSelection{mostRecent: 1}, []string{"latest", "stable", "v3"}},
		{"most recent 3", imageSelection{mostRecent: 3}, []string{"latest", "stable", "twin", "v2", "v3"}},
		{"both", imageSelection{pushedAfter: day(2), mostRecent: 5}, []string{"latest", "stable", "twin", "v2", "v3"}},
		{"more than there are", imageSelection{mostRecent: 50}, []string{"latest", "racing", "stable", "twin", "v1", "v2", "v3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tagsOf(keepImages(images, details, tt.sel))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

func tagsOf(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func TestRepositoryDetails(t *testing.T) {
	pushed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	pulled := pushed.Add(time.Hour)
	details := []ecr.ImageDetail{
		{Digest: "sha256:a", SizeBytes: 100, PushedAt: pushed, LastPulledAt: pulled},
		{Digest: "sha256:b", SizeBytes: 50, PushedAt: pushed},
		{Digest: "sha256:untagged", SizeBytes: 7, PushedAt: pushed, LastPulledAt: pulled.Add(time.Hour)},
	}
	got, diags := repositoryDetails(map[string]string{"v1": "sha256:a", "v2": "sha256:b"}, details, true)
	if diags.HasError() {
		t.Fatal(diags)
	}
	want := map[string]attr.Value{
		"size_bytes":     types.Int64Value(157),
		"last_pulled_at": types.StringValue("2026-01-02T04:04:05Z"),
		"image_details": types.MapValueMust(types.ObjectType{AttrTypes: imageDetailAttrTypes}, map[string]attr.Value{
			"v1": types.ObjectValueMust(imageDetailAttrTypes, map[string]attr.Value{"digest": types.StringValue("sha256:a"),
				"size_bytes": types.Int64Value(100), "pushed_at": types.StringValue("2026-01-02T02:04:05Z"),
				"last_pulled_at": types.StringValue("2026-01-02T03:04:05Z")}),
			"v2": types.ObjectValueMust(imageDetailAttrTypes, map[string]attr.Value{"digest": types.StringValue("sha256:b"),
				"size_bytes": types.Int64Value(50), "pushed_at": types.StringValue("2026-01-02T02:04:05Z"),
				"last_pulled_at": types.StringNull()}),
		}),
	}
	for k, w := range want {
		if !got[k].Equal(w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	off, _ := repositoryDetails(map[string]string{"v1": "sha256:a"}, details, false)
	for k, v := range off {
		if !v.IsNull() {
			t.Errorf("without include_details %s = %v, want null", k, v)
		}
	}
}

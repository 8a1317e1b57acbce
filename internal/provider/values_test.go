package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
)

// The values built element by element equal what the framework's own
// reflection makes of the same maps, and nil keeps its meaning.
func TestMapValues(t *testing.T) {
	ctx := t.Context()
	for _, m := range []map[string]string{nil, {}, {"v1": "sha256:aa", "latest": "sha256:aa", "v2": "sha256:bb"}} {
		want, diags := types.MapValueFrom(ctx, types.StringType, m)
		if diags.HasError() {
			t.Fatal(diags)
		}
		if got := mapValue(m); !got.Equal(want) {
			t.Errorf("mapValue(%v) = %v, want %v", m, got, want)
		}
	}
	for _, m := range []map[string][]string{{}, {"sha256:aa": {"sha256:s1", "sha256:s2"}, "sha256:bb": {}}} {
		want, diags := types.MapValueFrom(ctx, referrersType.ElemType, m)
		if diags.HasError() {
			t.Fatal(diags)
		}
		if got := referrersValue(m); !got.Equal(want) {
			t.Errorf("referrersValue(%v) = %v, want %v", m, got, want)
		}
	}
	if got := referrersValue(nil); got.IsNull() || len(got.Elements()) != 0 {
		t.Errorf("referrersValue(nil) = %v, want an empty map", got)
	}
	if !mapValue(nil).IsNull() {
		t.Error("mapValue(nil) is not null")
	}
}

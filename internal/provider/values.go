package provider

import (
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// Plain Go maps to the resource's and data source's attribute values. The
// values are built element by element in the attribute's own types, so the
// conversion has no failure to report (MapValueMust panics only on an
// element of another type).

// mapValue converts tag -> digest to a map(string); nil is null.
func mapValue(m map[string]string) types.Map {
	if m == nil {
		return types.MapNull(types.StringType)
	}
	elems := make(map[string]attr.Value, len(m))
	for k, v := range m {
		elems[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, elems)
}

// referrersValue converts subject -> referrer digests to the referrers
// attribute's type; nil is an empty map.
func referrersValue(m map[string][]string) types.Map {
	elems := make(map[string]attr.Value, len(m))
	for subject, refs := range m {
		list := make([]attr.Value, len(refs))
		for i, ref := range refs {
			list[i] = types.StringValue(ref)
		}
		elems[subject] = types.ListValueMust(referrerListType.ElemType, list)
	}
	return types.MapValueMust(referrerListType, elems)
}

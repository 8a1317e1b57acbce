package provider

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
)

// imageSelection is what the data source asks of ECR's image details: the
// details themselves, and the filters that need push times.
type imageSelection struct {
	includeDetails bool
	pushedAfter    time.Time // zero: no filter
	mostRecent     int       // 0: no filter
}

// needsDetails tells whether DescribeImages must be called.
func (s imageSelection) needsDetails() bool {
	return s.includeDetails || !s.pushedAfter.IsZero() || s.mostRecent > 0
}

// keepImages applies pushed_after and most_recent to the tags of a
// repository: whole images (digests) are kept or left out, so every tag of a
// kept image stays. An image ECR did not describe (pushed while the listing
// ran) counts as pushed at the zero time.
func keepImages(images map[string]string, details []ecr.ImageDetail, s imageSelection) map[string]string {
	pushed := map[string]time.Time{}
	for _, d := range details {
		pushed[d.Digest] = d.PushedAt
	}
	var digests []string
	for _, dig := range uniqueValues(images) {
		if s.pushedAfter.IsZero() || pushed[dig].After(s.pushedAfter) {
			digests = append(digests, dig)
		}
	}
	if s.mostRecent > 0 && len(digests) > s.mostRecent {
		slices.SortStableFunc(digests, func(a, b string) int {
			if c := pushed[b].Compare(pushed[a]); c != 0 {
				return c // newest first
			}
			return strings.Compare(a, b)
		})
		digests = digests[:s.mostRecent]
	}
	keep := map[string]bool{}
	for _, dig := range digests {
		keep[dig] = true
	}
	kept := map[string]string{}
	for tag, dig := range images {
		if keep[dig] {
			kept[tag] = dig
		}
	}
	return kept
}

var imageDetailAttrTypes = map[string]attr.Type{
	"digest":         types.StringType,
	"size_bytes":     types.Int64Type,
	"pushed_at":      types.StringType,
	"last_pulled_at": types.StringType,
}

// repositoryDetails is the part of a repository's value that comes from
// DescribeImages: image_details for the listed tags, and the size and last
// pull of the whole repository. Null without include_details.
func repositoryDetails(images map[string]string, details []ecr.ImageDetail, include bool) (map[string]attr.Value, diag.Diagnostics) {
	elem := types.ObjectType{AttrTypes: imageDetailAttrTypes}
	if !include {
		return map[string]attr.Value{"image_details": types.MapNull(elem), "size_bytes": types.Int64Null(),
			"last_pulled_at": types.StringNull()}, nil
	}
	var diags diag.Diagnostics
	byDigest := map[string]ecr.ImageDetail{}
	var size int64
	var lastPull time.Time
	for _, d := range details {
		byDigest[d.Digest] = d
		size += d.SizeBytes
		if d.LastPulledAt.After(lastPull) {
			lastPull = d.LastPulledAt
		}
	}
	perTag := map[string]attr.Value{}
	for _, tag := range slices.Sorted(maps.Keys(images)) {
		d := byDigest[images[tag]]
		obj, dd := types.ObjectValue(imageDetailAttrTypes, map[string]attr.Value{
			"digest": types.StringValue(images[tag]), "size_bytes": types.Int64Value(d.SizeBytes),
			"pushed_at": timeValue(d.PushedAt), "last_pulled_at": timeValue(d.LastPulledAt),
		})
		diags.Append(dd...)
		perTag[tag] = obj
	}
	m, dd := types.MapValue(elem, perTag)
	diags.Append(dd...)
	return map[string]attr.Value{"image_details": m, "size_bytes": types.Int64Value(size), "last_pulled_at": timeValue(lastPull)}, diags
}

// timeValue is t in RFC 3339 (UTC), or null for the zero time.
func timeValue(t time.Time) types.String {
	if t.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339))
}

package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

const copyBytesDescription = "The most bytes the planned copy reads from ECR: the manifests, configs and layers of every " +
	"digest the plan copies (each platform of an index; a layer shared by several images counted once), read from the " +
	"manifests at plan. The apply reads less when GitLab holds some of it already or mounts a layer from another " +
	"repository. Known at plan, so a reviewer sees the ECR egress before approving; kept in state until the next copy. " +
	"Null when the plan could not read ECR."

// planCopyBytes plans copy_bytes: the size of what the plan copies, or, when
// it copies nothing, the value in state, so a plan without a copy shows no
// change.
func (r *mirroredImageResource) planCopyBytes(ctx context.Context, plan *mirroredImageModel, in planInput, diags *diag.Diagnostics) {
	if plan.Images.IsUnknown() || plan.SourceRegistryID.IsUnknown() || plan.SourceRepository.IsUnknown() {
		plan.CopyBytes = types.Int64Unknown()
		return
	}
	digests := digestsToCopy(ctx, *plan, in.prior, diags)
	switch {
	case len(digests) == 0 && in.prior != nil:
		plan.CopyBytes = in.prior.CopyBytes
		return
	case len(digests) == 0:
		plan.CopyBytes = types.Int64Value(0)
		return
	}
	source, err := r.sourceReference(ctx, *plan)
	var size int64
	if err == nil {
		size, err = r.data.engine.SourceBytes(ctx, source, digests)
	}
	if err != nil {
		diags.AddAttributeWarning(path.Root("copy_bytes"), "Cannot Size the Copy From ECR",
			failureDetail(fmt.Sprintf("reading the manifests of %d digests of %q in ECR to add up what the apply reads; "+
				"copy_bytes is known only after the apply", len(digests), plan.SourceRepository.ValueString()), err, r.data.redactor))
		plan.CopyBytes = types.Int64Unknown()
		return
	}
	plan.CopyBytes = types.Int64Value(size)
}

// digestsToCopy lists the planned digests GitLab does not hold under their
// tags (as state knows it), and the referrers planned for them.
func digestsToCopy(ctx context.Context, plan mirroredImageModel, prior *mirroredImageModel, diags *diag.Diagnostics) []string {
	planned, held := map[string]string{}, map[string]string{}
	diags.Append(plan.Images.ElementsAs(ctx, &planned, false)...)
	if prior != nil && !prior.Images.IsNull() && !prior.Images.IsUnknown() && prior.TargetReference.Equal(plan.TargetReference) {
		diags.Append(prior.Images.ElementsAs(ctx, &held, false)...)
	}
	refs := map[string][]string{}
	if !plan.Referrers.IsNull() && !plan.Referrers.IsUnknown() {
		diags.Append(plan.Referrers.ElementsAs(ctx, &refs, false)...)
	}
	var out []string
	for _, tag := range slices.Sorted(maps.Keys(planned)) {
		if dig := planned[tag]; held[tag] != dig && !slices.Contains(out, dig) {
			out = append(out, dig)
			out = append(out, refs[dig]...)
		}
	}
	return out
}

package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

const copyBytesDescription = "The most bytes the planned copy reads from ECR, in decimal digits (`tonumber()` makes it " +
	"a number): the manifests, configs and layers of every " +
	"digest the plan copies (each platform of an index, and with `copy_referrers` the referrers GitLab does not hold yet; " +
	"a layer shared by several images counted once), read from the manifests in ECR at plan. The apply reads less when " +
	"GitLab holds some of it already or mounts a layer from another repository. Known at plan, so a reviewer sees the ECR " +
	"egress before approving; a plan that copies nothing keeps the value in state (the last copy's), so it shows no " +
	"change. A plan that must copy but cannot read those manifests in ECR fails, as the apply would. Unknown while the " +
	"digests are (for example `images` from a data source read only at apply), and null after such an apply."

// planCopyBytes plans copy_bytes: the size of what the plan copies, or,
// when it copies nothing, the value in state, so a plan without a copy
// shows no change and reads nothing from ECR. A failed read is an error,
// never an unknown: Terraform plans again at apply, and a value known in the
// first plan may not turn unknown there.
func (r *mirroredImageResource) planCopyBytes(ctx context.Context, plan *mirroredImageModel, in planInput, diags *diag.Diagnostics) {
	if !wholeKnown(plan.Images) || plan.SourceRegistryID.IsUnknown() || plan.SourceRepository.IsUnknown() ||
		plan.CopyReferrers.IsUnknown() || (plan.CopyReferrers.ValueBool() && plan.Referrers.IsUnknown()) {
		plan.CopyBytes = types.StringUnknown()
		return
	}
	digests := digestsToCopy(ctx, *plan, in.prior, diags)
	switch {
	case len(digests) == 0 && in.prior != nil && !in.prior.CopyBytes.IsUnknown():
		plan.CopyBytes = in.prior.CopyBytes
		return
	case len(digests) == 0:
		plan.CopyBytes = bytesValue(0)
		return
	}
	source, err := r.sourceReference(ctx, *plan)
	if err != nil {
		diags.Append(ecrLoginDiag(err))
		return
	}
	size, err := r.data.engine.SourceBytes(ctx, source, digests)
	if err != nil {
		diags.AddAttributeError(path.Root("copy_bytes"), "Cannot Read the Manifests to Copy From ECR",
			failureDetail(fmt.Sprintf("reading the manifests of the %d digests this plan copies from %s, to add up the "+
				"bytes the apply reads; the apply reads them too, so it cannot copy until ECR answers", len(digests), source),
				err, r.data.redactor))
		return
	}
	plan.CopyBytes = bytesValue(size)
}

// ecrLoginDiag is the error for an ECR registry whose address or token
// cannot be had, at plan and at apply alike.
func ecrLoginDiag(err error) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Cannot Log In to the ECR Registry",
		ecrErrorDetail("getting the ECR registry's address and token", err))
}

// digestsToCopy lists the planned digests GitLab does not hold under their
// tags (as state knows it), then the planned referrers GitLab does not hold:
// what the apply reads from ECR. The platforms inside an index are left to
// the sizer, which reads the index anyway.
func digestsToCopy(ctx context.Context, plan mirroredImageModel, prior *mirroredImageModel, diags *diag.Diagnostics) []string {
	planned, held := map[string]string{}, map[string]string{}
	diags.Append(plan.Images.ElementsAs(ctx, &planned, false)...)
	plannedRefs, heldRefs := map[string][]string{}, map[string][]string{}
	if !plan.Referrers.IsNull() && !plan.Referrers.IsUnknown() {
		diags.Append(plan.Referrers.ElementsAs(ctx, &plannedRefs, false)...)
	}
	if prior != nil && prior.TargetReference.Equal(plan.TargetReference) {
		if wholeKnown(prior.Images) && !prior.Images.IsNull() {
			diags.Append(prior.Images.ElementsAs(ctx, &held, false)...)
		}
		if wholeKnown(prior.Referrers) && !prior.Referrers.IsNull() {
			diags.Append(prior.Referrers.ElementsAs(ctx, &heldRefs, false)...)
		}
	}
	var out []string
	for _, tag := range slices.Sorted(maps.Keys(planned)) {
		if dig := planned[tag]; held[tag] != dig && !slices.Contains(out, dig) {
			out = append(out, dig)
		}
	}
	heldReferrers := slices.Concat(slices.Collect(maps.Values(heldRefs))...)
	for _, subject := range slices.Sorted(maps.Keys(plannedRefs)) {
		for _, dig := range plannedRefs[subject] {
			if !slices.Contains(heldReferrers, dig) && !slices.Contains(out, dig) {
				out = append(out, dig)
			}
		}
	}
	return out
}

// bytesValue is a byte count as copy_bytes holds it: decimal digits in a
// string. A number attribute would make every refresh-only plan "applyable"
// on Terraform 1.11, which compares the refreshed state with reflect.DeepEqual
// including each value's decoded form, and a number decoded from the state
// file differs in precision from the same number read back from the provider.
func bytesValue(n int64) types.String {
	return types.StringValue(strconv.FormatInt(n, 10))
}

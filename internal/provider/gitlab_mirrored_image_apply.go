package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
)

// mirrorImages copies the planned tags and referrers into GitLab and leaves
// in m what GitLab holds afterwards; it returns the updated record of copied
// digests. Tags that failed are reported one diagnostic each and keep their
// GitLab digest. gitlabRead is false when it stopped before reading GitLab's
// tags, and m then says nothing about GitLab.
func (r *mirroredImageResource) mirrorImages(ctx context.Context, m *mirroredImageModel, copied copiedDigests, diags *diag.Diagnostics) (_ copiedDigests, gitlabRead bool) {
	if !r.data.gitlabUsable(diags) {
		return copied, false
	}
	m.ID = types.StringValue(mirroredImageID(*m))
	if m.CopyBytes.IsUnknown() { // the plan did not know the digests
		m.CopyBytes = types.StringNull()
	}
	want, referrers, ok := r.plannedContent(ctx, m, diags)
	if !ok {
		return copied, false
	}
	if r.lookUpProject(ctx, m, missingIsError, diags); diags.HasError() {
		return copied, false
	}
	target := m.TargetReference.ValueString()
	current, err := r.data.engine.ReadTags(ctx, target, slices.Sorted(maps.Keys(want)))
	if err != nil {
		diags.AddError("Cannot Read Tags From the GitLab Registry",
			failureDetail(fmt.Sprintf("reading the digests of %s before copying; nothing was copied", target), err, r.data.redactor))
		return copied, false
	}
	req := mirror.Request{Target: target, Want: want, Current: current, Referrers: referrers}
	start := time.Now()
	if needsCopy(req) {
		if req.Source, err = r.sourceReference(ctx, *m); err != nil {
			diags.Append(ecrLoginDiag(err))
			m.Images = mapValue(current)
			m.Referrers = r.referrersAfter(mirror.Request{Referrers: referrers}, mirror.Result{}, diags)
			return copied, true
		}
	}
	res := r.data.engine.Mirror(ctx, req)
	m.Images = mapValue(r.heldAfter(req, res, diags))
	m.Referrers = r.referrersAfter(req, res, diags)
	logMirrored(ctx, req, res, time.Since(start))
	return recordCopied(copied, res.Landed, want), true
}

// plannedContent is what the plan says to copy, looked up in ECR when the
// plan could not know it (a source known only at apply).
func (r *mirroredImageResource) plannedContent(ctx context.Context, m *mirroredImageModel, diags *diag.Diagnostics) (map[string]string, map[string][]string, bool) {
	want := map[string]string{}
	if m.Images.IsUnknown() || m.Images.IsNull() {
		images, leftOut, err := r.sourceImages(ctx, *m)
		if err != nil {
			diags.Append(sourceDiag(m.SourceRepository.ValueString(), err))
			return nil, nil, false
		}
		if len(leftOut) > 0 {
			diags.Append(leftOutWarning(path.Root("images"), m.SourceRepository.ValueString(), leftOut))
		}
		want = images
	} else {
		diags.Append(m.Images.ElementsAs(ctx, &want, false)...)
	}
	if diags.HasError() {
		return nil, nil, false
	}
	if !m.CopyReferrers.ValueBool() {
		m.Referrers = types.MapNull(referrersType.ElemType)
		return want, nil, true
	}
	referrers := map[string][]string{}
	if m.Referrers.IsUnknown() || m.Referrers.IsNull() {
		found, err := r.sourceReferrers(ctx, *m, want, nil)
		if err != nil {
			diags.AddError("Cannot List Referrers in ECR", failureDetail("listing the signatures and SBOMs to copy", err, r.data.redactor))
			return nil, nil, false
		}
		referrers = found.BySubject
	} else {
		diags.Append(m.Referrers.ElementsAs(ctx, &referrers, false)...)
	}
	return want, referrers, !diags.HasError()
}

// needsCopy tells whether anything may have to come from ECR.
func needsCopy(req mirror.Request) bool {
	for tag, dig := range req.Want {
		if req.Current[tag] != dig {
			return true
		}
	}
	return len(req.Referrers) > 0
}

// heldAfter is what GitLab holds for the managed tags after the copy, with a
// diagnostic for every tag that failed.
func (r *mirroredImageResource) heldAfter(req mirror.Request, res mirror.Result, diags *diag.Diagnostics) map[string]string {
	held := make(map[string]string, len(req.Want))
	for tag, dig := range res.Landed {
		held[tag] = dig
	}
	for _, tag := range slices.Sorted(maps.Keys(res.Failed)) {
		if d, ok := req.Current[tag]; ok {
			held[tag] = d // GitLab still holds its old digest for this tag
		}
		diags.AddAttributeError(path.Root("images").AtMapKey(tag), "Tag Copy Failed",
			failureDetail(fmt.Sprintf("copying tag %q (%s) to %s:%s; the tags that landed are recorded in state and the next "+
				"apply copies only what is still missing", tag, req.Want[tag], req.Target, tag), res.Failed[tag], r.data.redactor))
	}
	return held
}

// referrersAfter is the referrers GitLab holds after the copy, with a
// diagnostic for every referrer that failed.
func (r *mirroredImageResource) referrersAfter(req mirror.Request, res mirror.Result, diags *diag.Diagnostics) types.Map {
	if req.Referrers == nil {
		return types.MapNull(referrersType.ElemType)
	}
	for _, subject := range slices.Sorted(maps.Keys(req.Referrers)) {
		for _, ref := range req.Referrers[subject] {
			if err, failed := res.ReferrerFailed[ref]; failed {
				diags.AddAttributeError(path.Root("referrers").AtMapKey(subject), "Referrer Copy Failed",
					failureDetail(fmt.Sprintf("copying referrer %s of %s to %s", ref, subject, req.Target), err, r.data.redactor))
			}
		}
	}
	return referrersValue(res.Referrers)
}

// recordCopied keeps, for each managed tag, the digest this resource put
// there: tags leaving management are forgotten, so destroy never deletes them.
func recordCopied(prior copiedDigests, landed, want map[string]string) copiedDigests {
	out := copiedDigests{}
	for tag := range want {
		if dig, ok := landed[tag]; ok {
			out[tag] = dig
		} else if dig, ok := prior[tag]; ok {
			out[tag] = dig
		}
	}
	return out
}

func logMirrored(ctx context.Context, req mirror.Request, res mirror.Result, took time.Duration) {
	tflog.Info(ctx, "mirrored repository", map[string]any{
		"source": req.Source, "target": req.Target, "tags": len(req.Want), "tags_copied": res.Stats.Tags,
		"tags_unchanged": len(req.Want) - len(res.Failed) - res.Stats.Tags, "tags_failed": len(res.Failed),
		"digests_copied": res.Stats.Digests, "referrers_copied": res.Stats.Referrers, "bytes": res.Stats.Bytes,
		"blobs_copied": res.Stats.BlobsCopied, "blobs_mounted": res.Stats.BlobsMounted,
		"blobs_skipped": res.Stats.BlobsSkipped, "seconds": took.Seconds(),
	})
}

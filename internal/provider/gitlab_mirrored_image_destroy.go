package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
)

// deleteCopiedTags deletes, one by one by tag through the GitLab API, the
// managed tags that still hold the digest this resource copied. A tag pushed
// again in GitLab since, or one it has no record of copying, is kept with a
// warning. It returns the tags still managed when a deletion failed.
func (r *mirroredImageResource) deleteCopiedTags(ctx context.Context, m mirroredImageModel, copied copiedDigests, diags *diag.Diagnostics) (map[string]string, bool) {
	managed := map[string]string{}
	diags.Append(m.Images.ElementsAs(ctx, &managed, false)...)
	project, repoID, found := r.findImage(ctx, m, diags)
	if !found || diags.HasError() {
		return managed, diags.HasError()
	}
	target := m.TargetReference.ValueString()
	now, err := r.data.engine.ReadTags(ctx, target, slices.Sorted(maps.Keys(managed)))
	if err != nil {
		diags.AddError("Cannot Read Tags From the GitLab Registry",
			failureDetail(fmt.Sprintf("checking which tags of %s still hold the copied digests; nothing was deleted", target), err, r.data.redactor))
		return managed, true
	}
	remaining := map[string]string{}
	for _, tag := range slices.Sorted(maps.Keys(managed)) {
		held, present := now[tag]
		switch {
		case !present:
			continue
		case copied[tag] == "" || held != copied[tag]:
			diags.Append(keptTagWarning(target, tag, held, copied[tag]))
		default:
			if err := r.data.gitlab.DeleteTag(ctx, project, repoID, tag); err != nil {
				remaining[tag] = held
				diags.AddAttributeError(path.Root("images").AtMapKey(tag), "Cannot Delete Tag",
					fmt.Sprintf("Deleting tag %q of %s through the GitLab API failed; it stays in state so the next destroy "+
						"retries it. Deleting tags needs the Maintainer role, and a protected or immutable tag may not be "+
						"deleted at all (Settings > Packages and registries > Container registry).\n\nOriginal Error: %s",
						tag, target, r.data.redactor.String(err.Error())))
				continue
			}
			tflog.Info(ctx, "deleted tag", map[string]any{"target": target, "tag": tag, "digest": held})
		}
	}
	return remaining, len(remaining) > 0
}

// findImage looks up the project and the image's registry repository;
// found is false when either is gone already.
func (r *mirroredImageResource) findImage(ctx context.Context, m mirroredImageModel, diags *diag.Diagnostics) (gitlab.Project, int64, bool) {
	project, gone := r.lookUpProject(ctx, &m, missingIsGone, diags)
	if gone || diags.HasError() {
		return project, 0, false
	}
	repoID, err := r.data.gitlab.RepositoryID(ctx, project, m.TargetImage.ValueString())
	if errors.Is(err, gitlab.ErrNotFound) {
		return project, 0, false
	}
	if err != nil {
		diags.AddError("Cannot Find the GitLab Image", fmt.Sprintf("Looking up image %q in project %q failed.\n\nOriginal Error: %s",
			m.TargetImage.ValueString(), project.PathWithNamespace, r.data.redactor.String(err.Error())))
		return project, 0, false
	}
	return project, repoID, true
}

func keptTagWarning(target, tag, held, copied string) diag.Diagnostic {
	why := fmt.Sprintf("GitLab holds it at %s, but this resource copied %s: it was pushed again in GitLab since", held, copied)
	if copied == "" {
		why = fmt.Sprintf("this resource has no record of copying it (GitLab holds it at %s)", held)
	}
	return diag.NewAttributeWarningDiagnostic(path.Root("images").AtMapKey(tag), "GitLab Tag Kept",
		fmt.Sprintf("delete_on_destroy keeps %s:%s: %s. Delete it in GitLab by hand if it is no longer needed.", target, tag, why))
}

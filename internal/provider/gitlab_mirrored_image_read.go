package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
)

// readGitLab refreshes m from GitLab alone (never ECR, which may be gone
// already): one HEAD per managed tag, and one per referrer. It reports gone
// only when the project is missing, or the image while tags are managed;
// every other failure is an error.
func (r *mirroredImageResource) readGitLab(ctx context.Context, m *mirroredImageModel, diags *diag.Diagnostics) (gone bool) {
	if m.TargetReference.ValueString() == "" {
		// Just imported: the API says where the image is.
		if gone := r.lookUpTarget(ctx, m, diags); gone || diags.HasError() {
			return gone
		}
	}
	r.data.engine.AddGitLabRegistry(hostOf(m.TargetReference.ValueString()), r.data.gitlab.InsecureRegistry(hostOf(m.TargetReference.ValueString())))
	tags, ok := r.managedTags(ctx, *m, diags)
	if !ok {
		return false
	}
	if len(tags) == 0 {
		// No managed tags (an empty source, or a filter that matches none):
		// the image may well not exist; only a missing project means gone.
		return r.projectGone(ctx, *m, diags)
	}
	target := m.TargetReference.ValueString()
	digests, err := r.data.engine.ReadTags(ctx, target, tags)
	if err != nil {
		diags.AddError("Cannot Read Tags From the GitLab Registry",
			failureDetail(fmt.Sprintf("refreshing the digests of %s; the resource is kept in state", target), err, r.data.redactor))
		return false
	}
	if len(digests) == 0 && r.lookUpTarget(ctx, m, diags) {
		tflog.Info(ctx, "GitLab project or image is gone; removing from state", map[string]any{"target": target})
		return true
	}
	m.Images = mapValue(digests)
	m.Referrers = r.readReferrers(ctx, *m, diags)
	return false
}

// managedTags lists the tags the resource manages: those in state, or after
// an import every tag GitLab holds for the image.
func (r *mirroredImageResource) managedTags(ctx context.Context, m mirroredImageModel, diags *diag.Diagnostics) ([]string, bool) {
	if m.Images.IsNull() {
		tags, err := r.data.engine.ListTags(ctx, m.TargetReference.ValueString())
		if err != nil {
			diags.AddError("Cannot List Tags in the GitLab Registry",
				failureDetail(fmt.Sprintf("listing the tags of %s after the import", m.TargetReference.ValueString()), err, r.data.redactor))
			return nil, false
		}
		return tags, true
	}
	held := map[string]string{}
	diags.Append(m.Images.ElementsAs(ctx, &held, false)...)
	return slices.Sorted(maps.Keys(held)), !diags.HasError()
}

// readReferrers keeps, of the referrers in state, those GitLab holds.
func (r *mirroredImageResource) readReferrers(ctx context.Context, m mirroredImageModel, diags *diag.Diagnostics) types.Map {
	if m.Referrers.IsNull() || m.Referrers.IsUnknown() {
		if m.CopyReferrers.ValueBool() && !m.Referrers.IsUnknown() {
			return referrersValue(nil) // imported: the next plan lists them
		}
		return m.Referrers
	}
	known := map[string][]string{}
	diags.Append(m.Referrers.ElementsAs(ctx, &known, false)...)
	var all []string
	for _, refs := range known {
		all = append(all, refs...)
	}
	held, err := r.data.engine.HeldManifests(ctx, m.TargetReference.ValueString(), all)
	if err != nil {
		diags.AddError("Cannot Read Referrers From the GitLab Registry",
			failureDetail(fmt.Sprintf("checking the signatures and SBOMs of %s by digest", m.TargetReference.ValueString()), err, r.data.redactor))
		return m.Referrers
	}
	out := map[string][]string{}
	for subject, refs := range known {
		for _, ref := range refs {
			if held[ref] {
				out[subject] = append(out[subject], ref)
			}
		}
	}
	return referrersValue(out)
}

// lookUpTarget asks the GitLab API for the project and image, setting
// target_reference. It reports true when either is gone; any other failure
// is a diagnostic.
func (r *mirroredImageResource) lookUpTarget(ctx context.Context, m *mirroredImageModel, diags *diag.Diagnostics) bool {
	project, gone := r.lookUpProject(ctx, m, missingIsGone, diags)
	if gone || diags.HasError() {
		return gone
	}
	if project.Assumed {
		return false // a CI job token cannot ask the API: never conclude "gone" from that
	}
	if _, err := r.data.gitlab.RepositoryID(ctx, project, m.TargetImage.ValueString()); err != nil {
		if errors.Is(err, gitlab.ErrNotFound) {
			return !m.Images.IsNull() // after an import, an image without tags is just empty
		}
		diags.AddError("Cannot List GitLab Registry Repositories", fmt.Sprintf("Checking that image %q exists in project %q failed.\n\nOriginal Error: %s",
			m.TargetImage.ValueString(), m.GitLabProject.ValueString(), r.data.redactor.String(err.Error())))
	}
	return false
}

// projectGone tells whether the project itself is missing.
func (r *mirroredImageResource) projectGone(ctx context.Context, m mirroredImageModel, diags *diag.Diagnostics) bool {
	_, err := r.data.gitlab.Project(ctx, m.GitLabProject.ValueString())
	switch {
	case errors.Is(err, gitlab.ErrNotFound):
		return true
	case err != nil:
		diags.Append(projectDiag(m.GitLabProject.ValueString(), err, r.data.redactor))
	}
	return false
}

func hostOf(reference string) string {
	host, _, _ := strings.Cut(reference, "/")
	return host
}

package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
)

// gitlabUsable reports whether the provider may call GitLab. Without a token
// it adds the error that says how to configure one, where diags is given;
// plan and import pass nil and leave that error to apply and refresh.
func (d *providerData) gitlabUsable(diags *diag.Diagnostics) bool {
	if d.gitlabErr == "" {
		return true
	}
	if diags != nil {
		diags.AddError("GitLab Token Missing", d.gitlabErr)
	}
	return false
}

// missingProject says what a project GitLab does not have means.
type missingProject int

const (
	missingIsError missingProject = iota // plan and apply: the configuration names a project that must exist
	missingIsGone                        // refresh and destroy: the resource is gone
)

// lookUpProject asks the GitLab API for the resource's project (once per
// plan, however many resources share it), lets the engine reach the
// project's registry and sets target_reference. gone is true for a missing
// project where missingIsGone; every other failure is an error diagnostic.
func (r *mirroredImageResource) lookUpProject(ctx context.Context, m *mirroredImageModel, missing missingProject, diags *diag.Diagnostics) (project gitlab.Project, gone bool) {
	project, err := r.data.gitlab.Project(ctx, m.GitLabProject.ValueString())
	if missing == missingIsGone && errors.Is(err, gitlab.ErrNotFound) {
		return project, true
	}
	if err != nil {
		diags.Append(projectDiag(m.GitLabProject.ValueString(), err, r.data.redactor))
		return project, false
	}
	r.data.engine.AddGitLabRegistry(project.RegistryHost, project.Insecure)
	m.TargetReference = types.StringValue(project.ImageReference(m.TargetImage.ValueString()))
	return project, false
}

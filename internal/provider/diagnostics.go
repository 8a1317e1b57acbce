package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/regclient/regclient/types/errs"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// failureDetail is a diagnostic's detail: what was being done, which side
// failed and what to check there, then the error with every secret removed.
func failureDetail(doing string, err error, redactor *redact.Redactor) string {
	return fmt.Sprintf("Error while %s. %s\n\nOriginal Error: %s", doing, sideHint(err), redactor.String(err.Error()))
}

// sideHint names the registry that failed and what to look at there, or
// says that the apply stopped, when that is why.
func sideHint(err error) string {
	answer, answered := mirror.Answer(err)
	switch side := mirror.SideOf(err); {
	case errors.Is(err, context.DeadlineExceeded):
		return "The copy ran out of time (the resource's timeouts). Raise timeouts.create or timeouts.update for a " +
			"repository this large, or apply again: only what is still missing is copied."
	case errors.Is(err, context.Canceled), errors.Is(err, errs.ErrCanceled):
		return "The copy was stopped before it finished (Ctrl-C, or Terraform stopping the provider). Apply again: " +
			"only what is still missing is copied."
	case isNetworkFailure(side, err):
		hint, _ := networkHint(side, err)
		return hint
	case side == mirror.SideGitLab && answered && answer.Refused():
		return fmt.Sprintf("GitLab's registry refused it (%d %s). If the tag is protected or immutable, check the "+
			"project's Settings > Packages and registries > Container registry > Protected container tags and immutable "+
			"tag rules; otherwise check that the token's user has a role that may push to the project's registry "+
			"(Developer, or the minimum role a protection rule sets) and the token's scopes (api, or read_registry and "+
			"write_registry). A change to those rules can take one registry token lifetime (5 minutes) to apply.",
			answer.Status, answer.Code)
	case side == mirror.SideGitLab && answered && answer.Status == http.StatusTooManyRequests:
		return "GitLab's registry kept answering 429 Too Many Requests after the provider waited as told. Lower " +
			"requests_per_second or max_concurrent_blobs, then apply again: only what is missing is copied."
	case side == mirror.SideGitLab:
		return "The failure is on the GitLab side: check the GitLab registry's availability, the token, and the network."
	case side == mirror.SideECR && answered && answer.Refused():
		return "ECR refused the request. The provider's AWS identity needs the read-only actions " +
			"ecr:GetAuthorizationToken, ecr:BatchCheckLayerAvailability, ecr:GetDownloadUrlForLayer and ecr:BatchGetImage " +
			"on this repository (and a repository policy allowing them for a repository of another account)."
	case side == mirror.SideECR:
		return "The failure is on the ECR side (the ECR registry, or Amazon S3 where ECR sends layer downloads): " +
			"check the AWS credentials, ECR's availability and the network."
	case ecr.IsAccessDenied(err):
		return "ECR refused the request: the AWS identity lacks a read-only ECR permission."
	}
	return "Check the network, and both registries' availability."
}

// isNetworkFailure is a connection failure networkHint explains.
func isNetworkFailure(side mirror.Side, err error) bool {
	_, ok := networkHint(side, err)
	return ok
}

func projectDiag(project string, err error, redactor *redact.Redactor) diag.Diagnostic {
	if hint, ok := networkHint(mirror.SideGitLab, err); ok {
		return diag.NewErrorDiagnostic("Cannot Reach GitLab",
			fmt.Sprintf("Error while looking up project %q in the GitLab API. %s\n\nOriginal Error: %s", project, hint, redactor.String(err.Error())))
	}
	switch {
	case errors.Is(err, gitlab.ErrNotFound):
		return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_project"), "GitLab Project Not Found",
			fmt.Sprintf("GitLab has no project %q that the token can see. Check the path (as in the project's URL) or ID, "+
				"and that the token's user is a member with at least the Developer role.\n\nOriginal Error: %s", project, redactor.String(err.Error())))
	case errors.Is(err, gitlab.ErrRegistryDisabled):
		return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_project"), "GitLab Container Registry Disabled",
			fmt.Sprintf("The project %q has its container registry turned off. Enable it under Settings > General > "+
				"Visibility, project features, permissions.\n\nOriginal Error: %s", project, redactor.String(err.Error())))
	}
	return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_project"), "Cannot Look Up the GitLab Project",
		fmt.Sprintf("Looking up project %q in the GitLab API failed. Check gitlab.base_url, the token and the network.\n\nOriginal Error: %s",
			project, redactor.String(err.Error())))
}

func sourceDiag(source string, err error) diag.Diagnostic {
	if errors.Is(err, ecr.ErrRepositoryNotFound) {
		return diag.NewAttributeErrorDiagnostic(path.Root("source_repository"), "ECR Repository Not Found",
			fmt.Sprintf("The ECR repository %q does not exist in the configured registry. Check the name, the provider's "+
				"ecr.region, and source_registry_id or ecr.registry_id.\n\nOriginal Error: %s", source, err))
	}
	return diag.NewErrorDiagnostic("Cannot Read the ECR Repository", ecrErrorDetail(fmt.Sprintf("listing the tags of %q in ECR", source), err))
}

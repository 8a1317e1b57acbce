package provider

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
)

// gitlabImageNames suggests, per ECR repository name, the image name below a
// GitLab project that GitLab accepts (see suggestImageName), and returns the
// names that more than one repository would land on, each with the
// repositories, sorted.
func gitlabImageNames(repositories []string, sep string) (names map[string]string, shared map[string][]string) {
	names = make(map[string]string, len(repositories))
	byImage := map[string][]string{}
	for _, repo := range repositories {
		image := repo
		if problem, _ := targetImageProblem(repo); problem != "" {
			image = suggestImageName(repo, sep)
		}
		names[repo] = image
		byImage[image] = append(byImage[image], repo)
	}
	for image, repos := range byImage {
		if len(repos) > 1 {
			if shared == nil {
				shared = map[string][]string{}
			}
			shared[image] = slices.Sorted(slices.Values(repos))
		}
	}
	return names, shared
}

// sharedImageNamesDiag refuses a listing in which two repositories would be
// mirrored onto one GitLab image: the second copy would overwrite the
// first's tags.
func sharedImageNamesDiag(shared map[string][]string, sep string) diag.Diagnostic {
	var lines []string
	for _, image := range slices.Sorted(maps.Keys(shared)) {
		lines = append(lines, fmt.Sprintf("- %s -> %q", strings.Join(shared[image], " and "), image))
	}
	return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_image_separator"), "ECR Repositories Share a GitLab Image Name",
		fmt.Sprintf("Suggesting GitLab image names (gitlab_image) with the separator %q, these ECR repositories would land "+
			"on the same image, and mirroring both would overwrite one with the other:\n%s\n\nSet gitlab_image_separator "+
			"to another separator (\".\", \"_\", \"__\" or a run of \"-\", e.g. \"--\"), leave one repository out "+
			"(exclude_regex), or give it a target_image of its own.", sep, strings.Join(lines, "\n")))
}

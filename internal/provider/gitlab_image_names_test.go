package provider

import (
	"reflect"
	"strings"
	"testing"
)

func TestGitLabImageNames(t *testing.T) {
	tests := []struct {
		name   string
		repos  []string
		sep    string
		want   map[string]string
		shared map[string][]string
	}{
		{
			name:  "names GitLab takes stay",
			repos: []string{"web", "team/api", "team/api.v2"},
			sep:   "-",
			want:  map[string]string{"web": "web", "team/api": "team/api", "team/api.v2": "team/api.v2"},
		},
		{
			name:  "deeper names fold their leading levels",
			repos: []string{"org/team/service/api", "a/b/c"},
			sep:   "-",
			want:  map[string]string{"org/team/service/api": "org-team-service/api", "a/b/c": "a-b/c"},
		},
		{
			name:  "another separator",
			repos: []string{"org/team/service/api", "a/b/c"},
			sep:   "__",
			want:  map[string]string{"org/team/service/api": "org__team__service/api", "a/b/c": "a__b/c"},
		},
		{
			name:   "two repositories on one name",
			repos:  []string{"a/b/c", "a-b/c", "x/y/z", "web"},
			sep:    "-",
			want:   map[string]string{"a/b/c": "a-b/c", "a-b/c": "a-b/c", "x/y/z": "x-y/z", "web": "web"},
			shared: map[string][]string{"a-b/c": {"a-b/c", "a/b/c"}},
		},
		{
			name:  "the separator that parts them",
			repos: []string{"a/b/c", "a-b/c"},
			sep:   "--",
			want:  map[string]string{"a/b/c": "a--b/c", "a-b/c": "a-b/c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shared := gitlabImageNames(tt.repos, tt.sep)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("names = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(shared, tt.shared) {
				t.Errorf("shared = %v, want %v", shared, tt.shared)
			}
			for repo, image := range got {
				if problem, _ := targetImageProblem(image); problem != "" {
					t.Errorf("%q -> %q, which GitLab refuses: it %s", repo, image, problem)
				}
			}
		})
	}
}

func TestSharedImageNamesDiag(t *testing.T) {
	d := sharedImageNamesDiag(map[string][]string{"a-b/c": {"a-b/c", "a/b/c"}}, "-")
	if d.Summary() != "ECR Repositories Share a GitLab Image Name" {
		t.Errorf("summary %q", d.Summary())
	}
	if !strings.Contains(d.Detail(), `- a-b/c and a/b/c -> "a-b/c"`) || !strings.Contains(d.Detail(), "gitlab_image_separator") {
		t.Errorf("detail does not name both repositories and the fix:\n%s", d.Detail())
	}
}

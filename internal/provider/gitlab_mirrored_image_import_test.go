package provider

import (
	"strings"
	"testing"
)

func TestParseImportID(t *testing.T) {
	good := []struct{ id, registry, source, project, image string }{
		{"web:group/proj", "", "web", "group/proj", "web"},
		{"team/api:platform/images:api", "", "team/api", "platform/images", "api"},
		{"team/api:42:team/api", "", "team/api", "42", "team/api"},
		{"210987654321:web:group/proj:web", "210987654321", "web", "group/proj", "web"},
	}
	for _, tt := range good {
		m, problem := parseImportID(tt.id)
		if problem != "" {
			t.Errorf("%q: %s", tt.id, problem)
			continue
		}
		got := []string{m.SourceRegistryID.ValueString(), m.SourceRepository.ValueString(), m.GitLabProject.ValueString(), m.TargetImage.ValueString()}
		if want := []string{tt.registry, tt.source, tt.project, tt.image}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: parsed %q, want %q", tt.id, got, want)
		}
		if m.ID.ValueString() != mirroredImageID(m) {
			t.Errorf("%q: ID %q is not the resource's ID form %q", tt.id, m.ID.ValueString(), mirroredImageID(m))
		}
	}
	bad := []struct{ id, want string }{
		{"not-a-valid-id", "has 1 parts"},
		{"a:b:c:d:e", "has 5 parts"},
		{":proj:img", "has an empty part"},
		{"Team/API:group/proj", `source repository "Team/API"`},
		{"web:project", `GitLab project "project"`},
		{"web:https://gitlab.com/g/p", "contains a URL; name the GitLab project by its path"},
		{"web:group/proj:A/B/C", `target image "A/B/C"`},
		{"12ab:web:group/proj:web", `starts with "12ab", which is not a 12-digit AWS account ID`},
		{"210987654321:web:group/proj", `if "210987654321" is the source_registry_id, the target image cannot be left out`},
		{"web: group/proj", `GitLab project " group/proj"`},
	}
	for _, tt := range bad {
		if _, problem := parseImportID(tt.id); !strings.Contains(problem, tt.want) {
			t.Errorf("%q: problem %q, want it to contain %q", tt.id, problem, tt.want)
		}
	}
}

package acceptance

import (
	"fmt"
	"testing"
)

// TestWorkspaceAppliesAndRerunsEmpty proves the harness: a mirror through the
// CLI, then an empty plan.
func TestWorkspaceAppliesAndRerunsEmpty(t *testing.T) {
	project, _ := newProject(t)
	w := newWorkspace(t, fmt.Sprintf(`
resource "imagesync_gitlab_mirrored_image" "web" {
  source_repository = "web"
  gitlab_project    = %q
}
`, project))
	w.apply()
	if len(w.state()) == 0 {
		t.Fatal("no state after apply")
	}
}

package provider

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/regclient/regclient/types/errs"

	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
)

func TestSideHint(t *testing.T) {
	gitlabRefusal := &mirror.RegistryError{Side: mirror.SideGitLab, Method: "PUT", Status: 401, Code: "PROTECTED_TAG"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"interrupted mid-request", fmt.Errorf("writing manifest: %w", &url.Error{Op: "Put", URL: "http://r/v2/a/manifests/v1", Err: context.Canceled}), "stopped before it finished"},
		{"interrupted in regclient's backoff", fmt.Errorf("writing blob: %w", errs.ErrCanceled), "stopped before it finished"},
		{"out of time", &mirror.SideError{Side: mirror.SideECR, Err: context.DeadlineExceeded}, "timeouts.create"},
		{"a protected tag", fmt.Errorf("copying: %w", gitlabRefusal), "Protected container tags"},
		{"ECR side", &mirror.SideError{Side: mirror.SideECR, Err: fmt.Errorf("connection reset")}, "on the ECR side"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sideHint(tt.err); !strings.Contains(got, tt.want) {
				t.Errorf("sideHint(%v) = %q, want it to say %q", tt.err, got, tt.want)
			}
		})
	}
}

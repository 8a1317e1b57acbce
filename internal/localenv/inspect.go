package localenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
)

// GitLabDigest reads a manifest from the GitLab registry with skopeo, a
// client independent of the provider, and returns the sha256 of its bytes;
// found is false when the registry does not have it.
func (e *Env) GitLabDigest(ctx context.Context, image, tagOrDigest string) (digest string, found bool, err error) {
	raw, found, err := e.GitLabManifest(ctx, image, tagOrDigest)
	if !found || err != nil {
		return "", found, err
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:]), true, nil
}

// GitLabManifest reads a manifest's raw bytes from the GitLab registry with skopeo.
func (e *Env) GitLabManifest(ctx context.Context, image, tagOrDigest string) (raw []byte, found bool, err error) {
	sep := ":"
	if strings.HasPrefix(tagOrDigest, "sha256:") {
		sep = "@"
	}
	args := append([]string{"inspect", "--raw"}, e.SkopeoTLSFlags("")...)
	args = append(args, "--creds", "root:"+e.GitLabToken, "docker://"+e.GitLabRegistryHost+"/"+image+sep+tagOrDigest)
	cmd := exec.CommandContext(ctx, "skopeo", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "manifest unknown") || strings.Contains(stderr.String(), "not found") {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("skopeo inspect %s%s%s: %w: %s", image, sep, tagOrDigest, err, stderr.String())
	}
	return out, true, nil
}

package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
)

// RegctlVersion is the regctl the tests attach artifacts with: the release
// of the regclient module in go.mod.
const RegctlVersion = "v0.11.7"

// AttachECRArtifact pushes an artifact as oras attach makes one (an image
// manifest with artifactType, an empty config, the body as its one layer)
// whose subject is the manifest at subjectDigest in repo. It returns the
// artifact's digest.
func (e *Env) AttachECRArtifact(ctx context.Context, repo, subjectDigest, artifactType string, body []byte) (string, error) {
	r, subject, err := e.ecrSubject(ctx, repo, subjectDigest)
	if err != nil {
		return "", err
	}
	cfg, err := e.pushBytes(ctx, r, mediatype.OCI1Empty, []byte("{}"))
	if err != nil {
		return "", err
	}
	layer, err := e.pushBytes(ctx, r, artifactType, body)
	if err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(imageManifest{
		SchemaVersion: 2, MediaType: mediatype.OCI1Manifest, ArtifactType: artifactType, Config: cfg, Layers: []ociDesc{layer}, Subject: &subject,
	}, "", "  ")
	if err != nil {
		return "", err
	}
	d := digest.FromBytes(raw).String()
	return d, e.putManifest(ctx, r.SetDigest(d), raw, mediatype.OCI1Manifest)
}

// RegctlArtifactPut attaches body as an artifact of artifactType to the
// manifest at subjectDigest in repo with regctl, a tool independent of the
// provider, and returns the artifact's digest.
func (e *Env) RegctlArtifactPut(ctx context.Context, repo, subjectDigest, artifactType string, body []byte) (string, error) {
	bin, err := Regctl()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "regctl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	host := hostOf(e.ECRRegistryEndpoint)
	hostConf := map[string]string{"user": "AWS", "pass": e.ECRPassword}
	maps.Copy(hostConf, e.RegctlTLS())
	conf, _ := json.Marshal(map[string]any{"hosts": map[string]any{host: hostConf}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "artifact", "put", "--artifact-type", artifactType,
		"--subject", host+"/"+repo+"@"+subjectDigest, "--format", "{{ .Manifest.GetDescriptor.Digest }}")
	cmd.Env = append(os.Environ(), "REGCTL_CONFIG="+filepath.Join(dir, "config.json"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("regctl artifact put: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	d := strings.TrimSpace(string(out))
	if _, err := digest.Parse(d); err != nil {
		return "", fmt.Errorf("regctl artifact put printed %q, not a digest", d)
	}
	return d, nil
}

// Regctl finds regctl on PATH or where go install puts it; `make deps`
// (.ci/deps.sh) installs it.
func Regctl() (string, error) {
	if p, err := exec.LookPath("regctl"); err == nil {
		return p, nil
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		out, err := exec.CommandContext(context.Background(), "go", "env", "GOPATH").Output()
		if err == nil {
			gopath := filepath.SplitList(strings.TrimSpace(string(out)))
			if len(gopath) > 0 {
				gobin = filepath.Join(gopath[0], "bin")
			}
		}
	}
	if p := filepath.Join(gobin, "regctl"); gobin != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("regctl not found on PATH or in Go's bin directory: run make deps, or go install github.com/regclient/regclient/cmd/regctl@" + RegctlVersion)
}

// ECRPlatforms lists the platform manifests of the index at dig in repo.
func (e *Env) ECRPlatforms(ctx context.Context, repo, dig string) ([]string, error) {
	r, err := e.ecrRepository(repo)
	if err != nil {
		return nil, err
	}
	m, err := e.regClient().ManifestGet(ctx, r.SetDigest(dig))
	if err != nil {
		return nil, fmt.Errorf("get %s@%s: %w", repo, dig, err)
	}
	idx, ok := m.(manifest.Indexer)
	if !ok {
		return nil, fmt.Errorf("%s@%s is not an index", repo, dig)
	}
	list, err := idx.GetManifestList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range list {
		out = append(out, d.Digest.String())
	}
	return out, nil
}

package localenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/bcrypt"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
)

// registryConfig renders a distribution 2.8 config. auth is the indented
// "auth:" section.
func registryConfig(root string, port int, auth string) string {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	return fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: %s
%s`, root, port, hex.EncodeToString(secret), auth)
}

// startRegistry writes cfg and starts docker-registry, waiting for /v2/ to
// answer 401 (auth is on for both registries).
func (e *Env) startRegistry(ctx context.Context, bin, name, cfg string, port int) error {
	cfgPath := filepath.Join(e.WorkDir, name+".yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	p, err := startProc(name, filepath.Join(e.WorkDir, name+".log"), nil, bin, "serve", cfgPath)
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p)
	return p.waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/v2/", port), func(s int) bool { return s == http.StatusUnauthorized })
}

func (e *Env) startECRRegistry(ctx context.Context, bin string, port int) error {
	root := filepath.Join(e.WorkDir, "ecr-registry")
	if err := mkdirs(root); err != nil {
		return err
	}
	// MinCost: distribution checks the bcrypt hash on every request, and the
	// default cost would add ~50 ms to each one.
	hash, err := bcrypt.GenerateFromPassword([]byte(e.ECRPassword), bcrypt.MinCost)
	if err != nil {
		return err
	}
	htpasswd := filepath.Join(e.WorkDir, "ecr-htpasswd")
	if err := os.WriteFile(htpasswd, []byte("AWS:"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}
	auth := fmt.Sprintf("auth:\n  htpasswd:\n    realm: %q\n    path: %q\n", e.ECRRegistryName, htpasswd)
	return e.startRegistry(ctx, bin, "ecr-registry", registryConfig(root, port, auth), port)
}

// startGitLabRegistry configures token auth the way GitLab configures its
// bundled registry; it returns the storage root the fake API reads.
func (e *Env) startGitLabRegistry(ctx context.Context, bin string, port int, gl *fakegitlab.GitLab) (string, error) {
	root := filepath.Join(e.WorkDir, "gitlab-registry")
	if err := mkdirs(root); err != nil {
		return "", err
	}
	certPath := filepath.Join(e.WorkDir, "gitlab-registry-auth.crt")
	if err := os.WriteFile(certPath, gl.CertPEM(), 0o600); err != nil {
		return "", err
	}
	auth := fmt.Sprintf("auth:\n  token:\n    realm: %q\n    service: %q\n    issuer: %q\n    rootcertbundle: %q\n",
		gl.URL+"/jwt/auth", gl.Service, gl.Issuer, certPath)
	return root, e.startRegistry(ctx, bin, "gitlab-registry", registryConfig(root, port, auth), port)
}

// RestartGitLabRegistry stops the GitLab docker-registry process (requests
// in flight break, new ones meet a closed port) and starts it again with the
// same configuration, port and storage, as an upgrade or a crash does.
func (e *Env) RestartGitLabRegistry(ctx context.Context) error {
	i := slices.IndexFunc(e.procs, func(p *proc) bool { return p.name == "gitlab-registry" })
	if i < 0 || e.GitLabProxy == nil {
		return errors.New("no GitLab registry process to restart (an Env from Connect owns none)")
	}
	old := e.procs[i]
	if err := old.stop(); err != nil {
		return err
	}
	p, err := startProc(old.name, old.logPath, nil, old.cmd.Path, old.cmd.Args[1:]...)
	if err != nil {
		return err
	}
	e.procs[i] = p
	return p.waitReady(ctx, e.GitLabProxy.backend.JoinPath("/v2/").String(), func(s int) bool { return s == http.StatusUnauthorized })
}

// Package install tests the provider as users get it: the release zip from
// goreleaser's snapshot (`make snapshot`), its SHA256SUMS and signature
// checked as a registry would, installed by `init` from a filesystem mirror
// with no development override; and what the examples ask of the Terraform or
// OpenTofu version. The CLI is terraform from PATH or the one
// TF_ACC_TERRAFORM_PATH names, as in the other acceptance tests.
package install

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// snapshotDir is where `make snapshot` leaves the release, relative to the
// repository root; IMAGESYNC_DIST overrides it.
const snapshotDir = "dist"

// release is the part of a goreleaser release one platform installs.
type release struct {
	root    string // the repository root: goreleaser's paths are relative to it
	version string // e.g. 0.0.0-SNAPSHOT-1a2b3c4
	zip     string // path of this platform's zip
	sums    string // path of SHA256SUMS
	sig     string // path of its detached signature
	key     string // path of the armored public key it was signed with
}

// goreleaserArtifact is one entry of dist/artifacts.json.
type goreleaserArtifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	GoOS   string `json:"goos"`
	GoArch string `json:"goarch"`
	Type   string `json:"type"`
}

// readRelease finds this platform's zip, SHA256SUMS and its signature in the
// snapshot goreleaser wrote.
func readRelease(t *testing.T) release {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(root, snapshotDir)
	if d := os.Getenv("IMAGESYNC_DIST"); d != "" {
		dist = d
	}
	var meta struct {
		Version string `json:"version"`
	}
	readJSON(t, filepath.Join(dist, "metadata.json"), &meta)
	var artifacts []goreleaserArtifact
	readJSON(t, filepath.Join(dist, "artifacts.json"), &artifacts)
	rel := release{root: root, version: meta.Version, key: filepath.Join(dist, "snapshot-signing-key.asc")}
	for _, a := range artifacts {
		switch {
		case a.Type == "Archive" && a.GoOS == runtime.GOOS && a.GoArch == runtime.GOARCH:
			rel.zip = rel.path(a)
		case a.Type == "Checksum":
			rel.sums = rel.path(a)
		case a.Type == "Signature":
			rel.sig = rel.path(a)
		}
	}
	if rel.version == "" || rel.zip == "" || rel.sums == "" || rel.sig == "" {
		t.Fatalf("%s holds no %s/%s zip, SHA256SUMS and signature of one version (%+v): run make snapshot", dist, runtime.GOOS, runtime.GOARCH, rel)
	}
	return rel
}

// path makes an artifact's path, relative to the repository root, absolute.
func (r release) path(a goreleaserArtifact) string {
	if filepath.IsAbs(a.Path) {
		return a.Path
	}
	return filepath.Join(r.root, a.Path)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run make snapshot", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checksums reads SHA256SUMS ("<hex>  <file name>" per line) after checking
// its detached signature against the signing key, as a registry does before
// it serves the zips.
func (r release) checksums(t *testing.T) map[string]string {
	t.Helper()
	sums, sig, key := readFile(t, r.sums), readFile(t, r.sig), readFile(t, r.key)
	keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key))
	if err != nil {
		t.Fatalf("signing key %s: %v", r.key, err)
	}
	if _, err := openpgp.CheckDetachedSignature(keyring, bytes.NewReader(sums), bytes.NewReader(sig), nil); err != nil {
		t.Fatalf("%s does not verify against %s: %v", filepath.Base(r.sig), filepath.Base(r.key), err)
	}
	out := map[string]string{}
	lines := bufio.NewScanner(bytes.NewReader(sums))
	for lines.Scan() {
		sum, name, ok := strings.Cut(lines.Text(), "  ")
		if !ok {
			t.Fatalf("%s: line %q is not <sha256>  <file>", r.sums, lines.Text())
		}
		out[name] = sum
	}
	return out
}

// zipHash is the zip's line of SHA256SUMS in a lock file's "zh:" form, after
// checking that it is the zip's hash and that the registry manifest is listed.
func (r release) zipHash(t *testing.T) string {
	t.Helper()
	sums := r.checksums(t)
	name := filepath.Base(r.zip)
	got := sha256.Sum256(readFile(t, r.zip))
	if sums[name] != hex.EncodeToString(got[:]) {
		t.Fatalf("SHA256SUMS lists %s as %q; the file's sha256 is %x", name, sums[name], got)
	}
	manifest := fmt.Sprintf("terraform-provider-imagesync_%s_manifest.json", r.version)
	if _, ok := sums[manifest]; !ok {
		t.Errorf("SHA256SUMS does not list the registry manifest %s: %v", manifest, sums)
	}
	return "zh:" + sums[name]
}

// mirror lays the zip out as a filesystem mirror in the packed layout, under
// every address in addrs (hostname/namespace/type), and returns its root.
func (r release) mirror(t *testing.T, addrs []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, addr := range addrs {
		d := filepath.Join(dir, filepath.FromSlash(addr))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, filepath.Base(r.zip)), readFile(t, r.zip), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package mirror

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/olareg/olareg"
	olaregconfig "github.com/olareg/olareg/config"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"github.com/regclient/regclient/types/referrer"
)

// Artifact types of the test referrers.
const (
	signatureType = "application/vnd.dev.cosign.simplesigning.v1+json"
	sbomType      = "application/spdx+json"
	provenance    = "application/vnd.in-toto+json" // a config media type, the manifest has no artifactType
)

// testRegistry is an in-process OCI registry (olareg) that counts requests.
type testRegistry struct {
	host string
	mu   sync.Mutex
	reqs map[string]int // "GET manifests", "GET referrers", ...
}

// newTestRegistry starts a registry; referrersAPI false makes it answer the
// referrers API with 404, so clients fall back to sha256-<hex> tags.
func newTestRegistry(t *testing.T, referrersAPI bool) *testRegistry {
	t.Helper()
	h := olareg.New(olaregconfig.Config{
		Storage: olaregconfig.ConfigStorage{StoreType: olaregconfig.StoreMem},
		API:     olaregconfig.ConfigAPI{Referrer: olaregconfig.ConfigAPIReferrer{Enabled: &referrersAPI}},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	reg := &testRegistry{reqs: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg.count(r)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); _ = h.Close() })
	u, _ := url.Parse(srv.URL)
	reg.host = u.Host
	return reg
}

func (reg *testRegistry) count(r *http.Request) {
	parts := strings.Split(r.URL.Path, "/")
	kind := ""
	if len(parts) > 2 {
		kind = parts[len(parts)-2]
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.reqs[r.Method+" "+kind]++
}

func (reg *testRegistry) requests(key string) int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.reqs[key]
}

func (reg *testRegistry) reset() {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.reqs = map[string]int{}
}

// pusher writes test content into a registry, as the tools that made it would.
type pusher struct {
	t    *testing.T
	rc   *regclient.RegClient
	repo ref.Ref
}

func newPusher(t *testing.T, reg *testRegistry, repo string) *pusher {
	t.Helper()
	rc := regclient.New(regclient.WithConfigHost(config.Host{Name: reg.host, TLS: config.TLSDisabled}),
		regclient.WithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))))
	r, err := ref.New(reg.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return &pusher{t: t, rc: rc, repo: r}
}

func (p *pusher) blob(mt string, b []byte) descriptor.Descriptor {
	p.t.Helper()
	d := descriptor.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if _, err := p.rc.BlobPut(context.Background(), p.repo, d, bytes.NewReader(b)); err != nil {
		p.t.Fatal(err)
	}
	return d
}

// put writes a manifest by digest, or under tag; regclient keeps the
// subject's fallback tag where the registry has no referrers API.
func (p *pusher) put(orig any, tag string) descriptor.Descriptor {
	p.t.Helper()
	m, err := manifest.New(manifest.WithOrig(orig))
	if err != nil {
		p.t.Fatal(err)
	}
	d := m.GetDescriptor()
	r := p.repo.SetDigest(d.Digest.String())
	var opts []regclient.ManifestOpts
	if tag != "" {
		r = p.repo.SetTag(tag)
	} else if _, isIndex := orig.(v1.Index); !isIndex && !hasSubject(m) {
		opts = append(opts, regclient.WithManifestChild())
	}
	if err := p.rc.ManifestPut(context.Background(), r, m, opts...); err != nil {
		p.t.Fatal(err)
	}
	return d
}

func (p *pusher) image(arch string) descriptor.Descriptor {
	cfg := p.blob(mediatype.OCI1ImageConfig, fmt.Appendf(nil, `{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, arch))
	layer := p.blob(mediatype.OCI1LayerGzip, []byte("layer of "+arch))
	d := p.put(v1.Manifest{Versioned: v1.ManifestSchemaVersion, MediaType: mediatype.OCI1Manifest, Config: cfg, Layers: []descriptor.Descriptor{layer}}, "")
	d.Platform = &platform.Platform{OS: "linux", Architecture: arch}
	return d
}

// artifact pushes an oras-style artifact: artifactType set, empty config
// (or, with artifactType "", the config media type configType).
func (p *pusher) artifact(subject descriptor.Descriptor, artifactType, configType, body string) descriptor.Descriptor {
	cfg := p.blob(mediatype.OCI1Empty, []byte("{}"))
	if configType != "" {
		cfg = p.blob(configType, []byte(`{"predicate":"`+body+`"}`))
	}
	layer := p.blob("text/plain", []byte(body))
	subject.Platform = nil
	return p.put(v1.Manifest{
		Versioned: v1.ManifestSchemaVersion, MediaType: mediatype.OCI1Manifest, ArtifactType: artifactType,
		Config: cfg, Layers: []descriptor.Descriptor{layer}, Subject: &subject,
	}, "")
}

// signedIndex is a two-platform index whose platforms each carry their own
// artifacts: a signature on amd64 only, an SBOM (itself signed) on arm64,
// and a provenance attestation on the index.
type signedIndex struct {
	index, amd64, arm64                           descriptor.Descriptor
	sigAMD64, sbomARM64, sigOfSBOM, provenanceIdx descriptor.Descriptor
}

func pushSignedIndex(p *pusher, tag string) signedIndex {
	var s signedIndex
	s.amd64, s.arm64 = p.image("amd64"), p.image("arm64")
	s.index = p.put(v1.Index{Versioned: v1.IndexSchemaVersion, MediaType: mediatype.OCI1ManifestList,
		Manifests: []descriptor.Descriptor{s.amd64, s.arm64}}, tag)
	s.sigAMD64 = p.artifact(s.amd64, signatureType, "", "signature of amd64")
	s.sbomARM64 = p.artifact(s.arm64, sbomType, "", "sbom of arm64")
	s.sigOfSBOM = p.artifact(s.sbomARM64, signatureType, "", "signature of the sbom")
	s.provenanceIdx = p.artifact(s.index, "", provenance, "provenance of the index")
	return s
}

func testEngine(ecr *testRegistry, gitlab *testRegistry) *Engine {
	e := New(Config{ECR: &fakeCredentials{}, ECREndpoint: "http://" + ecr.host})
	if gitlab != nil {
		e.AddGitLabRegistry(gitlab.host, true)
	}
	return e
}

const testSource = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"

func TestSourceReferrersOfPlatforms(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%v", api), func(t *testing.T) {
			ecr := newTestRegistry(t, api)
			s := pushSignedIndex(newPusher(t, ecr, "app"), "v1")
			idx, amd, arm := s.index.Digest.String(), s.amd64.Digest.String(), s.arm64.Digest.String()
			all := map[string][]string{
				idx:                         {s.provenanceIdx.Digest.String()},
				amd:                         {s.sigAMD64.Digest.String()},
				arm:                         {s.sbomARM64.Digest.String()},
				s.sbomARM64.Digest.String(): {s.sigOfSBOM.Digest.String()},
			}
			for _, tc := range []struct {
				name  string
				types []string
				want  map[string][]string
			}{
				{"every referrer", nil, all},
				// A signature of an SBOM goes only with its SBOM, as in regsync.
				{"signatures only", []string{signatureType}, map[string][]string{amd: all[amd]}},
				{"SBOMs only", []string{sbomType}, map[string][]string{arm: all[arm]}},
				{"config media type when no artifactType", []string{provenance}, map[string][]string{idx: all[idx]}},
				{"SBOMs and their signatures", []string{sbomType, signatureType}, map[string][]string{
					amd: all[amd], arm: all[arm], s.sbomARM64.Digest.String(): all[s.sbomARM64.Digest.String()]}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got, err := testEngine(ecr, nil).SourceReferrers(context.Background(), testSource, []string{idx}, ReferrerQuery{ArtifactTypes: tc.types})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got.BySubject, tc.want) {
						t.Errorf("referrers %v, want %v", got.BySubject, tc.want)
					}
					if want := map[string][]string{idx: {amd, arm}}; !reflect.DeepEqual(got.Platforms, want) {
						t.Errorf("platforms %v, want %v", got.Platforms, want)
					}
				})
			}
		})
	}
}

// A digest's platforms, once known, are not read from ECR again: a no-op plan
// lists referrers, one request per subject, and reads no manifest.
func TestSourceReferrersKnownPlatformsReadNoManifest(t *testing.T) {
	ecr := newTestRegistry(t, true)
	s := pushSignedIndex(newPusher(t, ecr, "app"), "v1")
	image := newPusher(t, ecr, "app").image("s390x")
	tagged := []string{s.index.Digest.String(), image.Digest.String()}
	first, err := testEngine(ecr, nil).SourceReferrers(context.Background(), testSource, tagged, ReferrerQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Platforms[image.Digest.String()]; got == nil || len(got) != 0 {
		t.Errorf("platforms of an image %v, want an empty list (known to have none)", got)
	}
	ecr.reset()
	again, err := testEngine(ecr, nil).SourceReferrers(context.Background(), testSource, tagged, ReferrerQuery{Platforms: first.Platforms})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.BySubject, first.BySubject) {
		t.Errorf("with known platforms %v, want %v", again.BySubject, first.BySubject)
	}
	if n := ecr.requests("GET manifests"); n != 0 {
		t.Errorf("%d manifest GETs with every platform known, want 0", n)
	}
	// One referrers list each for the index, its 2 platforms, the image, and
	// the 4 referrers found (referrers of referrers).
	if n := ecr.requests("GET referrers"); n != 8 {
		t.Errorf("%d referrers requests, want 8", n)
	}
}

// A fallback tag written by a tool that leaves artifactType out of its
// descriptors: the filter reads the referrer's manifest for its type.
func TestSourceReferrersFallbackWithoutArtifactType(t *testing.T) {
	ecr := newTestRegistry(t, false)
	p := newPusher(t, ecr, "app")
	img := p.image("amd64")
	prov := p.artifact(img, "", provenance, "provenance")
	sig := p.artifact(img, signatureType, "", "signature")
	prov.ArtifactType, sig.ArtifactType = "", ""
	fallback, err := referrer.FallbackTag(p.repo.SetDigest(img.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	p.put(v1.Index{Versioned: v1.IndexSchemaVersion, MediaType: mediatype.OCI1ManifestList, Manifests: []descriptor.Descriptor{prov, sig}}, fallback.Tag)

	got, err := testEngine(ecr, nil).SourceReferrers(context.Background(), testSource, []string{img.Digest.String()}, ReferrerQuery{ArtifactTypes: []string{provenance}})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{img.Digest.String(): {prov.Digest.String()}}; !reflect.DeepEqual(got.BySubject, want) {
		t.Errorf("referrers %v, want %v", got.BySubject, want)
	}
}

// The referrers of an index's platforms land by digest, each after its
// subject; on a target that keeps sha256-<hex> tags as tags, the fallback
// tags list them as they do in the source.
func TestMirrorCopiesReferrersOfPlatforms(t *testing.T) {
	ecr, gitlab := newTestRegistry(t, true), newTestRegistry(t, false)
	s := pushSignedIndex(newPusher(t, ecr, "app"), "v1")
	e := testEngine(ecr, gitlab)
	ctx := context.Background()
	found, err := e.SourceReferrers(ctx, testSource, []string{s.index.Digest.String()}, ReferrerQuery{})
	if err != nil {
		t.Fatal(err)
	}
	target := gitlab.host + "/group/project/app"
	res := e.Mirror(ctx, Request{Source: testSource, Target: target, Want: map[string]string{"v1": s.index.Digest.String()}, Referrers: found.BySubject})
	if len(res.Failed) > 0 || len(res.ReferrerFailed) > 0 {
		t.Fatalf("failed: tags %v, referrers %v", res.Failed, res.ReferrerFailed)
	}
	if !reflect.DeepEqual(res.Referrers, found.BySubject) {
		t.Errorf("copied %v, want %v", res.Referrers, found.BySubject)
	}
	check := newPusher(t, gitlab, "group/project/app")
	for subject, refs := range found.BySubject {
		rl, err := check.rc.ReferrerList(ctx, check.repo.SetDigest(subject))
		if err != nil {
			t.Fatalf("referrers of %s in the target: %v", subject, err)
		}
		var listed []string
		for _, d := range rl.Descriptors {
			listed = append(listed, d.Digest.String())
		}
		if !reflect.DeepEqual(listed, refs) {
			t.Errorf("fallback tag of %s lists %v, want %v", subject, listed, refs)
		}
	}
	// Again: everything is there, nothing is written.
	gitlab.reset()
	res = e.Mirror(ctx, Request{Source: testSource, Target: target, Want: map[string]string{"v1": s.index.Digest.String()},
		Current: map[string]string{"v1": s.index.Digest.String()}, Referrers: found.BySubject})
	if len(res.ReferrerFailed) > 0 || res.Stats.Referrers != 0 || gitlab.requests("PUT manifests") != 0 {
		t.Errorf("second run: failed %v, %d referrers copied, %d manifest PUTs; want none", res.ReferrerFailed, res.Stats.Referrers, gitlab.requests("PUT manifests"))
	}
}

func TestReferrerOrder(t *testing.T) {
	planned := map[string][]string{
		"idx": {"prov"}, "amd": {"sig-a"}, "arm": {"sbom"}, "sbom": {"sig-sbom"},
	}
	got := referrerOrder(planned)
	pos := map[string]int{}
	for i, s := range got {
		pos[s] = i
	}
	if len(got) != 4 || pos["arm"] > pos["sbom"] {
		t.Errorf("order %v: every subject once, the SBOM after its image", got)
	}
	if roots := referrerRoots(planned); !reflect.DeepEqual(roots, []string{"amd", "arm", "idx"}) {
		t.Errorf("roots %v", roots)
	}
}

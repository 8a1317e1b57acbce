package localenv

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"
)

// ImageSpec describes an image to generate.
type ImageSpec struct {
	OCI          bool    // OCI media types, else Docker v2 schema2
	Platforms    int     // 0/1 = single image, 2 = index/manifest list (amd64+arm64), up to 5
	BaseLayers   []Layer // shared layers (same bytes -> same digest across repos)
	OwnLayerSize int64   // random layer unique to this image (default 64 KiB)
	Referrer     bool    // push a signature-like referrer whose subject is the image
	// PlatformReferrers pushes a signature-like referrer on each platform
	// manifest of an index, as cosign sign --recursive does.
	PlatformReferrers bool
	Seed              int64 // randomness for the own layer; 0 = random
}

// Layer is a blob of deterministic pseudo-random bytes: equal Layers have
// equal digests.
type Layer struct {
	Size int64
	Seed int64
}

// Image is what a push produced.
type Image struct {
	Repository     string
	Tag            string
	Digest         string // of the tagged manifest (the index for multi-platform)
	MediaType      string
	Platforms      int
	ReferrerDigest string // the referrer manifest, if any
	// PlatformReferrers maps each platform manifest of an index to its
	// referrer (ImageSpec.PlatformReferrers).
	PlatformReferrers map[string]string
	Bytes             int64 // manifests + configs + layers, without the referrer
}

// ReferrerArtifactType is the artifactType of generated referrers.
const ReferrerArtifactType = "application/vnd.dev.cosign.simplesigning.v1+json"

var platforms = []struct{ arch, variant string }{
	{"amd64", ""}, {"arm64", "v8"}, {"arm", "v7"}, {"ppc64le", ""}, {"s390x", ""},
}

// Sample base layers shared by every seeded repository.
var sampleBase = []Layer{{Size: 512 << 10, Seed: 1001}, {Size: 512 << 10, Seed: 1002}}

// reader returns the layer's bytes as a stream: nothing is held in memory,
// so layers of a GiB are fine.
func (l Layer) reader() io.Reader {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(l.Seed)) //nolint:gosec // the seed's bits, whatever its sign
	copy(seed[8:], "imagesync-localenv-layer")
	return io.LimitReader(rand.NewChaCha8(seed), l.Size)
}

func (e *Env) layerDigest(l Layer) (digest.Digest, error) {
	e.layerMu.Lock()
	if e.layerDigs == nil {
		e.layerDigs = map[Layer]string{}
	}
	d, ok := e.layerDigs[l]
	e.layerMu.Unlock()
	if ok {
		return digest.Digest(d), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, l.reader()); err != nil {
		return "", err
	}
	d = "sha256:" + hex.EncodeToString(h.Sum(nil))
	e.layerMu.Lock()
	e.layerDigs[l] = d
	e.layerMu.Unlock()
	return digest.Digest(d), nil
}

var (
	rcMu    sync.Mutex
	rcCache = map[string]*regclient.RegClient{}
)

// regClient returns a client that knows both registries' credentials. Cached
// per credential set so token and connection reuse work across pushes.
func (e *Env) regClient() *regclient.RegClient {
	key := e.ECRRegistryEndpoint + "|" + e.ECRPassword + "|" + e.GitLabRegistryHost + "|" + e.GitLabToken
	rcMu.Lock()
	defer rcMu.Unlock()
	if rc, ok := rcCache[key]; ok {
		return rc
	}
	var hosts []config.Host
	if h := hostOf(e.ECRRegistryEndpoint); h != "" {
		hosts = append(hosts, config.Host{Name: h, TLS: tlsOf(e.ECRRegistryEndpoint), User: "AWS", Pass: e.ECRPassword})
	}
	if e.GitLabRegistryHost != "" {
		hosts = append(hosts, config.Host{Name: e.GitLabRegistryHost, TLS: tlsOf(e.GitLabRegistryURL), User: "root", Pass: e.GitLabToken})
	}
	rc := regclient.New(
		regclient.WithConfigHost(hosts...),
		// The environment's client trusts its CA without regclient's
		// RegCert, which would load the system pool in this process.
		regclient.WithRegOpts(reg.WithHTTPClient(e.HTTPClient())),
		regclient.WithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))),
		regclient.WithUserAgent("imagesync-localenv"),
	)
	rcCache[key] = rc
	return rc
}

// tlsOf is regclient's TLS setting for an endpoint URL.
func tlsOf(endpoint string) config.TLSConf {
	if strings.HasPrefix(endpoint, "http://") {
		return config.TLSDisabled
	}
	return config.TLSEnabled
}

func hostOf(endpoint string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	return strings.TrimSuffix(h, "/")
}

// RegistryClient is the regclient used for pushes; refs are
// "<ECR registry endpoint host>/repo:tag" or "<GitLabRegistryHost>/path:tag".
func (e *Env) RegistryClient() *regclient.RegClient { return e.regClient() }

// ECRRef is the regclient reference of repo:tag at the ECR registry proxy.
func (e *Env) ECRRef(repo, tag string) (ref.Ref, error) {
	return ref.New(hostOf(e.ECRRegistryEndpoint) + "/" + repo + ":" + tag)
}

// GitLabRef is the regclient reference of path:tag at the GitLab registry proxy.
func (e *Env) GitLabRef(path, tag string) (ref.Ref, error) {
	return ref.New(e.GitLabRegistryHost + "/" + path + ":" + tag)
}

// PushECRImage generates an image, pushes it to the ECR registry and records
// it in moto (with the admin key) under the same digest.
func (e *Env) PushECRImage(ctx context.Context, repo, tag string, spec ImageSpec) (Image, error) {
	r, err := e.ECRRef(repo, tag)
	if err != nil {
		return Image{}, err
	}
	img, raw, err := e.pushImage(ctx, r, spec)
	if err != nil {
		return Image{}, fmt.Errorf("push %s:%s to ECR registry: %w", repo, tag, err)
	}
	img.Repository = repo
	if err := e.recordECR(ctx, repo, tag, raw, img.MediaType, img.Digest); err != nil {
		return Image{}, err
	}
	return img, nil
}

// PushGitLabImage pushes a generated image straight into the GitLab registry
// (imagePath like "migration/images/web").
func (e *Env) PushGitLabImage(ctx context.Context, imagePath, tag string, spec ImageSpec) (Image, error) {
	r, err := e.GitLabRef(imagePath, tag)
	if err != nil {
		return Image{}, err
	}
	img, _, err := e.pushImage(ctx, r, spec)
	if err != nil {
		return Image{}, fmt.Errorf("push %s:%s to GitLab registry: %w", imagePath, tag, err)
	}
	img.Repository = imagePath
	return img, nil
}

// TagECRImage puts the manifest of existingTag under newTag, in the registry
// and in moto.
func (e *Env) TagECRImage(ctx context.Context, repo, existingTag, newTag string) (Image, error) {
	rc := e.regClient()
	src, err := e.ECRRef(repo, existingTag)
	if err != nil {
		return Image{}, err
	}
	m, err := rc.ManifestGet(ctx, src)
	if err != nil {
		return Image{}, fmt.Errorf("get %s:%s: %w", repo, existingTag, err)
	}
	raw, err := m.RawBody()
	if err != nil {
		return Image{}, err
	}
	d := m.GetDescriptor()
	dst := src.SetTag(newTag)
	if err := e.putManifest(ctx, dst, raw, d.MediaType); err != nil {
		return Image{}, fmt.Errorf("tag %s:%s: %w", repo, newTag, err)
	}
	if err := e.recordECR(ctx, repo, newTag, raw, d.MediaType, d.Digest.String()); err != nil {
		return Image{}, err
	}
	img := Image{Repository: repo, Tag: newTag, Digest: d.Digest.String(), MediaType: d.MediaType, Platforms: 1}
	img.Bytes, img.Platforms = e.sizeOf(ctx, src, raw)
	for _, s := range e.Seeded {
		if s.Repository == repo && s.Digest == img.Digest {
			img.ReferrerDigest = s.ReferrerDigest
		}
	}
	return img, nil
}

// sizeOf sums a manifest and what it references (children fetched).
func (e *Env) sizeOf(ctx context.Context, r ref.Ref, raw []byte) (int64, int) {
	var m struct {
		Config    *struct{ Size int64 }
		Layers    []struct{ Size int64 }
		Manifests []struct {
			Digest string
			Size   int64
		}
	}
	_ = json.Unmarshal(raw, &m)
	total := int64(len(raw))
	if m.Config != nil {
		total += m.Config.Size
	}
	for _, l := range m.Layers {
		total += l.Size
	}
	for _, c := range m.Manifests {
		cm, err := e.regClient().ManifestGet(ctx, r.SetDigest(c.Digest))
		if err != nil {
			continue
		}
		craw, _ := cm.RawBody()
		n, _ := e.sizeOf(ctx, r, craw)
		total += n
	}
	if len(m.Manifests) > 0 {
		return total, len(m.Manifests)
	}
	return total, 1
}

// retryCutShort repeats a moto call whose response was cut short, up to three tries.
func retryCutShort(call func() error) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = call(); err == nil || !strings.Contains(err.Error(), "deserialization failed") {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// recordECR makes moto know the image as ECR would after a push; an empty
// tag records it untagged.
func (e *Env) recordECR(ctx context.Context, repo, tag string, raw []byte, mediaType, dig string) error {
	c := e.ECRClient(ctx, true)
	err := retryCutShort(func() error {
		_, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo)})
		return err
	})
	var exists *ecrtypes.RepositoryAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("moto CreateRepository %s: %w", repo, err)
	}
	// A repeated PutImage of the same image and tag is harmless (ImageAlreadyExists).
	err = retryCutShort(func() error {
		_, err := c.PutImage(ctx, &ecr.PutImageInput{
			RepositoryName:         aws.String(repo),
			ImageManifest:          aws.String(string(raw)),
			ImageManifestMediaType: aws.String(mediaType),
			ImageTag:               tagOrNil(tag),
			ImageDigest:            aws.String(dig),
		})
		return err
	})
	var already *ecrtypes.ImageAlreadyExistsException
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("moto PutImage %s:%s: %w", repo, tag, err)
	}
	return nil
}

// tagOrNil is tag for an AWS input, nil when empty (an untagged image).
func tagOrNil(tag string) *string {
	if tag == "" {
		return nil
	}
	return aws.String(tag)
}

type ociDesc struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	Platform     *ociPlatform      `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type imageManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        ociDesc           `json:"config"`
	Layers        []ociDesc         `json:"layers"`
	Subject       *ociDesc          `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type indexManifest struct {
	SchemaVersion int       `json:"schemaVersion"`
	MediaType     string    `json:"mediaType"`
	Manifests     []ociDesc `json:"manifests"`
}

// pushImage pushes spec to r (which carries the tag) and returns the image
// and the exact bytes of the tagged manifest.
func (e *Env) pushImage(ctx context.Context, r ref.Ref, spec ImageSpec) (Image, []byte, error) {
	if spec.OwnLayerSize <= 0 {
		spec.OwnLayerSize = 64 << 10
	}
	if spec.Seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		spec.Seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		if spec.Seed == 0 {
			spec.Seed = 1
		}
	}
	n := max(spec.Platforms, 1)
	if n > len(platforms) {
		return Image{}, nil, fmt.Errorf("at most %d platforms", len(platforms))
	}
	img := Image{Tag: r.Tag, Platforms: n}
	var raw []byte
	if n == 1 {
		var err error
		raw, img.MediaType, img.Bytes, err = e.pushSingle(ctx, r, spec, 0)
		if err != nil {
			return Image{}, nil, err
		}
	} else {
		idx := indexManifest{SchemaVersion: 2, MediaType: mediatype.Docker2ManifestList}
		if spec.OCI {
			idx.MediaType = mediatype.OCI1ManifestList
		}
		for i := range n {
			craw, cmt, cbytes, err := e.pushSingle(ctx, r, spec, i)
			if err != nil {
				return Image{}, nil, err
			}
			img.Bytes += cbytes
			p := platforms[i]
			child := ociDesc{MediaType: cmt, Digest: digest.FromBytes(craw).String(), Size: int64(len(craw))}
			if err := e.signPlatform(ctx, r, spec, child, &img); err != nil {
				return Image{}, nil, err
			}
			child.Platform = &ociPlatform{Architecture: p.arch, OS: "linux", Variant: p.variant}
			idx.Manifests = append(idx.Manifests, child)
		}
		var err error
		if raw, err = json.MarshalIndent(idx, "", "   "); err != nil {
			return Image{}, nil, err
		}
		img.MediaType = idx.MediaType
		if err := e.putManifest(ctx, r, raw, idx.MediaType); err != nil {
			return Image{}, nil, err
		}
		img.Bytes += int64(len(raw))
	}
	img.Digest = digest.FromBytes(raw).String()
	if spec.Referrer {
		rd, err := e.pushReferrer(ctx, r, ociDesc{MediaType: img.MediaType, Digest: img.Digest, Size: int64(len(raw))}, "")
		if err != nil {
			return Image{}, nil, fmt.Errorf("referrer: %w", err)
		}
		img.ReferrerDigest = rd
	}
	return img, raw, nil
}

// signPlatform pushes, with spec.PlatformReferrers, a referrer whose subject
// is the platform manifest child, and records it in img.
func (e *Env) signPlatform(ctx context.Context, r ref.Ref, spec ImageSpec, child ociDesc, img *Image) error {
	if !spec.PlatformReferrers {
		return nil
	}
	rd, err := e.pushReferrer(ctx, r, child, child.Digest)
	if err != nil {
		return fmt.Errorf("referrer of platform %s: %w", child.Digest, err)
	}
	if img.PlatformReferrers == nil {
		img.PlatformReferrers = map[string]string{}
	}
	img.PlatformReferrers[child.Digest] = rd
	return nil
}

// pushSingle pushes the image for platform index pi. With one platform the
// manifest goes to r's tag, otherwise by digest (an index child).
func (e *Env) pushSingle(ctx context.Context, r ref.Ref, spec ImageSpec, pi int) ([]byte, string, int64, error) {
	mt, cfgMT, layerMT := mediatype.Docker2Manifest, mediatype.Docker2ImageConfig, mediatype.Docker2LayerGzip
	if spec.OCI {
		mt, cfgMT, layerMT = mediatype.OCI1Manifest, mediatype.OCI1ImageConfig, mediatype.OCI1LayerGzip
	}
	layers := append(append([]Layer{}, spec.BaseLayers...), Layer{Size: spec.OwnLayerSize, Seed: spec.Seed + int64(pi)*7919})
	m := imageManifest{SchemaVersion: 2, MediaType: mt}
	var diffIDs []string
	var total int64
	for _, l := range layers {
		d, err := e.pushLayer(ctx, r, layerMT, l)
		if err != nil {
			return nil, "", 0, err
		}
		m.Layers = append(m.Layers, d)
		// The bytes are not really gzip, so the "uncompressed" digest is the
		// blob's own digest; nothing here unpacks layers.
		diffIDs = append(diffIDs, d.Digest)
		total += d.Size
	}
	p := platforms[pi]
	cfg := map[string]any{
		"architecture": p.arch,
		"os":           "linux",
		"created":      "2024-01-01T00:00:00Z",
		"config": map[string]any{
			"Env":    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd":    []string{"/bin/sh"},
			"Labels": map[string]string{"dev.imagesync.localenv.seed": fmt.Sprint(spec.Seed)},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": []map[string]string{{"created": "2024-01-01T00:00:00Z", "created_by": "imagesync localenv"}},
	}
	if p.variant != "" {
		cfg["variant"] = p.variant
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, "", 0, err
	}
	m.Config, err = e.pushBytes(ctx, r, cfgMT, cfgRaw)
	if err != nil {
		return nil, "", 0, err
	}
	total += m.Config.Size
	raw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return nil, "", 0, err
	}
	target := r
	if max(spec.Platforms, 1) > 1 {
		target = r.SetDigest(digest.FromBytes(raw).String())
	}
	if err := e.putManifest(ctx, target, raw, mt); err != nil {
		return nil, "", 0, err
	}
	return raw, mt, total + int64(len(raw)), nil
}

// pushReferrer pushes a cosign-like signature artifact whose subject is
// subject. distribution 2.8 has no referrers API, so regclient also
// maintains the "sha256-<hex>" fallback tag.
func (e *Env) pushReferrer(ctx context.Context, r ref.Ref, subject ociDesc, nonce string) (string, error) {
	cfg, err := e.pushBytes(ctx, r, mediatype.OCI1Empty, []byte("{}"))
	if err != nil {
		return "", err
	}
	var optional map[string]string
	if nonce != "" {
		optional = map[string]string{"nonce": nonce}
	}
	payload, _ := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": r.CommonName()},
			"image":    map[string]string{"docker-manifest-digest": subject.Digest},
			"type":     "cosign container image signature",
		},
		"optional": optional,
	})
	layer, err := e.pushBytes(ctx, r, ReferrerArtifactType, payload)
	if err != nil {
		return "", err
	}
	layer.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "bG9jYWxlbnY="}
	m := imageManifest{
		SchemaVersion: 2, MediaType: mediatype.OCI1Manifest, ArtifactType: ReferrerArtifactType,
		Config: cfg, Layers: []ociDesc{layer}, Subject: &subject,
		Annotations: map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
	}
	raw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return "", err
	}
	d := digest.FromBytes(raw).String()
	if err := e.putManifest(ctx, r.SetDigest(d), raw, mediatype.OCI1Manifest); err != nil {
		return "", err
	}
	return d, nil
}

func (e *Env) putManifest(ctx context.Context, r ref.Ref, raw []byte, mt string) error {
	m, err := manifest.New(manifest.WithRaw(raw), manifest.WithDesc(descriptor.Descriptor{
		MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw)),
	}))
	if err != nil {
		return err
	}
	return e.regClient().ManifestPut(ctx, r, m)
}

// pushLayer streams a generated layer: one pass to hash it (cached), a second
// to upload it; skipped when the repository already has it.
func (e *Env) pushLayer(ctx context.Context, r ref.Ref, mt string, l Layer) (ociDesc, error) {
	d, err := e.layerDigest(l)
	if err != nil {
		return ociDesc{}, err
	}
	desc := descriptor.Descriptor{MediaType: mt, Digest: d, Size: l.Size}
	rc := e.regClient()
	if br, err := rc.BlobHead(ctx, r, desc); err == nil {
		_ = br.Close()
	} else if _, err := rc.BlobPut(ctx, r, desc, l.reader()); err != nil {
		return ociDesc{}, fmt.Errorf("blob %s: %w", d, err)
	}
	return ociDesc{MediaType: mt, Digest: d.String(), Size: l.Size}, nil
}

func (e *Env) pushBytes(ctx context.Context, r ref.Ref, mt string, b []byte) (ociDesc, error) {
	d := digest.FromBytes(b)
	desc := descriptor.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	if _, err := e.regClient().BlobPut(ctx, r, desc, bytes.NewReader(b)); err != nil {
		return ociDesc{}, fmt.Errorf("blob %s: %w", d, err)
	}
	return ociDesc{MediaType: mt, Digest: d.String(), Size: int64(len(b))}, nil
}

// SeedSamples pushes the standard sample set to ECR (see the package tests
// and the README of the demo) and appends it to e.Seeded.
func (e *Env) SeedSamples(ctx context.Context) ([]Image, error) {
	type step struct {
		repo, tag string
		spec      ImageSpec
		tagOf     string // TagECRImage from this tag instead of pushing
	}
	steps := []step{
		{repo: "web", tag: "v1.0", spec: ImageSpec{BaseLayers: sampleBase, Seed: 11}},
		{repo: "web", tag: "v1.1", spec: ImageSpec{BaseLayers: sampleBase, Seed: 12}},
		{repo: "web", tag: "latest", tagOf: "v1.1"},
		{repo: "team/api", tag: "v1", spec: ImageSpec{OCI: true, BaseLayers: sampleBase, Seed: 21}},
		{repo: "team/api", tag: "v2", spec: ImageSpec{OCI: true, BaseLayers: sampleBase, Seed: 22}},
		{repo: "team/worker", tag: "1.0", spec: ImageSpec{Platforms: 2, BaseLayers: sampleBase, Seed: 31}},
		{repo: "team/worker", tag: "1.0-oci", spec: ImageSpec{OCI: true, Platforms: 2, BaseLayers: sampleBase, Seed: 32}},
		{repo: "signed/app", tag: "v1", spec: ImageSpec{OCI: true, BaseLayers: sampleBase, Seed: 41, Referrer: true}},
	}
	var out []Image
	for _, s := range steps {
		var img Image
		var err error
		if s.tagOf != "" {
			img, err = e.TagECRImage(ctx, s.repo, s.tagOf, s.tag)
		} else {
			img, err = e.PushECRImage(ctx, s.repo, s.tag, s.spec)
		}
		if err != nil {
			return out, err
		}
		e.logf("seeded %s:%s %s", s.repo, s.tag, img.Digest)
		out = append(out, img)
		e.Seeded = append(e.Seeded, img)
	}
	return out, nil
}

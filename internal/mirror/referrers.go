package mirror

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	v1 "github.com/regclient/regclient/types/oci/v1"
	"github.com/regclient/regclient/types/ref"
	"github.com/regclient/regclient/types/referrer"
	"golang.org/x/sync/errgroup"
)

// maxReferrerDepth bounds how far referrers of referrers are followed (a
// signature of an SBOM of an image is depth 2).
const maxReferrerDepth = 3

// ReferrerQuery says which referrers SourceReferrers looks for.
type ReferrerQuery struct {
	// ArtifactTypes keeps only referrers of these artifact types (and the
	// referrers of those in turn), as regsync's referrerFilters do; empty
	// keeps every referrer.
	ArtifactTypes []string
	// Platforms is what an earlier call returned: a manifest never changes
	// under its digest, so only tagged digests missing here are read from ECR.
	Platforms map[string][]string
	// Manifests is every manifest the ECR repository holds, from its
	// ListImages (untagged images included), or nil when unknown: a
	// repository with none besides the subjects has no referrer to list (see
	// referrer_candidates.go).
	Manifests []string
}

// Referrers is what SourceReferrers found.
type Referrers struct {
	// BySubject maps a subject digest (a tagged digest, a platform manifest
	// inside one, or a referrer) to its sorted referrer digests; subjects
	// without referrers are left out.
	BySubject map[string][]string
	// Platforms maps each tagged digest to the manifests inside it (every
	// platform of an index, nested indexes followed); empty for an image.
	Platforms map[string][]string
}

// SourceReferrers lists the artifacts (signatures, SBOMs, attestations) that
// refer to the tagged digests of an ECR repository and to every platform
// manifest inside them, and theirs in turn. ECR answers through the OCI
// referrers API; a registry without one through the sha256-<hex> fallback
// tag, which counts only when it is an index: a tag of that name on an
// ordinary image is just a tag.
func (e *Engine) SourceReferrers(ctx context.Context, source string, tagged []string, q ReferrerQuery) (Referrers, error) {
	src, err := e.sourceRef(ctx, source)
	if err != nil {
		return Referrers{}, err
	}
	platforms, err := e.platformsOf(ctx, src, tagged, q.Platforms)
	if err != nil {
		return Referrers{}, err
	}
	subjects := Subjects(tagged, platforms)
	if !MayHaveReferrers(q.Manifests, subjects) {
		return Referrers{BySubject: map[string][]string{}, Platforms: platforms}, nil
	}
	slices.Sort(subjects)
	bySubject, err := e.referrersOf(ctx, src, slices.Compact(subjects), q.ArtifactTypes)
	if err != nil {
		return Referrers{}, err
	}
	return Referrers{BySubject: bySubject, Platforms: platforms}, nil
}

// referrersOf lists the referrers of subjects, and of those referrers in
// turn, down to maxReferrerDepth.
func (e *Engine) referrersOf(ctx context.Context, src ref.Ref, subjects, artifactTypes []string) (map[string][]string, error) {
	var (
		mu  sync.Mutex
		out = map[string][]string{}
	)
	level := subjects
	for depth := 0; depth < maxReferrerDepth && len(level) > 0; depth++ {
		var next []string
		var g errgroup.Group
		g.SetLimit(headsInFlight)
		for _, subject := range level {
			g.Go(func() error {
				refs, err := e.listReferrers(ctx, src, subject, artifactTypes)
				if err != nil {
					return fmt.Errorf("listing the referrers of %s in ECR: %w", src.SetDigest(subject).CommonName(), err)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(refs) > 0 {
					out[subject] = refs
					next = append(next, refs...)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		level = next
	}
	return out, nil
}

// listReferrers lists the direct referrers of one subject of the wanted
// artifact types, never the subject itself or its own platforms.
func (e *Engine) listReferrers(ctx context.Context, src ref.Ref, subject string, artifactTypes []string) ([]string, error) {
	rc := e.client()
	var rl referrer.ReferrerList
	err := call(ctx, SideECR, func(ctx context.Context) (err error) {
		rl, err = rc.ReferrerList(ctx, src.SetDigest(subject))
		return err
	})
	if err != nil {
		if e.fallbackTagIsNotAnIndex(ctx, rc, src, subject) {
			return nil, nil
		}
		return nil, err
	}
	if rl.Manifest != nil && rl.Manifest.GetDescriptor().Digest.String() == subject {
		return nil, nil // the fallback tag names the subject itself
	}
	var refs []string
	for _, d := range rl.Descriptors {
		if dig := d.Digest.String(); dig != subject {
			wanted, err := e.artifactTypeWanted(ctx, src, d, artifactTypes)
			if err != nil {
				return nil, err
			}
			if wanted {
				refs = append(refs, dig)
			}
		}
	}
	sort.Strings(refs)
	return refs, nil
}

// artifactTypeWanted tells whether a referrer is of a wanted artifact type.
// A descriptor without one (a fallback tag written by a tool that leaves it
// out) is looked up in the referrer's manifest.
func (e *Engine) artifactTypeWanted(ctx context.Context, src ref.Ref, d descriptor.Descriptor, artifactTypes []string) (bool, error) {
	if len(artifactTypes) == 0 {
		return true, nil
	}
	at := d.ArtifactType
	if at == "" {
		m, err := e.readSourceManifest(ctx, src.SetDigest(d.Digest.String()))
		if err != nil {
			return false, fmt.Errorf("reading referrer %s to learn its artifact type: %w", d.Digest, err)
		}
		at = artifactTypeOf(m)
	}
	return slices.Contains(artifactTypes, at), nil
}

// artifactTypeOf is a manifest's artifactType or, for an image manifest
// without one, its config's media type, as the OCI distribution spec has the
// referrers API report it.
func artifactTypeOf(m manifest.Manifest) string {
	switch orig := m.GetOrig().(type) {
	case v1.Manifest:
		if orig.ArtifactType != "" {
			return orig.ArtifactType
		}
		return orig.Config.MediaType
	case v1.Index:
		return orig.ArtifactType
	case v1.ArtifactManifest:
		return orig.ArtifactType
	}
	return ""
}

// fallbackTagIsNotAnIndex tells whether the subject's sha256-<hex> tag holds
// something other than an OCI index: an ordinary image someone tagged so,
// which regclient would refuse as a referrers list.
func (e *Engine) fallbackTagIsNotAnIndex(ctx context.Context, rc *regclient.RegClient, src ref.Ref, subject string) bool {
	tag, err := referrer.FallbackTag(src.SetDigest(subject))
	if err != nil {
		return false
	}
	var m manifest.Manifest
	err = call(ctx, SideECR, func(ctx context.Context) (err error) {
		m, err = rc.ManifestHead(ctx, tag)
		return err
	})
	return err == nil && m.GetDescriptor().MediaType != mediatype.OCI1ManifestList
}

// tagSchemeUsable tells whether the target registry keeps a referrer's
// sha256-<hex> fallback tag as a tag. GitLab reads that reference as the
// digest sha256:<hex> (so it answers with the subject itself and refuses to
// write it); there referrers are pushed by digest only. Asked once per host,
// with the subject in place.
func (e *Engine) tagSchemeUsable(ctx context.Context, rc *regclient.RegClient, tgt ref.Ref, m manifest.Manifest) bool {
	if known, ok := e.tagScheme.Load(tgt.Registry); ok {
		return known.(bool) //nolint:forcetypeassert // only bools are stored
	}
	sj, _ := m.(manifest.Subjecter)
	subject, err := sj.GetSubject()
	if err != nil || subject == nil {
		return false
	}
	tag, err := referrer.FallbackTag(tgt.SetDigest(subject.Digest.String()))
	if err != nil {
		return false
	}
	var got manifest.Manifest
	err = call(ctx, SideGitLab, func(ctx context.Context) (err error) {
		got, err = rc.ManifestHead(ctx, tag, regclient.WithManifestRequireDigest())
		return err
	})
	var usable bool
	switch {
	case err == nil:
		usable = got.GetDescriptor().Digest != subject.Digest
	case isNotFound(err):
		usable = true
	default:
		return false // unsure: by digest only, and ask again next time
	}
	e.tagScheme.Store(tgt.Registry, usable)
	return usable
}

func hasSubject(m manifest.Manifest) bool {
	sj, ok := m.(manifest.Subjecter)
	if !ok {
		return false
	}
	d, err := sj.GetSubject()
	return err == nil && d != nil
}

// withoutSubject hides a manifest's subject from regclient, which would
// otherwise also write the subject's fallback tag; the bytes, and so the
// digest, are unchanged.
type withoutSubject struct{ manifest.Manifest }

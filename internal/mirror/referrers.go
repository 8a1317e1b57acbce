package mirror

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"
	"github.com/regclient/regclient/types/referrer"
	"golang.org/x/sync/errgroup"
)

// maxReferrerDepth bounds how far referrers of referrers are followed (a
// signature of an SBOM of an image is depth 2).
const maxReferrerDepth = 3

// SourceReferrers lists, for each subject digest of an ECR repository, the
// artifacts that refer to it (signatures, SBOMs, attestations), and theirs in
// turn: subject -> sorted referrer digests; subjects without referrers are
// left out. ECR answers through the OCI referrers API; a registry without
// one through the sha256-<hex> fallback tag, which counts only when it is an
// index: a tag of that name on an ordinary image is just a tag.
func (e *Engine) SourceReferrers(ctx context.Context, source string, subjects []string) (map[string][]string, error) {
	src, err := e.sourceRef(ctx, source)
	if err != nil {
		return nil, err
	}
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
				refs, err := e.listReferrers(ctx, src, subject)
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

// listReferrers lists the direct referrers of one subject, never the
// subject itself or its own platforms.
func (e *Engine) listReferrers(ctx context.Context, src ref.Ref, subject string) ([]string, error) {
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
			refs = append(refs, dig)
		}
	}
	sort.Strings(refs)
	return refs, nil
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

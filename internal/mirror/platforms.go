package mirror

import (
	"context"
	"fmt"
	"sync"

	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"
)

// Platforms maps each tagged digest of an ECR repository to the manifests
// inside it (as Referrers.Platforms), reading from ECR only the digests known
// does not hold.
func (e *Engine) Platforms(ctx context.Context, source string, tagged []string, known map[string][]string) (map[string][]string, error) {
	src, err := e.sourceRef(ctx, source)
	if err != nil {
		return nil, err
	}
	return e.platformsOf(ctx, src, tagged, known)
}

// platformsOf maps each tagged digest to the manifests inside it, reading
// from ECR only the digests known does not hold.
func (e *Engine) platformsOf(ctx context.Context, src ref.Ref, tagged []string, known map[string][]string) (map[string][]string, error) {
	var (
		mu  sync.Mutex
		out = make(map[string][]string, len(tagged))
		g   errgroup.Group
	)
	g.SetLimit(headsInFlight)
	for _, dig := range tagged {
		if inside, ok := known[dig]; ok {
			out[dig] = inside
			continue
		}
		g.Go(func() error {
			inside, err := e.manifestsInside(ctx, src, dig)
			if err != nil {
				return fmt.Errorf("reading the platforms of %s in ECR: %w", src.SetDigest(dig).CommonName(), err)
			}
			mu.Lock()
			defer mu.Unlock()
			out[dig] = inside
			return nil
		})
	}
	return out, g.Wait()
}

// manifestsInside lists the manifests an index holds, and theirs when one
// is an index itself; an empty list for an image.
func (e *Engine) manifestsInside(ctx context.Context, src ref.Ref, dig string) ([]string, error) {
	m, err := e.readSourceManifest(ctx, src.SetDigest(dig))
	if err != nil {
		return nil, err
	}
	inside := []string{}
	idx, ok := m.(manifest.Indexer)
	if !ok {
		return inside, nil
	}
	list, err := idx.GetManifestList()
	if err != nil {
		return nil, err
	}
	for _, d := range list {
		inside = append(inside, d.Digest.String())
		if isIndex(d.MediaType) {
			nested, err := e.manifestsInside(ctx, src, d.Digest.String())
			if err != nil {
				return nil, err
			}
			inside = append(inside, nested...)
		}
	}
	return inside, nil
}

func isIndex(mediaType string) bool {
	mt := mediatype.Base(mediaType)
	return mt == mediatype.OCI1ManifestList || mt == mediatype.Docker2ManifestList
}

// readSourceManifest reads the manifest at r (a digest) from ECR, and checks
// that the registry served the bytes of that digest. A manifest read once is
// kept: the bytes of a digest never change, and the plan Terraform makes
// right before the copy reads the same manifests (referrers, platforms).
func (e *Engine) readSourceManifest(ctx context.Context, r ref.Ref) (manifest.Manifest, error) {
	key := r.CommonName()
	if m, ok := e.manifests.Get(key); ok {
		return m, nil
	}
	var m manifest.Manifest
	err := call(ctx, SideECR, func(ctx context.Context) (err error) {
		m, err = e.client().ManifestGet(ctx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s from %s: %w", r.Digest, SideECR, err)
	}
	if got := m.GetDescriptor().Digest.String(); got != r.Digest {
		return nil, &SideError{Side: SideECR, Err: fmt.Errorf("%s served %s for manifest %s", SideECR, got, r.Digest)}
	}
	e.manifests.Add(key, m)
	return m, nil
}

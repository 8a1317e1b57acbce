package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"
)

// copier walks one digest from ECR to GitLab: manifests by their original
// bytes (so digests stay equal), every platform of an index, and blobs.
type copier struct {
	e        *Engine
	rc       *regclient.RegClient
	src, tgt ref.Ref // repositories, no tag or digest
	// targetNew: GitLab's listing found no repository just before the copy,
	// so its platforms and blobs need no check (blobs landed by this apply's
	// other copies are known to the blob index).
	targetNew bool

	mu    sync.Mutex
	stats Stats
	top   manifest.Manifest // the tagged manifest, once written
}

// copyTagged makes tag point at dig in the target. When GitLab holds the
// digest already (under another tag, or a tag moved back) that is one
// manifest GET and PUT; otherwise the digest is copied whole.
//
// The check is made in a new repository too: it is the copy's first request
// to GitLab's registry, outside the blob semaphore, so a registry that never
// answers stalls it rather than uploads holding every blob slot of the
// provider while the other resources wait for one.
func (c *copier) copyTagged(ctx context.Context, dig, tag string) error {
	var held manifest.Manifest
	err := call(ctx, SideGitLab, func(ctx context.Context) (err error) {
		held, err = c.rc.ManifestGet(ctx, c.tgt.SetDigest(dig))
		return err
	})
	if err == nil && held.GetDescriptor().Digest.String() == dig {
		c.top = held
		return c.putManifest(ctx, c.tgt.SetTag(tag), held)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("checking %s in GitLab: %w", c.tgt.SetDigest(dig).CommonName(), err)
	}
	m, err := c.copyContent(ctx, dig)
	if err != nil {
		return err
	}
	c.top = m
	return c.putManifest(ctx, c.tgt.SetTag(tag), m)
}

// copyContent copies everything dig refers to (platforms, config, layers)
// and returns its manifest, not yet written to the target.
func (c *copier) copyContent(ctx context.Context, dig string) (manifest.Manifest, error) {
	m, err := c.e.readSourceManifest(ctx, c.src.SetDigest(dig))
	if err != nil {
		return nil, err
	}
	if err := c.copySubject(ctx, m); err != nil {
		return nil, err
	}
	children, err := c.missingChildren(ctx, m)
	if err != nil {
		return nil, err
	}
	blobs, err := blobsOf(m)
	if err != nil {
		return nil, err
	}
	var g errgroup.Group
	for _, d := range children {
		g.Go(func() error { return c.copyByDigest(ctx, d.Digest.String()) })
	}
	for _, d := range blobs {
		g.Go(func() error { return c.copyBlob(ctx, d) })
	}
	return m, g.Wait()
}

// copyByDigest copies a manifest that has no tag of its own: a platform of
// an index, or a referrer.
func (c *copier) copyByDigest(ctx context.Context, dig string) error {
	m, err := c.copyContent(ctx, dig)
	if err != nil {
		return err
	}
	return c.putManifest(ctx, c.tgt.SetDigest(dig), m)
}

// copySubject copies the subject of a referrer first when GitLab lacks it:
// GitLab refuses a manifest whose subject it does not hold. A tagged
// signature, copied as a tag, may well come before its image.
func (c *copier) copySubject(ctx context.Context, m manifest.Manifest) error {
	sj, ok := m.(manifest.Subjecter)
	if !ok {
		return nil
	}
	subject, err := sj.GetSubject()
	if errors.Is(err, errs.ErrUnsupportedMediaType) || subject == nil && err == nil {
		return nil // a media type without subjects (Docker's), or no subject
	}
	if err != nil {
		return err
	}
	dig := subject.Digest.String()
	err = call(ctx, SideGitLab, func(ctx context.Context) error { _, err := c.rc.ManifestHead(ctx, c.tgt.SetDigest(dig)); return err })
	switch {
	case err == nil:
		return nil
	case !isNotFound(err):
		return fmt.Errorf("checking subject %s in GitLab: %w", dig, err)
	}
	return c.copyByDigest(ctx, dig)
}

// missingChildren lists the platforms of an index that GitLab lacks, asking
// for all of them at once.
func (c *copier) missingChildren(ctx context.Context, m manifest.Manifest) ([]descriptor.Descriptor, error) {
	idx, ok := m.(manifest.Indexer)
	if !ok {
		return nil, nil
	}
	list, err := idx.GetManifestList()
	if err != nil || c.targetNew {
		return list, err
	}
	digests := make([]string, len(list))
	for i, d := range list {
		digests[i] = d.Digest.String()
	}
	found, err := c.e.headAll(ctx, digests, func(d string) ref.Ref { return c.tgt.SetDigest(d) })
	if err != nil {
		return nil, fmt.Errorf("checking the platforms in GitLab: %w", err)
	}
	var missing []descriptor.Descriptor
	for _, d := range list {
		if found[d.Digest.String()] != d.Digest.String() {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// blobsOf lists the config and layers of an image manifest; foreign layers
// stay where their URLs say.
func blobsOf(m manifest.Manifest) ([]descriptor.Descriptor, error) {
	img, ok := m.(manifest.Imager)
	if !ok {
		return nil, nil
	}
	var blobs []descriptor.Descriptor
	if cfg, err := img.GetConfig(); err == nil && cfg.Digest != "" {
		blobs = append(blobs, cfg)
	}
	layers, err := img.GetLayers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if len(l.URLs) == 0 {
			blobs = append(blobs, l)
		}
	}
	return blobs, nil
}

// putManifest writes m's original bytes under r.
func (c *copier) putManifest(ctx context.Context, r ref.Ref, m manifest.Manifest) error {
	var opts []regclient.ManifestOpts
	switch {
	case hasSubject(m):
		// A referrer: regclient would also update the subject's fallback
		// tag, which a registry like GitLab reads as a digest.
		if !c.e.tagSchemeUsable(ctx, c.rc, c.tgt, m) {
			m = withoutSubject{m}
		}
	case r.Digest != "":
		opts = append(opts, regclient.WithManifestChild()) // a platform of an index
	}
	err := call(ctx, SideGitLab, func(ctx context.Context) error { return c.rc.ManifestPut(ctx, r, m, opts...) })
	if err != nil {
		return fmt.Errorf("writing manifest %s to GitLab: %w", r.CommonName(), err)
	}
	return nil
}

func (c *copier) count(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

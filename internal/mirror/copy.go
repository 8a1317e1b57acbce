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
)

// copier walks one digest from source to target: manifests by their original
// bytes (so digests stay equal), index children, blobs and referrers.
type copier struct {
	e         *Engine
	rc        *regclient.RegClient
	src, tgt  ref.Ref // repositories, no tag or digest
	referrers bool

	mu    sync.Mutex
	stats Stats
	top   manifest.Manifest // the tagged manifest, once written
}

// copyManifest copies src@dig to the target, under tag when given, else by digest.
func (c *copier) copyManifest(ctx context.Context, dig string, tag string) error {
	if tag != "" {
		// The digest may be in the target already (under another tag, or a
		// tag moved back): then the tag is one manifest PUT of those bytes.
		if m, err := c.rc.ManifestGet(ctx, c.tgt.SetDigest(dig)); err == nil && m.GetDescriptor().Digest.String() == dig {
			if err := c.rc.ManifestPut(ctx, c.tgt.SetTag(tag), m); err != nil {
				return fmt.Errorf("writing manifest %s: %w", c.tgt.SetTag(tag).CommonName(), err)
			}
			c.top = m
			return nil
		}
	}
	m, err := c.rc.ManifestGet(ctx, c.src.SetDigest(dig))
	if err != nil {
		return fmt.Errorf("reading manifest %s from the source: %w", dig, err)
	}
	if got := m.GetDescriptor().Digest.String(); got != dig {
		return fmt.Errorf("the source served %s for manifest %s", got, dig)
	}
	var children []descriptor.Descriptor
	if idx, ok := m.(manifest.Indexer); ok {
		list, err := idx.GetManifestList()
		if err != nil {
			return err
		}
		for _, d := range list {
			if _, err := c.rc.ManifestHead(ctx, c.tgt.SetDigest(d.Digest.String())); err == nil {
				continue // this platform is there already
			}
			children = append(children, d)
		}
	}
	var blobs []descriptor.Descriptor
	if img, ok := m.(manifest.Imager); ok {
		if cfg, err := img.GetConfig(); err == nil && cfg.Digest != "" {
			blobs = append(blobs, cfg)
		}
		layers, err := img.GetLayers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			if len(l.URLs) > 0 {
				continue // foreign layers stay where their URLs say
			}
			blobs = append(blobs, l)
		}
	}
	if err := c.parallel(ctx, len(children), func(ctx context.Context, i int) error {
		return c.copyManifest(ctx, children[i].Digest.String(), "")
	}); err != nil {
		return err
	}
	if err := c.parallel(ctx, len(blobs), func(ctx context.Context, i int) error {
		return c.copyBlob(ctx, blobs[i])
	}); err != nil {
		return err
	}
	target := c.tgt.SetDigest(dig)
	var opts []regclient.ManifestOpts
	switch {
	case tag != "":
		target = c.tgt.SetTag(tag)
	case !hasSubject(m):
		// A platform of an index; a referrer instead must update the target's referrers index.
		opts = append(opts, regclient.WithManifestChild())
	}
	if err := c.rc.ManifestPut(ctx, target, m, opts...); err != nil {
		return fmt.Errorf("writing manifest %s: %w", target.CommonName(), err)
	}
	if tag != "" {
		c.top = m
	}
	if c.referrers {
		return c.copyReferrers(ctx, dig)
	}
	return nil
}

func hasSubject(m manifest.Manifest) bool {
	sj, ok := m.(manifest.Subjecter)
	if !ok {
		return false
	}
	d, err := sj.GetSubject()
	return err == nil && d != nil
}

// copyReferrers copies the artifacts whose subject is dig (signatures, SBOMs).
func (c *copier) copyReferrers(ctx context.Context, dig string) error {
	rl, err := c.rc.ReferrerList(ctx, c.src.SetDigest(dig))
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("listing referrers of %s: %w", dig, err)
	}
	return c.parallel(ctx, len(rl.Descriptors), func(ctx context.Context, i int) error {
		d := rl.Descriptors[i].Digest.String()
		if _, err := c.rc.ManifestHead(ctx, c.tgt.SetDigest(d)); err == nil {
			return nil
		}
		return c.copyManifest(ctx, d, "")
	})
}

// copyBlob makes the blob present in the target repository: already there
// (HEAD), mounted from another GitLab repository that holds it, or streamed
// from the source. Copies of one blob in flight are not started twice: later
// ones wait and mount from the first.
func (c *copier) copyBlob(ctx context.Context, d descriptor.Descriptor) error {
	// One worker per blob and repository at a time: two digests of a
	// repository often share layers, and a HEAD racing a mount of the same
	// blob into the same repository can draw a 500 from the registry.
	for {
		wait, leave := c.e.blobs.enter(c.tgt, d.Digest.String())
		if wait == nil {
			err := c.placeBlob(ctx, d)
			leave()
			return err
		}
		select {
		case <-wait: // the other worker is done: look again
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *copier) placeBlob(ctx context.Context, d descriptor.Descriptor) error {
	if _, err := c.rc.BlobHead(ctx, c.tgt, d); err == nil {
		c.e.blobs.remember(d.Digest.String(), c.tgt)
		c.count(func(s *Stats) { s.BlobsSkipped++ })
		return nil
	}
	mountTried := false
	for {
		present, from, wait, done := c.e.blobs.claim(d.Digest.String(), c.tgt, mountTried)
		if present {
			c.count(func(s *Stats) { s.BlobsSkipped++ })
			return nil
		}
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if from != nil {
			mountTried = true
			if err := c.rc.BlobMount(ctx, *from, c.tgt, d); err == nil {
				c.e.blobs.remember(d.Digest.String(), c.tgt)
				c.count(func(s *Stats) { s.BlobsMounted++ })
				return nil
			}
			continue // refused: copy it instead
		}
		err := c.stream(ctx, d)
		done(err == nil)
		return err
	}
}

func (c *copier) stream(ctx context.Context, d descriptor.Descriptor) error {
	select {
	case c.e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.e.sem }()
	rdr, err := c.rc.BlobGet(ctx, c.src, d)
	if err != nil {
		return fmt.Errorf("reading blob %s from the source: %w", d.Digest, err)
	}
	defer rdr.Close()
	if _, err := c.rc.BlobPut(ctx, c.tgt, d, rdr); err != nil {
		return transferError{fmt.Errorf("writing blob %s: %w", d.Digest, err)}
	}
	c.count(func(s *Stats) { s.BlobsCopied++; s.Bytes += d.Size })
	return nil
}

// transferError is a blob stream that broke on the way: whatever the
// registry answered afterwards (regclient's fallback to a chunked upload on
// the dead session draws a 404), streaming it again may well work.
type transferError struct{ err error }

func (t transferError) Error() string { return t.err.Error() }
func (t transferError) Unwrap() error { return t.err }

func (c *copier) count(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

// parallel runs fn for 0..n-1 concurrently and returns the first error; the
// blob semaphore, not this, bounds the transfers.
func (c *copier) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- fn(ctx, i) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// blobIndex is the provider-wide map of blob digest -> GitLab repository that
// holds it, and the copies in flight, so each blob leaves ECR once per apply.
type blobIndex struct {
	mu       sync.Mutex
	holders  map[string][]ref.Ref
	inflight map[string]chan struct{} // digest -> stream from the source in flight
	working  map[string]chan struct{} // repository@digest -> a worker placing it there
}

func newBlobIndex() *blobIndex {
	return &blobIndex{holders: map[string][]ref.Ref{}, inflight: map[string]chan struct{}{}, working: map[string]chan struct{}{}}
}

// enter makes the caller the one worker placing dig into repo, or returns a
// channel closed when the current worker leaves.
func (b *blobIndex) enter(repo ref.Ref, dig string) (wait <-chan struct{}, leave func()) {
	key := repo.SetTag("").CommonName() + "@" + dig
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch, ok := b.working[key]; ok {
		return ch, nil
	}
	ch := make(chan struct{})
	b.working[key] = ch
	return nil, func() {
		b.mu.Lock()
		delete(b.working, key)
		b.mu.Unlock()
		close(ch)
	}
}

func (b *blobIndex) remember(dig string, repo ref.Ref) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.holders[dig] {
		if ref.EqualRepository(r, repo) {
			return
		}
	}
	b.holders[dig] = append(b.holders[dig], repo)
}

// claim says what to do with a blob the target lacked when it looked: nothing
// (a concurrent copy into the same repository landed it), mount it from a
// repository of the same registry (from), wait for a copy in flight (wait),
// or copy it now and call done with the outcome.
func (b *blobIndex) claim(dig string, tgt ref.Ref, noMount bool) (present bool, from *ref.Ref, wait <-chan struct{}, done func(ok bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.holders[dig] {
		if ref.EqualRepository(r, tgt) {
			return true, nil, nil, nil
		}
	}
	if !noMount {
		for _, r := range b.holders[dig] {
			if r.Registry == tgt.Registry {
				return false, &r, nil, nil
			}
		}
	}
	if ch, ok := b.inflight[dig]; ok && !noMount {
		return false, nil, ch, nil
	}
	ch := make(chan struct{})
	b.inflight[dig] = ch
	return false, nil, nil, func(ok bool) {
		b.mu.Lock()
		if b.inflight[dig] == ch {
			delete(b.inflight, dig)
		}
		if ok {
			b.holders[dig] = append(b.holders[dig], tgt)
		}
		b.mu.Unlock()
		close(ch)
	}
}

package mirror

import (
	"context"
	"fmt"
	"io"

	"github.com/regclient/regclient/types/descriptor"
)

// copyBlob makes the blob present in the target repository: already there
// (HEAD), mounted from another GitLab repository that holds it, or streamed
// from ECR. A blob in flight is not streamed twice: later copies wait and
// mount it from the first.
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
	if err := call(ctx, func(ctx context.Context) error { _, err := c.rc.BlobHead(ctx, c.tgt, d); return err }); err == nil {
		c.e.blobs.remember(d.Digest.String(), c.tgt)
		c.count(func(s *Stats) { s.BlobsSkipped++ })
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("checking blob %s in GitLab: %w", d.Digest, err)
	}
	mountTried := false
	for {
		present, from, wait, done := c.e.blobs.claim(d.Digest.String(), c.tgt, mountTried)
		switch {
		case present:
			c.count(func(s *Stats) { s.BlobsSkipped++ })
			return nil
		case wait != nil:
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		case from != nil:
			mountTried = true
			if err := call(ctx, func(ctx context.Context) error { return c.rc.BlobMount(ctx, *from, c.tgt, d) }); err == nil {
				c.e.blobs.remember(d.Digest.String(), c.tgt)
				c.count(func(s *Stats) { s.BlobsMounted++ })
				return nil
			}
			continue // refused: stream it instead
		}
		err := c.streamBlob(ctx, d)
		done(err == nil)
		return err
	}
}

// streamBlob streams one blob from ECR into GitLab, holding a slot of the
// provider-wide blob semaphore.
func (c *copier) streamBlob(ctx context.Context, d descriptor.Descriptor) error {
	select {
	case c.e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.e.sem }()
	return call(ctx, func(ctx context.Context) error {
		rdr, err := c.rc.BlobGet(ctx, c.src, d)
		if err != nil {
			return fmt.Errorf("reading blob %s from ECR: %w", d.Digest, err)
		}
		defer rdr.Close()
		// Without Seek, regclient sends the blob once: no replay of a refused
		// upload and no chunked fallback, each of which reads the blob from
		// ECR again while the host backs off; copyDigest retries instead.
		if _, err := c.rc.BlobPut(ctx, c.tgt, d, struct{ io.Reader }{rdr}); err != nil {
			return transferError{fmt.Errorf("writing blob %s to GitLab: %w", d.Digest, err)}
		}
		c.count(func(s *Stats) { s.BlobsCopied++; s.Bytes += d.Size })
		return nil
	})
}

// transferError is a blob stream that broke on the way: whatever the
// registry answered afterwards (regclient's fallback to a chunked upload on
// a dead upload session draws a 404), streaming it again may well work.
type transferError struct{ err error }

func (t transferError) Error() string { return t.err.Error() }
func (t transferError) Unwrap() error { return t.err }

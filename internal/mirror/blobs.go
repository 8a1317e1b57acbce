package mirror

import (
	"context"
	"fmt"
	"io"
	"net/http"

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
	if present, err := c.blobPresent(ctx, d); err != nil || present {
		return err
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
			if err := call(ctx, SideGitLab, func(ctx context.Context) error { return c.rc.BlobMount(ctx, *from, c.tgt, d) }); err == nil {
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

// blobPresent tells whether the target holds d already: known to the blob
// index (landed by this apply), or answered by a HEAD unless the repository
// is new.
func (c *copier) blobPresent(ctx context.Context, d descriptor.Descriptor) (bool, error) {
	if c.e.blobs.holds(d.Digest.String(), c.tgt) {
		c.count(func(s *Stats) { s.BlobsSkipped++ })
		return true, nil
	}
	if c.targetNew {
		return false, nil
	}
	err := call(ctx, SideGitLab, func(ctx context.Context) error { _, err := c.rc.BlobHead(ctx, c.tgt, d); return err })
	switch {
	case err == nil:
		c.e.blobs.remember(d.Digest.String(), c.tgt)
		c.count(func(s *Stats) { s.BlobsSkipped++ })
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("checking blob %s in GitLab: %w", d.Digest, err)
}

// maxRateLimited bounds the sends of a blob the registry answers 429.
const maxRateLimited = 4

// streamBlob streams one blob from ECR into GitLab, holding a slot of the
// provider-wide blob semaphore while its bytes flow (see blobSlot). A blob
// refused with 429 is sent again once the registry's Retry-After has passed;
// other failures go to copyDigest.
func (c *copier) streamBlob(ctx context.Context, d descriptor.Descriptor) error {
	slot, ctx, err := c.e.openBlob(ctx)
	if err != nil {
		return err
	}
	defer slot.release()
	for attempt := 1; ; attempt++ {
		err := call(ctx, SideGitLab, func(ctx context.Context) error { return c.sendBlob(ctx, d) })
		answer, answered := Answer(err)
		if !answered || answer.Status != http.StatusTooManyRequests || attempt == maxRateLimited {
			return err
		}
		// Read from ECR again only once the Retry-After has passed (regclient
		// mostly waited it out already, before it found it cannot resend).
		if sleepUntil(ctx, answer.RetryAt) != nil {
			return err
		}
	}
}

// sendBlob reads the blob from ECR and writes it to GitLab once. Without
// Seek, regclient neither replays a refused upload nor resends it in chunks:
// each read the blob from ECR again, and the chunks' own retries made a
// repository whose uploads GitLab refused take many minutes to fail.
func (c *copier) sendBlob(ctx context.Context, d descriptor.Descriptor) error {
	rdr, err := c.rc.BlobGet(ctx, c.src, d)
	if err != nil {
		return fmt.Errorf("reading blob %s from ECR: %w", d.Digest, sideErr(SideECR, err))
	}
	defer rdr.Close()
	src := &sourceReader{r: rdr}
	if _, err := c.rc.BlobPut(ctx, c.tgt, d, src); err != nil {
		if src.err != nil {
			err = &SideError{Side: SideECR, Err: fmt.Errorf("the download broke off: %w", src.err)}
		}
		return transferError{fmt.Errorf("writing blob %s to GitLab: %w", d.Digest, err)}
	}
	c.count(func(s *Stats) { s.BlobsCopied++; s.Bytes += d.Size })
	return nil
}

// sourceReader keeps the error of the ECR download under an upload, so a
// download that breaks off is blamed on ECR, not on GitLab. It has no Seek:
// see sendBlob.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// transferError is a blob stream that broke on the way: whatever the
// registry answered afterwards (a dead upload session draws a 404),
// streaming it again may well work.
type transferError struct{ err error }

func (t transferError) Error() string { return t.err.Error() }
func (t transferError) Unwrap() error { return t.err }

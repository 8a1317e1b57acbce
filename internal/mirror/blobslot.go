package mirror

import (
	"context"
	"net/http"
	"sync"
)

// blobSlot is one blob's place in the provider-wide bound on streams. The
// blob counts as opening while its download starts (ECR's answer and its
// redirect to S3) and its upload session is made (POST); it takes a slot of
// the blob semaphore only when its bytes start to flow, with the upload's
// body. Across a WAN those round trips are most of a small blob's time, and
// held inside the slot they kept the other transfers waiting. At most as many
// blobs are opening as there are slots, so few downloads wait open, and
// one that waits too long resumes with Range like any other broken download.
type blobSlot struct {
	sem, opening chan struct{}

	mu      sync.Mutex
	held    bool // a slot of sem
	waiting bool // a place in opening
}

type blobSlotKey struct{}

// openBlob waits for a place among the opening blobs; release ends both.
func (e *Engine) openBlob(ctx context.Context) (*blobSlot, context.Context, error) {
	select {
	case e.opening <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx, ctx.Err()
	}
	s := &blobSlot{sem: e.sem, opening: e.opening, waiting: true}
	return s, context.WithValue(ctx, blobSlotKey{}, s), nil
}

// take waits for a slot the first time the blob's bytes are sent.
func (s *blobSlot) take(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.held = true
	s.leaveOpening()
	return nil
}

func (s *blobSlot) leaveOpening() {
	if s.waiting {
		<-s.opening
		s.waiting = false
	}
}

func (s *blobSlot) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		<-s.sem
		s.held = false
	}
	s.leaveOpening()
}

// takeBlobSlot holds an upload body until its blob has a slot; other
// requests pass at once.
func takeBlobSlot(req *http.Request) error {
	s, _ := req.Context().Value(blobSlotKey{}).(*blobSlot)
	if s == nil || !isUploadBody(req) {
		return nil
	}
	return s.take(req.Context())
}

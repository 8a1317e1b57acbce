package mirror

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func uploadBody(ctx context.Context) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "https://registry.test/v2/p/blobs/uploads/u?digest=sha256:aa", strings.NewReader("bytes"))
	return req
}

// The semaphore bounds the blobs whose bytes flow; as many more may open
// their download and upload session meanwhile, and no more.
func TestBlobSlotBoundsBytesNotRoundTrips(t *testing.T) {
	e := New(Config{MaxConcurrentBlobs: 2})
	ctx := t.Context()
	a, actx, _ := e.openBlob(ctx)
	b, bctx, _ := e.openBlob(ctx)
	for _, c := range []context.Context{actx, bctx} {
		if err := takeBlobSlot(uploadBody(c)); err != nil {
			t.Fatal(err)
		}
	}
	c, cctx, err := e.openBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, dctx, err := e.openBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := e.openBlob(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fifth blob opened beside two streaming and two opening: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- takeBlobSlot(uploadBody(cctx)) }()
	select {
	case err := <-done:
		t.Fatalf("a third upload body was sent while two streams held both slots (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	download, _ := http.NewRequestWithContext(dctx, http.MethodGet, "https://registry.test/v2/p/blobs/sha256:aa", nil)
	if err := takeBlobSlot(download); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*blobSlot{b, c, d} {
		s.release()
	}
	if len(e.sem) != 0 || len(e.opening) != 0 {
		t.Errorf("after every release: %d slots and %d openings still taken", len(e.sem), len(e.opening))
	}
}

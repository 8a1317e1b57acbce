package mirror

import (
	"context"
	"sync"

	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"
)

// SourceBytes adds up the most a copy of these digests reads from the ECR
// repository source: each manifest (every platform of an index too), its
// config and its layers, every digest counted once however many images
// share it. It reads the manifests from ECR, never a blob. A copy reads
// less when GitLab holds some of it already or mounts a blob from another
// repository.
func (e *Engine) SourceBytes(ctx context.Context, source string, digests []string) (int64, error) {
	src, err := e.sourceRef(ctx, source)
	if err != nil {
		return 0, err
	}
	s := &sizer{e: e, src: src, seen: map[string]bool{}}
	level := digests
	// Each round reads one level of manifests: the digests, then the
	// platforms of the indexes among them.
	for len(level) > 0 {
		if level, err = s.readLevel(ctx, level); err != nil {
			return 0, err
		}
	}
	return s.total, nil
}

type sizer struct {
	e   *Engine
	src ref.Ref

	mu    sync.Mutex
	seen  map[string]bool // digests counted
	total int64
}

// readLevel counts the manifests of one level and their blobs, and returns
// the child manifests still to read.
func (s *sizer) readLevel(ctx context.Context, digests []string) ([]string, error) {
	var next []string
	var g errgroup.Group
	g.SetLimit(headsInFlight)
	for _, dig := range digests {
		if !s.mark(dig) {
			continue
		}
		g.Go(func() error {
			m, err := s.manifest(ctx, dig)
			if err != nil {
				return err
			}
			children, err := s.countContent(m)
			s.mu.Lock()
			next = append(next, children...)
			s.mu.Unlock()
			return err
		})
	}
	return next, g.Wait()
}

func (s *sizer) manifest(ctx context.Context, dig string) (manifest.Manifest, error) {
	m, err := s.e.readSourceManifest(ctx, s.src.SetDigest(dig))
	if err != nil {
		return nil, err
	}
	s.add(m.GetDescriptor().Size)
	return m, nil
}

// countContent counts an image's config and layers; for an index it returns
// the platforms to read.
func (s *sizer) countContent(m manifest.Manifest) ([]string, error) {
	if idx, ok := m.(manifest.Indexer); ok {
		list, err := idx.GetManifestList()
		var children []string
		for _, d := range list {
			children = append(children, d.Digest.String())
		}
		return children, err
	}
	blobs, err := blobsOf(m)
	for _, b := range blobs {
		if s.mark(b.Digest.String()) {
			s.add(b.Size)
		}
	}
	return nil, err
}

// mark records a digest as counted, telling whether it was new.
func (s *sizer) mark(dig string) (isNew bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	isNew = !s.seen[dig]
	s.seen[dig] = true
	return isNew
}

func (s *sizer) add(size int64) {
	s.mu.Lock()
	s.total += size
	s.mu.Unlock()
}

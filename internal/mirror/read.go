package mirror

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"
)

// headsInFlight bounds the HEADs one read sends at once; regclient's
// per-host limit bounds them across the provider.
const headsInFlight = 16

// ReadTags asks GitLab's registry for each tag's digest: from GitLab's tag
// listing where the registry serves it (one request per 1,000 tags), else one
// HEAD per tag, in parallel. A tag the registry does not have is absent from
// the result; any other failure of any tag is an error naming every failed
// tag. It never touches ECR.
func (e *Engine) ReadTags(ctx context.Context, image string, tags []string) (map[string]string, error) {
	base, err := e.gitlabRef(image)
	if err != nil {
		return nil, err
	}
	headOf := func(tag string) ref.Ref { return base.SetTag(tag) }
	listable, digestNamed := splitDigestNamedTags(tags)
	found, ok := e.listTagDigests(ctx, base, listable)
	if !ok {
		return e.headAll(ctx, tags, headOf)
	}
	if len(digestNamed) == 0 {
		return found, nil
	}
	answered, err := e.headAll(ctx, digestNamed, headOf)
	for tag, digest := range answered {
		found[tag] = digest
	}
	return found, err
}

// digestNamedTag is a tag shaped like a digest (the referrers fallback
// scheme). GitLab's registry reads such a reference as the digest it names,
// so the tag never appears in its listing and only a HEAD tells whether
// GitLab answers it.
var digestNamedTag = regexp.MustCompile(`^sha256-[a-f0-9]{64}$`)

// splitDigestNamedTags separates the tags a listing can show from those only
// a HEAD can read.
func splitDigestNamedTags(tags []string) (listable, digestNamed []string) {
	for _, tag := range tags {
		if digestNamedTag.MatchString(tag) {
			digestNamed = append(digestNamed, tag)
		} else {
			listable = append(listable, tag)
		}
	}
	return listable, digestNamed
}

// HeldManifests reports which digests GitLab's registry holds in image, one
// HEAD by digest each (referrers are checked this way: GitLab has no
// referrers API).
func (e *Engine) HeldManifests(ctx context.Context, image string, digests []string) (map[string]bool, error) {
	base, err := e.gitlabRef(image)
	if err != nil {
		return nil, err
	}
	found, err := e.headAll(ctx, digests, func(d string) ref.Ref { return base.SetDigest(d) })
	held := make(map[string]bool, len(found))
	for d, got := range found {
		held[d] = got == d
	}
	return held, err
}

// ListTags lists every tag of image in GitLab's registry (after an import,
// when state does not say which tags are managed yet).
func (e *Engine) ListTags(ctx context.Context, image string) ([]string, error) {
	base, err := e.gitlabRef(image)
	if err != nil {
		return nil, err
	}
	var tags []string
	err = call(ctx, SideGitLab, func(ctx context.Context) error {
		tl, err := e.client().TagList(ctx, base)
		if err != nil {
			return err
		}
		tags, err = tl.GetTags()
		return err
	})
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("listing the tags of %s: %w", image, err)
	}
	sort.Strings(tags)
	return tags, nil
}

// headAll sends one HEAD per key and returns key -> digest for those found.
func (e *Engine) headAll(ctx context.Context, keys []string, refOf func(string) ref.Ref) (map[string]string, error) {
	var (
		mu   sync.Mutex
		out  = make(map[string]string, len(keys))
		errl []error
		g    errgroup.Group
	)
	g.SetLimit(headsInFlight)
	rc := e.client()
	for _, key := range keys {
		g.Go(func() error {
			r := refOf(key)
			var dig string
			err := call(ctx, SideGitLab, func(ctx context.Context) error {
				m, err := rc.ManifestHead(ctx, r, regclient.WithManifestRequireDigest())
				if err == nil {
					dig = m.GetDescriptor().Digest.String()
				}
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[key] = dig
			case !isNotFound(err):
				errl = append(errl, fmt.Errorf("%s: %w", r.CommonName(), err))
			}
			return nil
		})
	}
	_ = g.Wait()
	return out, errors.Join(errl...)
}

// gitlabRef parses a GitLab image reference and makes its host known.
func (e *Engine) gitlabRef(image string) (ref.Ref, error) {
	r, err := ref.New(image)
	if err != nil {
		return ref.Ref{}, fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	e.transport.mu.Lock()
	e.transport.gitlabHosts[r.Registry] = true
	e.transport.mu.Unlock()
	return r.SetTag(""), nil
}

package mirror

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/regclient/regclient/types/ref"
	"golang.org/x/sync/errgroup"
)

// maxAttempts bounds the copies of one digest that fail on the way
// (throttling, a 5xx, a broken stream); each attempt skips what landed.
const maxAttempts = 2

// Request is one repository's copy: make every tag in Want point at its
// digest, and every planned referrer exist.
type Request struct {
	Source string // e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api
	Target string // e.g. registry.gitlab.com/group/project/team/api
	// Want maps tag -> digest as planned.
	Want map[string]string
	// Current maps tag -> digest GitLab holds now; tags equal to Want are left alone.
	Current map[string]string
	// Referrers maps subject digest -> referrer digests GitLab must hold;
	// nil when referrers are not copied.
	Referrers map[string][]string
}

// Result says what landed; nothing that landed is forgotten when others fail.
type Result struct {
	Landed map[string]string // tag -> digest now in GitLab
	Failed map[string]error  // tag -> why
	// Referrers maps subject -> referrer digests now in GitLab.
	Referrers      map[string][]string
	ReferrerFailed map[string]error // referrer digest -> why
	Stats          Stats
}

// Stats counts the work done for one request.
type Stats struct {
	Tags         int
	Digests      int
	Referrers    int
	Bytes        int64
	BlobsCopied  int
	BlobsMounted int
	BlobsSkipped int
}

func (s *Stats) add(o Stats) {
	s.Tags += o.Tags
	s.Digests += o.Digests
	s.Referrers += o.Referrers
	s.Bytes += o.Bytes
	s.BlobsCopied += o.BlobsCopied
	s.BlobsMounted += o.BlobsMounted
	s.BlobsSkipped += o.BlobsSkipped
}

// Mirror copies each differing digest once, then tags it with any further
// tags, then the referrers GitLab lacks. The ECR credential is asked for only
// when something must be read from ECR.
func (e *Engine) Mirror(ctx context.Context, req Request) Result {
	res := Result{Landed: map[string]string{}, Failed: map[string]error{}, Referrers: map[string][]string{}, ReferrerFailed: map[string]error{}}
	byDigest := map[string][]string{}
	for tag, dig := range req.Want {
		if req.Current[tag] == dig {
			res.Landed[tag] = dig
			continue
		}
		byDigest[dig] = append(byDigest[dig], tag)
	}
	if len(byDigest) == 0 && len(req.Referrers) == 0 {
		return res
	}
	ctx = withStallBudget(ctx)
	c, err := e.newCopier(ctx, req)
	if err != nil {
		for _, tags := range byDigest {
			for _, t := range tags {
				res.Failed[t] = err
			}
		}
		for _, refs := range req.Referrers {
			for _, r := range refs {
				res.ReferrerFailed[r] = err
			}
		}
		return res
	}
	e.mirrorTags(ctx, c, byDigest, &res)
	e.mirrorReferrers(ctx, c, req.Referrers, &res)
	return res
}

// newCopier parses both references; the copier carries them to every digest.
func (e *Engine) newCopier(ctx context.Context, req Request) (*copier, error) {
	src, err := e.sourceRef(ctx, req.Source)
	if err != nil {
		return nil, err
	}
	tgt, err := e.gitlabRef(req.Target)
	if err != nil {
		return nil, &SideError{Side: SideGitLab, Err: err}
	}
	return &copier{e: e, rc: e.client(), src: src, tgt: tgt, targetNew: e.tagsAPI.takeAbsent(tgt)}, nil
}

// sourceRef parses an ECR repository reference and prepares its host.
func (e *Engine) sourceRef(_ context.Context, source string) (ref.Ref, error) {
	r, err := ref.New(source)
	if err != nil {
		return ref.Ref{}, &SideError{Side: SideECR, Err: fmt.Errorf("invalid repository reference %q: %w", source, err)}
	}
	if err := e.addECRHost(r.Registry); err != nil {
		return ref.Ref{}, err
	}
	return r.SetTag(""), nil
}

// mirrorTags copies the digests in parallel, at most as many at once as the
// blob semaphore allows streams.
func (e *Engine) mirrorTags(ctx context.Context, c *copier, byDigest map[string][]string, res *Result) {
	var (
		mu sync.Mutex
		g  errgroup.Group
	)
	g.SetLimit(e.cfg.MaxConcurrentBlobs)
	for _, dig := range slices.Sorted(maps.Keys(byDigest)) {
		tags := byDigest[dig]
		sort.Strings(tags)
		g.Go(func() error {
			stats, landed, failed := e.copyDigest(ctx, c, dig, tags)
			mu.Lock()
			defer mu.Unlock()
			res.Stats.add(stats)
			for _, t := range landed {
				res.Landed[t] = dig
			}
			for t, err := range failed {
				res.Failed[t] = err
			}
			return nil
		})
	}
	_ = g.Wait()
}

// copyDigest copies dig under tags[0], trying again what failed on the
// way, then puts the same manifest bytes under the other tags.
func (e *Engine) copyDigest(ctx context.Context, c *copier, dig string, tags []string) (Stats, []string, map[string]error) {
	start := time.Now()
	top, st, err := e.withRetries(ctx, c, c.tgt.SetTag(tags[0]).CommonName(), func(cp *copier) error {
		return cp.copyTagged(ctx, dig, tags[0])
	})
	failed := map[string]error{}
	if err != nil {
		for _, t := range tags {
			failed[t] = fmt.Errorf("copying %s to %s: %w", c.src.SetDigest(dig).CommonName(), c.tgt.SetTag(t).CommonName(), err)
		}
		return st, nil, failed
	}
	landed := append([]string{tags[0]}, top.tagAlso(ctx, dig, tags[1:], failed)...)
	st.Digests, st.Tags = 1, len(landed)
	e.logCopied(ctx, c, dig, landed, st, time.Since(start))
	return st, landed, failed
}

// tagAlso puts the copied manifest under the further tags, all at once; it
// returns those that landed and adds the others to failed.
func (c *copier) tagAlso(ctx context.Context, dig string, tags []string, failed map[string]error) []string {
	var (
		mu     sync.Mutex
		landed []string
		g      errgroup.Group
	)
	for _, t := range tags {
		g.Go(func() error {
			err := c.putManifest(ctx, c.tgt.SetTag(t), c.top)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[t] = fmt.Errorf("tagging %s as %s: %w", dig, c.tgt.SetTag(t).CommonName(), err)
			} else {
				landed = append(landed, t)
			}
			return nil
		})
	}
	_ = g.Wait()
	sort.Strings(landed)
	return landed
}

// withRetries runs op on a fresh copier, once more when it fails on the way
// (throttling past regclient's own retries, a 5xx, a broken stream), but
// not when a host stalled the copy's budget away; each attempt skips what
// landed. It returns the last copier and all stats.
func (e *Engine) withRetries(ctx context.Context, c *copier, what string, op func(*copier) error) (*copier, Stats, error) {
	var (
		st  Stats
		cp  *copier
		err error
	)
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		// A second attempt looks at what the first one landed.
		cp = &copier{e: e, rc: c.rc, src: c.src, tgt: c.tgt, targetNew: c.targetNew && attempt == 1}
		err = op(cp)
		st.add(cp.stats)
		if err == nil || ctx.Err() != nil || !isTransient(err) {
			break
		}
		if why, ends := stallBudgetFrom(ctx).endsCopy(err); ends {
			return cp, st, fmt.Errorf("%w; %s", err, why)
		}
		if attempt == maxAttempts {
			return cp, st, fmt.Errorf("%w; the copy was tried %d times", err, maxAttempts)
		}
		e.cfg.Logger(ctx, "copy interrupted; trying again", map[string]any{"target": what, "attempt": attempt, "error": err.Error()})
	}
	return cp, st, err
}

func (e *Engine) logCopied(ctx context.Context, c *copier, dig string, tags []string, st Stats, took time.Duration) {
	for _, t := range tags {
		e.cfg.Logger(ctx, "copied tag", map[string]any{
			"source": c.src.SetTag(t).CommonName(), "target": c.tgt.SetTag(t).CommonName(), "digest": dig,
			"bytes": st.Bytes, "blobs_copied": st.BlobsCopied, "blobs_mounted": st.BlobsMounted,
			"blobs_skipped": st.BlobsSkipped, "seconds": took.Seconds(),
		})
	}
}

// mirrorReferrers makes every planned referrer exist in GitLab, after its
// subject: subjects whose copy failed keep their referrers for the next run.
func (e *Engine) mirrorReferrers(ctx context.Context, c *copier, planned map[string][]string, res *Result) {
	held, why := e.subjectsHeld(ctx, c, planned, res.Landed)
	for _, subject := range referrerOrder(planned) {
		refs := planned[subject]
		if !held[subject] {
			for _, r := range refs {
				res.ReferrerFailed[r] = fmt.Errorf("not copied: its subject %s is not in GitLab%s", subject, why)
			}
			continue
		}
		for _, r := range e.copyReferrers(ctx, c, refs, res) {
			held[r] = true
			res.Referrers[subject] = append(res.Referrers[subject], r)
		}
		sort.Strings(res.Referrers[subject])
	}
}

// subjectsHeld tells which planned subjects that are no referrer themselves
// GitLab holds: the digests whose tags landed, and, asked by digest, the
// platform manifests inside them (GitLab holds those once their index
// landed). why is the error that left some unknown.
func (e *Engine) subjectsHeld(ctx context.Context, c *copier, planned map[string][]string, landed map[string]string) (map[string]bool, string) {
	held := map[string]bool{}
	for _, d := range landed {
		held[d] = true
	}
	var ask []string
	for _, s := range referrerRoots(planned) {
		if !held[s] {
			ask = append(ask, s)
		}
	}
	found, err := e.headAll(ctx, ask, func(d string) ref.Ref { return c.tgt.SetDigest(d) })
	for d, got := range found {
		held[d] = got == d
	}
	if err != nil {
		return held, " (" + err.Error() + ")"
	}
	return held, ""
}

// referrerRoots lists, sorted, the planned subjects that are no referrer of
// another: tagged digests and the platform manifests inside them.
func referrerRoots(planned map[string][]string) []string {
	isReferrer := map[string]bool{}
	for _, refs := range planned {
		for _, r := range refs {
			isReferrer[r] = true
		}
	}
	var roots []string
	for _, s := range slices.Sorted(maps.Keys(planned)) {
		if !isReferrer[s] {
			roots = append(roots, s)
		}
	}
	return roots
}

// copyReferrers copies the referrers GitLab lacks, by digest, and returns
// those GitLab holds afterwards.
func (e *Engine) copyReferrers(ctx context.Context, c *copier, refs []string, res *Result) []string {
	present, err := e.headAll(ctx, refs, func(d string) ref.Ref { return c.tgt.SetDigest(d) })
	var (
		mu   sync.Mutex
		have []string
		g    errgroup.Group
	)
	g.SetLimit(e.cfg.MaxConcurrentBlobs)
	for _, r := range refs {
		if present[r] == r {
			have = append(have, r)
			continue
		}
		if err != nil {
			res.ReferrerFailed[r] = err
			continue
		}
		g.Go(func() error {
			_, st, cerr := e.withRetries(ctx, c, c.tgt.SetDigest(r).CommonName(), func(cp *copier) error { return cp.copyByDigest(ctx, r) })
			mu.Lock()
			defer mu.Unlock()
			res.Stats.add(st)
			if cerr != nil {
				res.ReferrerFailed[r] = fmt.Errorf("copying referrer %s to %s: %w", r, c.tgt.CommonName(), cerr)
				return nil
			}
			res.Stats.Referrers++
			have = append(have, r)
			return nil
		})
	}
	_ = g.Wait()
	return have
}

// referrerOrder lists subjects so that a subject comes after the referrer
// that it is (a signature of an SBOM after the SBOM).
func referrerOrder(planned map[string][]string) []string {
	var order []string
	done := map[string]bool{}
	level := referrerRoots(planned)
	for depth := 0; depth <= maxReferrerDepth && len(level) > 0; depth++ {
		sort.Strings(level)
		var next []string
		for _, s := range level {
			if done[s] || planned[s] == nil {
				continue
			}
			done[s] = true
			order = append(order, s)
			next = append(next, planned[s]...)
		}
		level = next
	}
	for _, s := range slices.Sorted(maps.Keys(planned)) {
		if !done[s] {
			order = append(order, s) // only in a cycle, which no registry can hold: reported as missing
		}
	}
	return order
}

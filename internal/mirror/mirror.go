// Package mirror is the copy engine: it compares tag digests between an ECR
// repository and a GitLab image repository and streams, registry to registry,
// exactly the digests that differ. One Engine serves every resource of an apply,
// so the blob semaphore and the registry clients are shared.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
)

// maxAttempts bounds retries of a digest copy after an authorization failure.
const maxAttempts = 5

// ErrNotFound reports a manifest or repository the registry does not have.
var ErrNotFound = errors.New("not found in the registry")

// Credentials supplies the ECR registry credential; ecr.Client satisfies it.
type Credentials interface {
	Credential(ctx context.Context) (ecr.Credential, error)
	// Invalidate drops a credential a registry refused.
	Invalidate()
	RegistryEndpoint() string
}

// Logger receives progress lines; fields never hold secrets.
type Logger func(ctx context.Context, msg string, fields map[string]any)

// Config sets up an Engine.
type Config struct {
	ECR Credentials
	// GitLabUser and GitLabToken log in to the GitLab registry's token service;
	// GitLabUser is asked once, when a GitLab registry is first used.
	GitLabUser  func(ctx context.Context) string
	GitLabToken string
	// MaxConcurrentBlobs bounds the blob streams in flight across the provider.
	MaxConcurrentBlobs int
	// RequestsPerSecond limits requests per registry host; 0 is unlimited.
	RequestsPerSecond float64
	Logger            Logger
	Slog              *slog.Logger
	UserAgent         string
}

// reposPerClient bounds the GitLab repositories one regclient serves.
// regclient keeps one registry token per host and adds every repository's
// scope to it, so one client for a whole migration would send a token that
// grows with each repository: slower to verify on every request, and past
// a few dozen repositories larger than the 8 KiB header line NGINX (in front
// of self-managed GitLab) accepts. A small group shares a token instead.
const reposPerClient = 16

// Engine copies images; safe for concurrent use by many resources.
type Engine struct {
	cfg       Config
	sem       chan struct{} // bounds blob transfers across every resource
	transport *http.Transport
	// blobs remembers which GitLab repositories hold which blobs, for mounts.
	blobs *blobIndex

	mu      sync.Mutex
	pool    []*pooledClient
	byRepo  map[string]*pooledClient // target repository -> its client
	ecrCred ecr.Credential
	glHosts map[string]bool // GitLab registry host -> plain HTTP
	glUser  string
}

type pooledClient struct {
	rc    *regclient.RegClient
	repos int
	// warm: the client has met the GitLab registry's token challenge, so it
	// asks for new scopes before sending instead of drawing a 401 per request.
	warm atomic.Bool
}

// New builds an engine; no request is made until it is used.
func New(cfg Config) *Engine {
	if cfg.MaxConcurrentBlobs <= 0 {
		cfg.MaxConcurrentBlobs = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = func(context.Context, string, map[string]any) {}
	}
	// One transport for every client: connections are kept and reused per host.
	transport := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // the standard library's own type
	transport.MaxIdleConnsPerHost = (cfg.MaxConcurrentBlobs + 2) * 2
	transport.MaxIdleConns = transport.MaxIdleConnsPerHost * 4
	transport.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &Engine{
		cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrentBlobs), transport: transport,
		glHosts: map[string]bool{}, blobs: newBlobIndex(), byRepo: map[string]*pooledClient{},
	}
}

// AddGitLabRegistry makes a GitLab registry host known to the engine.
func (e *Engine) AddGitLabRegistry(host string, insecure bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev, ok := e.glHosts[host]; !ok || prev != insecure {
		e.glHosts[host] = insecure
		e.dropPool()
	}
}

func (e *Engine) dropPool() {
	e.pool = nil
	e.byRepo = map[string]*pooledClient{}
}

// client returns the regclient serving a target repository, with a fresh ECR
// credential. A new ECR token or a new GitLab host means new clients; copies
// in flight keep the old ones.
func (e *Engine) client(ctx context.Context, repo string) (*regclient.RegClient, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var cred ecr.Credential
	if e.cfg.ECR != nil {
		var err error
		cred, err = e.cfg.ECR.Credential(ctx)
		if err != nil {
			return nil, err
		}
	}
	if cred != e.ecrCred {
		e.dropPool()
		e.ecrCred = cred
	}
	if p := e.byRepo[repo]; p != nil {
		return p.rc, nil
	}
	var p *pooledClient
	if n := len(e.pool); n > 0 && e.pool[n-1].repos < reposPerClient {
		p = e.pool[n-1]
	} else {
		rc, err := e.build(ctx, cred)
		if err != nil {
			return nil, err
		}
		p = &pooledClient{rc: rc}
		e.pool = append(e.pool, p)
	}
	p.repos++
	e.byRepo[repo] = p
	return p.rc, nil
}

// build makes a regclient for both registries; called with e.mu held.
func (e *Engine) build(ctx context.Context, cred ecr.Credential) (*regclient.RegClient, error) {
	concurrent := int64(e.cfg.MaxConcurrentBlobs) + 2
	var hosts []config.Host
	if cred.Host != "" {
		h := config.Host{Name: cred.Host, User: cred.User, Pass: cred.Password, ReqConcurrent: concurrent, ReqPerSec: e.cfg.RequestsPerSecond}
		if ep := e.cfg.ECR.RegistryEndpoint(); ep != "" {
			u, err := url.Parse(ep)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("invalid ECR registry endpoint %q", ep)
			}
			h.Hostname = u.Host
			if u.Scheme == "http" {
				h.TLS = config.TLSDisabled
			}
		}
		hosts = append(hosts, h)
	}
	if len(e.glHosts) > 0 && e.glUser == "" {
		e.glUser = "imagesync"
		if e.cfg.GitLabUser != nil {
			e.glUser = e.cfg.GitLabUser(ctx)
		}
	}
	for host, insecure := range e.glHosts {
		h := config.Host{Name: host, User: e.glUser, Pass: e.cfg.GitLabToken, ReqConcurrent: concurrent, ReqPerSec: e.cfg.RequestsPerSecond}
		if insecure {
			h.TLS = config.TLSDisabled
		}
		hosts = append(hosts, h)
	}
	opts := []regclient.Opt{
		regclient.WithConfigHost(hosts...),
		regclient.WithRegOpts(reg.WithTransport(e.transport)),
		regclient.WithRetryLimit(3),
		// regclient spaces every later request to a host by this delay after
		// one failure; keep it short so a single 500 does not stall the run.
		regclient.WithRetryDelay(100*time.Millisecond, 2*time.Second),
	}
	if e.cfg.Slog != nil {
		opts = append(opts, regclient.WithSlog(e.cfg.Slog))
	}
	if e.cfg.UserAgent != "" {
		opts = append(opts, regclient.WithUserAgent(e.cfg.UserAgent))
	}
	return regclient.New(opts...), nil
}

// renew replaces a client whose registry token was refused. regclient keeps a
// token for at least 60 seconds whatever the registry says, and does not ask
// again while it believes the token valid; a new client starts without one.
func (e *Engine) renew(ctx context.Context, repo string, stale *regclient.RegClient) (*regclient.RegClient, error) {
	if e.cfg.ECR != nil {
		// Either side may have refused: ECR's token is asked for again too.
		e.cfg.ECR.Invalidate()
	}
	e.mu.Lock()
	if p := e.byRepo[repo]; p != nil && p.rc == stale {
		rc, err := e.build(ctx, e.ecrCred)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		p.rc = rc
		p.warm.Store(false)
	}
	e.mu.Unlock()
	return e.client(ctx, repo)
}

func (e *Engine) warm(repo string, rc *regclient.RegClient) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.byRepo[repo]
	return p != nil && p.rc == rc && p.warm.Load()
}

func (e *Engine) markWarm(repo string, rc *regclient.RegClient) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.byRepo[repo]; p != nil && p.rc == rc {
		p.warm.Store(true)
	}
}

// Digests asks the target registry for each tag's digest, one HEAD per tag in
// parallel. A tag the registry does not have is absent from the result.
func (e *Engine) Digests(ctx context.Context, image string, tags []string) (map[string]string, error) {
	base, err := ref.New(image)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	repo := base.SetTag("").CommonName()
	rc, err := e.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(tags))
	pending := tags
	var errl []error
	for attempt := 1; attempt <= 2 && len(pending) > 0; attempt++ {
		var refused []string
		refused, errl = e.heads(ctx, rc, base, pending, out, !e.warm(repo, rc))
		if len(refused) == 0 || attempt == 2 {
			break
		}
		if rc, err = e.renew(ctx, repo, rc); err != nil {
			return out, err
		}
		pending = refused
	}
	if len(errl) > 0 {
		return out, fmt.Errorf("reading digests from %s: %w", image, errors.Join(errl...))
	}
	return out, nil
}

// heads sends one HEAD per tag, filling out; it returns the tags whose token
// was refused and every error.
func (e *Engine) heads(ctx context.Context, rc *regclient.RegClient, base ref.Ref, tags []string, out map[string]string, serialFirst bool) ([]string, []error) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		errl    []error
		refused []string
		lim     = make(chan struct{}, 16)
	)
	for i, tag := range tags {
		wg.Add(1)
		head := func() {
			defer wg.Done()
			lim <- struct{}{}
			defer func() { <-lim }()
			m, err := rc.ManifestHead(ctx, base.SetTag(tag), regclient.WithManifestRequireDigest())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[tag] = m.GetDescriptor().Digest.String()
			case errors.Is(err, errs.ErrNotFound):
			default:
				if errors.Is(err, errs.ErrHTTPUnauthorized) {
					refused = append(refused, tag)
				}
				errl = append(errl, fmt.Errorf("tag %q: %w", tag, err))
			}
		}
		if i == 0 && serialFirst {
			// Alone first on a new client: it meets the registry's token
			// challenge once, and the other HEADs go out with the token
			// instead of each drawing a 401.
			head()
			e.markWarm(base.SetTag("").CommonName(), rc)
			continue
		}
		go head()
	}
	wg.Wait()
	return refused, errl
}

// Request is one repository's copy: make every tag in Want point at its digest.
type Request struct {
	Source string // e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api
	Target string // e.g. registry.gitlab.com/group/project/team/api
	// Want maps tag -> digest as planned.
	Want map[string]string
	// Current maps tag -> digest the target holds now; tags equal to Want are skipped.
	Current       map[string]string
	CopyReferrers bool
}

// Result says what landed; nothing that landed is forgotten when others fail.
type Result struct {
	Landed map[string]string // tag -> digest now in the target
	Failed map[string]error  // tag -> why
	Stats  Stats
}

// Stats counts the work done for one request.
type Stats struct {
	Tags         int
	Digests      int
	Bytes        int64
	BlobsCopied  int
	BlobsMounted int
	BlobsSkipped int
}

// Copy copies each differing digest once, then tags it with any further tags.
func (e *Engine) Copy(ctx context.Context, req Request) Result {
	res := Result{Landed: map[string]string{}, Failed: map[string]error{}}
	byDigest := map[string][]string{}
	for tag, dig := range req.Want {
		if req.Current[tag] == dig {
			res.Landed[tag] = dig
			continue
		}
		byDigest[dig] = append(byDigest[dig], tag)
	}
	if len(byDigest) == 0 {
		return res
	}
	src, err := ref.New(req.Source)
	if err == nil {
		var tgt ref.Ref
		tgt, err = ref.New(req.Target)
		if err == nil {
			var rc *regclient.RegClient
			if rc, err = e.client(ctx, tgt.SetTag("").CommonName()); err == nil {
				e.copyDigests(ctx, rc, src, tgt, byDigest, req, &res)
				return res
			}
		}
	}
	for _, tags := range byDigest {
		for _, t := range tags {
			res.Failed[t] = err
		}
	}
	return res
}

func (e *Engine) copyDigests(ctx context.Context, rc *regclient.RegClient, src, tgt ref.Ref, byDigest map[string][]string, req Request, res *Result) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	digests := make([]string, 0, len(byDigest))
	for d := range byDigest {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, dig := range digests {
		tags := byDigest[dig]
		sort.Strings(tags)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats, landed, failed := e.copyDigest(ctx, rc, src, tgt, dig, tags, req.CopyReferrers)
			mu.Lock()
			defer mu.Unlock()
			res.Stats.add(stats)
			for _, t := range landed {
				res.Landed[t] = dig
			}
			for t, err := range failed {
				res.Failed[t] = err
			}
		}()
	}
	wg.Wait()
}

func (s *Stats) add(o Stats) {
	s.Tags += o.Tags
	s.Digests += o.Digests
	s.Bytes += o.Bytes
	s.BlobsCopied += o.BlobsCopied
	s.BlobsMounted += o.BlobsMounted
	s.BlobsSkipped += o.BlobsSkipped
}

// copyDigest copies src@dig to tgt:tags[0], then puts the same manifest bytes
// under the other tags.
func (e *Engine) copyDigest(ctx context.Context, rc *regclient.RegClient, src, tgt ref.Ref, dig string, tags []string, referrers bool) (Stats, []string, map[string]error) {
	start := time.Now()
	var (
		st     Stats
		failed = map[string]error{}
		landed []string
	)
	first := tgt.SetTag(tags[0])
	var (
		err error
		top manifest.Manifest
	)
	transient := 0
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		// Each attempt skips the blobs that already landed.
		c := &copier{e: e, rc: rc, src: src.SetTag(""), tgt: tgt.SetTag(""), referrers: referrers}
		err = c.copyManifest(ctx, dig, tags[0])
		st.add(c.stats)
		top = c.top
		if err == nil || ctx.Err() != nil {
			break
		}
		if tokenRefused(err) {
			// A registry token can lapse between two requests of one copy
			// (GitLab's last 5 minutes): ask for a new one.
			e.cfg.Logger(ctx, "registry refused the token; retrying with a new one", map[string]any{"target": first.CommonName(), "attempt": attempt})
			var renewErr error
			if rc, renewErr = e.renew(ctx, tgt.SetTag("").CommonName(), rc); renewErr != nil {
				err = renewErr
				break
			}
			continue
		}
		if transient++; transient > 1 || !isTransient(err) {
			break
		}
		// A connection cut in the middle of a blob cannot be resumed by
		// regclient (the stream is gone); one more attempt streams it again.
		e.cfg.Logger(ctx, "copy interrupted; retrying once", map[string]any{"target": first.CommonName(), "error": err.Error()})
	}
	srcRef := src.SetDigest(dig)
	if err != nil {
		err = explain(err, srcRef, first)
		for _, t := range tags {
			failed[t] = err
		}
		return st, nil, failed
	}
	st.Digests = 1
	landed = append(landed, tags[0])
	if len(tags) > 1 {
		// Further tags on the digest: the same manifest bytes, one PUT each.
		for _, t := range tags[1:] {
			if err := rc.ManifestPut(ctx, tgt.SetTag(t), top); err != nil {
				failed[t] = explain(err, srcRef, tgt.SetTag(t))
				continue
			}
			landed = append(landed, t)
		}
	}
	st.Tags = len(landed)
	for _, t := range landed {
		e.cfg.Logger(ctx, "copied tag", map[string]any{
			"source":        src.SetTag(t).CommonName(),
			"target":        tgt.SetTag(t).CommonName(),
			"digest":        dig,
			"bytes":         st.Bytes,
			"blobs_copied":  st.BlobsCopied,
			"blobs_mounted": st.BlobsMounted,
			"blobs_skipped": st.BlobsSkipped,
			"seconds":       time.Since(start).Seconds(),
		})
	}
	return st, landed, failed
}

// tokenRefused is a 401: the token lapsed or was revoked. regclient reports
// 403 (denied, e.g. no push right) under the same error; that one is final.
func tokenRefused(err error) bool {
	return errors.Is(err, errs.ErrHTTPUnauthorized) && !strings.Contains(err.Error(), "[http 403]")
}

// isTransient is a failure another attempt may not meet: a broken connection,
// a short read, or the registry's 5xx after regclient's own retries.
func isTransient(err error) bool {
	if errors.As(err, new(transferError)) {
		return !strings.Contains(err.Error(), "[http 403]")
	}
	if errors.Is(err, errs.ErrHTTPStatus) {
		return strings.Contains(err.Error(), "[http 5")
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, errs.ErrNotRetryable) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// explain adds which side failed, so the diagnostic names the registry at fault.
func explain(err error, src, tgt ref.Ref) error {
	switch {
	case errors.As(err, new(transferError)):
		return fmt.Errorf("copying %s to %s: a blob transfer broke off (tried twice): %w", src.CommonName(), tgt.CommonName(), err)
	case errors.Is(err, errs.ErrHTTPUnauthorized):
		return fmt.Errorf("copying %s to %s: the registry refused the credentials: %w", src.CommonName(), tgt.CommonName(), err)
	case errors.Is(err, errs.ErrNotFound):
		return fmt.Errorf("copying %s to %s: %w: %w", src.CommonName(), tgt.CommonName(), ErrNotFound, err)
	default:
		return fmt.Errorf("copying %s to %s: %w", src.CommonName(), tgt.CommonName(), err)
	}
}

// Package mirror is the copy engine: it reads tag digests from GitLab's
// registry and streams, registry to registry, exactly the digests and
// referrers that GitLab lacks. One Engine serves every resource of an apply:
// one regclient, so each registry host has one request limit, one rate limit
// and one backoff (Retry-After included) across the whole provider, one blob
// semaphore, and one index of which GitLab repository holds which blob.
//
// The files follow the concepts: engine.go builds the client, transport.go
// and auth_*.go log in to the registries, read.go reads digests, mirror.go
// copies a repository's tags and referrers, manifests.go and blobs.go walk one digest,
// referrers.go finds signatures and SBOMs, platforms.go the manifests inside
// an index whose own referrers are found too, errors.go says which
// registry refused what.
//
// Why not regclient's ImageCopy, which copies an image in one call: it
// mounts a blob only from the source repository, when source and target
// share a registry, so every GitLab repository would read each shared base
// layer from ECR again, where the blob index here reads it once and mounts it
// into the other repositories. It returns one error for a whole image,
// where a repository's tags must land or fail one by one, with what landed
// recorded and a retry that skips it. And ImageWithReferrers falls back to
// the sha256-<hex> tag scheme on a registry without the referrers API, which
// is GitLab: its registry reads that reference as the digest sha256:<hex>, so
// the fallback would read the subject itself as its list of referrers, and
// GitLab would refuse the list's push as a manifest whose digest does not
// match. Referrers are pushed by digest here, subject first.
package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/manifest"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// Logger receives progress lines; fields never hold secrets.
type Logger func(ctx context.Context, msg string, fields map[string]any)

// Config sets up an Engine.
type Config struct {
	// ECR supplies the ECR registry credential, asked only when a request
	// goes to ECR.
	ECR Credentials
	// ECREndpoint overrides where ECR registry traffic goes (tests, proxies);
	// references keep their ECR host names.
	ECREndpoint string
	// ECRNetwork and GitLabNetwork set each side's proxies, CAs and idle
	// timeout; Amazon S3, where ECR sends layer downloads, is on ECR's side.
	ECRNetwork    network.Settings
	GitLabNetwork network.Settings
	// GitLabUser and GitLabToken log in to GitLab's registry token service;
	// GitLabUser is asked once, when the first token is needed.
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

// Engine copies images; safe for concurrent use by many resources.
type Engine struct {
	cfg       Config
	sem       chan struct{} // bounds blob transfers across every resource
	opening   chan struct{} // bounds the blobs about to take a slot of sem
	transport *registryTransport
	blobs     *blobIndex
	tagsAPI   *tagsAPI
	// manifests keeps the ECR manifests read, by repository and digest.
	manifests *lru.Cache[string, manifest.Manifest]
	// tagScheme remembers, per GitLab registry host, whether it keeps the
	// referrers fallback tag as a tag (see referrers.go).
	tagScheme sync.Map

	mu sync.Mutex
	rc *regclient.RegClient
	// hosts need their own entry in regclient's configuration: plain-HTTP
	// GitLab registries and ECR names sent to an endpoint override.
	hosts map[string]config.Host
}

// New builds an engine; no request is made until it is used.
func New(cfg Config) *Engine {
	if cfg.MaxConcurrentBlobs <= 0 {
		cfg.MaxConcurrentBlobs = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = func(context.Context, string, map[string]any) {}
	}
	pooled := func(t *http.Transport) {
		t.MaxIdleConnsPerHost = requestsPerHost(cfg) * 2
		t.MaxIdleConns = t.MaxIdleConnsPerHost * 4
	}
	gitlabBase := newStreamSplit(cfg.GitLabNetwork, pooled)
	t := &registryTransport{
		ecrBase:     newStreamSplit(cfg.ECRNetwork, pooled),
		gitlabBase:  gitlabBase,
		ecr:         &ecrLogin{creds: cfg.ECR},
		gitlab:      newGitLabTokens(cfg.GitLabUser, cfg.GitLabToken, gitlabBase.calls),
		gitlabHosts: map[string]bool{},
		ecrHosts:    map[string]bool{},
	}
	manifests, _ := lru.New[string, manifest.Manifest](manifestCacheSize) // fails only for a size below 1
	return &Engine{
		cfg:       cfg,
		sem:       make(chan struct{}, cfg.MaxConcurrentBlobs),
		opening:   make(chan struct{}, cfg.MaxConcurrentBlobs),
		transport: t,
		blobs:     newBlobIndex(),
		tagsAPI:   newTagsAPI(t),
		manifests: manifests,
		hosts:     map[string]config.Host{},
	}
}

// manifestCacheSize bounds the ECR manifests kept (a few kB each).
const manifestCacheSize = 4096

// requestsPerHost is regclient's concurrency per registry host. A blob copy
// holds a slot on both hosts, and HEADs and manifests must not queue behind
// the blobs.
func requestsPerHost(cfg Config) int { return 2*cfg.MaxConcurrentBlobs + 4 }

// AddGitLabRegistry makes a GitLab registry host known: requests to it log
// in with the GitLab token; insecure is plain HTTP (local testing only).
func (e *Engine) AddGitLabRegistry(host string, insecure bool) {
	e.transport.mu.Lock()
	e.transport.gitlabHosts[host] = true
	e.transport.mu.Unlock()
	if insecure {
		e.configureHost(config.Host{Name: host, TLS: config.TLSDisabled})
	}
}

// addECRHost prepares an ECR registry host name for use, sending it to the
// endpoint override when one is set.
func (e *Engine) addECRHost(name string) error {
	if e.cfg.ECREndpoint == "" {
		return nil
	}
	u, err := url.Parse(e.cfg.ECREndpoint)
	if err != nil || u.Host == "" {
		return &SideError{Side: SideECR, Err: fmt.Errorf("invalid ECR registry endpoint %q", e.cfg.ECREndpoint)}
	}
	e.transport.mu.Lock()
	e.transport.ecrHosts[u.Host] = true
	e.transport.mu.Unlock()
	h := config.Host{Name: name, Hostname: u.Host}
	if u.Scheme == "http" {
		h.TLS = config.TLSDisabled
	}
	e.configureHost(h)
	return nil
}

// configureHost adds a host entry. regclient takes its host configuration
// when it is built, so a new entry means a new client; entries are known
// from the provider configuration, so this happens before the first request
// or, with an ECR endpoint override, once per ECR account.
func (e *Engine) configureHost(h config.Host) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.hosts[h.Name]; ok && old.Hostname == h.Hostname && old.TLS == h.TLS {
		return
	}
	e.hosts[h.Name] = h
	e.rc = nil
}

// client returns the regclient, building it on first use.
func (e *Engine) client() *regclient.RegClient {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rc != nil {
		return e.rc
	}
	hosts := make([]config.Host, 0, len(e.hosts))
	for _, h := range e.hosts {
		h.ReqConcurrent = int64(requestsPerHost(e.cfg))
		h.ReqPerSec = e.cfg.RequestsPerSecond
		hosts = append(hosts, h)
	}
	opts := []regclient.Opt{
		regclient.WithConfigHostDefault(config.Host{ReqConcurrent: int64(requestsPerHost(e.cfg)), ReqPerSec: e.cfg.RequestsPerSecond}),
		regclient.WithConfigHost(hosts...),
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: e.transport})),
		regclient.WithRegOpts(reg.WithRetryLimit(3)),
		// After a failure regclient spaces every later request to that host
		// by this delay (a Retry-After overrides it), doubled per failure in
		// a row: the ceiling is the pace of a host that keeps failing, so it
		// must not stall the run (at 2 s, a repository whose uploads GitLab
		// refused took many minutes to fail).
		regclient.WithRegOpts(reg.WithDelay(50*time.Millisecond, 250*time.Millisecond)),
	}
	if e.cfg.Slog != nil {
		opts = append(opts, regclient.WithSlog(e.cfg.Slog))
	}
	if e.cfg.UserAgent != "" {
		opts = append(opts, regclient.WithUserAgent(e.cfg.UserAgent))
	}
	e.rc = regclient.New(opts...)
	return e.rc
}

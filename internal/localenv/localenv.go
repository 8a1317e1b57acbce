// Package localenv runs real local stand-ins for Amazon ECR and GitLab so the
// acceptance tests, the demo and the benchmark can exercise the provider
// without any network, held to the rules of the real services:
//
//   - moto_server as the ECR API, with IAM enforced (a read-only user for the
//     provider, an admin user for seeding); its proxy turns moto's errors
//     into ECR's JSON ones and answers each GetAuthorizationToken with a
//     fresh registry token that expires 12 hours later;
//   - Debian's docker-registry (distribution 2.8) with htpasswd auth as the
//     ECR registry endpoint, behind a proxy that authenticates like ECR
//     (ecr_registry.go): tokens from GetAuthorizationToken, 403 once they
//     expire, 403 for every write with one (counted: a test fails on any),
//     and a 307 for each layer GET to a pre-signed URL on an S3 stand-in on
//     another host name (s3.go), which refuses a second auth mechanism and
//     expired URLs as S3 does; the environment itself writes with its own
//     credential (ECRPassword);
//   - the fake GitLab API and /jwt/auth token service of package fakegitlab;
//   - a second docker-registry with token auth, configured like GitLab's own,
//     behind a proxy with GitLab's registry rules (fakegitlab):
//     protected and immutable tags, rate limits, sha256-<hex> references
//     read as digests, at most two image levels below a project;
//   - counting, fault-injecting proxies in front of every endpoint, which
//     can also stall or cut a connection (netfault.go);
//   - a forward proxy such as companies run (forwardproxy.go);
//   - an image generator that pushes Docker/OCI images, indexes and referrers.
//
// Every endpoint speaks HTTPS with certificates from a CA made at start
// (tls.go), whose PEM is CAFile; HTTP/2 is offered where the real service
// offers it (S3, GitLab). Options.PlainHTTP serves plain HTTP instead, for
// debugging. The registries themselves listen plain on 127.0.0.1 behind
// the TLS proxies.
//
// No production code imports this package.
package localenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

const (
	defaultRegion    = "us-east-1"
	defaultAccountID = "123456789012" // moto's default account
	defaultProject   = "migration/images"
	readyTimeout     = 20 * time.Second
)

// Options configures Start.
type Options struct {
	GitLabTokenTTL time.Duration                    // default 300s
	Seed           bool                             // run SeedSamples during Start
	Logf           func(format string, args ...any) // optional progress lines
	// WAN is the network between the clients and every endpoint: a round
	// trip and a rate per connection (see package wan); zero is loopback.
	WAN       wan.Profile
	PlainHTTP bool // serve plain HTTP instead of HTTPS, for debugging
}

// Env is a running (or, via Connect, reconnected) local environment.
type Env struct {
	Region, AccountID                      string
	AccessKeyID, SecretAccessKey           string // the read-only user: what the provider uses
	AdminAccessKeyID, AdminSecretAccessKey string
	ECRAPIEndpoint                         string // moto (through ECRAPIProxy), "https://127.0.0.1:P"
	ECRRegistryName                        string // "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	ECRRegistryEndpoint                    string // proxy in front of the htpasswd docker-registry
	ECRPassword                            string // the environment's own registry password for user AWS; it may write (the provider gets tokens from GetAuthorizationToken instead)
	GitLabURL                              string // fake GitLab (through GitLabAPIProxy), "https://127.0.0.1:P"
	GitLabToken                            string
	GitLabRegistryHost                     string // "127.0.0.1:P", proxy in front of the token-auth registry
	GitLabRegistryURL                      string // "https://" + GitLabRegistryHost
	CAFile                                 string // PEM of the CA behind every endpoint's certificate; "" with PlainHTTP
	GitLab                                 *fakegitlab.GitLab
	ECRProxy, GitLabProxy                  *Proxy
	GitLabAPIProxy                         *Proxy // in front of the fake GitLab API
	ECRAPIProxy                            *Proxy // in front of moto; also turns its XML auth errors into ECR's JSON ones and issues ECR's registry tokens
	S3                                     *S3    // where the ECR registry redirects layer downloads
	Seeded                                 []Image
	WorkDir                                string

	logf         func(format string, args ...any)
	wan          *wan.Shaper // every endpoint's listener goes through it
	serving      *servingTLS // nil: plain HTTP
	caPEM        []byte
	names        testNames
	client       *http.Client
	procs        []*proc
	extraMu      sync.Mutex
	extraServers []*http.Server // ServeBadCert's listeners
	ecrTokens    *ecrTokens
	ecrPulls     *ecrPulls
	ecr          *ecrRegistry
	closeOnce    sync.Once
	closeErr     error
	layerMu      sync.Mutex
	layerDigs    map[Layer]string // digest cache so shared base layers are hashed once
}

// State is what a separate process needs to reconnect to a running Env
// (written as .localenv/state.json by the localenv command).
type State struct {
	Region               string `json:"region"`
	AccountID            string `json:"account_id"`
	AccessKeyID          string `json:"access_key_id"`
	SecretAccessKey      string `json:"secret_access_key"`
	AdminAccessKeyID     string `json:"admin_access_key_id"`
	AdminSecretAccessKey string `json:"admin_secret_access_key"`
	ECRAPIEndpoint       string `json:"ecr_api_endpoint"`
	ECRRegistryName      string `json:"ecr_registry_name"`
	ECRRegistryEndpoint  string `json:"ecr_registry_endpoint"`
	ECRPassword          string `json:"ecr_password"`
	GitLabURL            string `json:"gitlab_url"`
	GitLabToken          string `json:"gitlab_token"`
	GitLabRegistryHost   string `json:"gitlab_registry_host"`
	GitLabRegistryURL    string `json:"gitlab_registry_url"`
	CAFile               string `json:"ca_file,omitempty"`
	WorkDir              string `json:"work_dir"`
}

// State returns the reconnect information of e.
func (e *Env) State() State {
	return State{
		Region: e.Region, AccountID: e.AccountID,
		AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey,
		AdminAccessKeyID: e.AdminAccessKeyID, AdminSecretAccessKey: e.AdminSecretAccessKey,
		ECRAPIEndpoint: e.ECRAPIEndpoint, ECRRegistryName: e.ECRRegistryName,
		ECRRegistryEndpoint: e.ECRRegistryEndpoint, ECRPassword: e.ECRPassword,
		GitLabURL: e.GitLabURL, GitLabToken: e.GitLabToken,
		GitLabRegistryHost: e.GitLabRegistryHost, GitLabRegistryURL: e.GitLabRegistryURL,
		CAFile: e.CAFile, WorkDir: e.WorkDir,
	}
}

// Connect builds an Env for an environment started by another process. It
// owns no process: GitLab and the proxies are nil and Close does nothing, but
// the image pushers and ECRClient work.
func Connect(s State) (*Env, error) {
	e := &Env{
		Region: s.Region, AccountID: s.AccountID,
		AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey,
		AdminAccessKeyID: s.AdminAccessKeyID, AdminSecretAccessKey: s.AdminSecretAccessKey,
		ECRAPIEndpoint: s.ECRAPIEndpoint, ECRRegistryName: s.ECRRegistryName,
		ECRRegistryEndpoint: s.ECRRegistryEndpoint, ECRPassword: s.ECRPassword,
		GitLabURL: s.GitLabURL, GitLabToken: s.GitLabToken,
		GitLabRegistryHost: s.GitLabRegistryHost, GitLabRegistryURL: s.GitLabRegistryURL,
		CAFile: s.CAFile, WorkDir: s.WorkDir,
		logf: func(string, ...any) {},
	}
	if s.CAFile != "" {
		var err error
		if e.caPEM, err = os.ReadFile(s.CAFile); err != nil {
			return nil, fmt.Errorf("the environment's CA: %w", err)
		}
	}
	e.client = newClient(e.caPEM)
	return e, nil
}

// New starts an Env for a test, fails the test on error and closes it in
// t.Cleanup.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("localenv: %v", err)
	}
	t.Cleanup(func() {
		if n := e.ECRWriteAttempts(); n > 0 {
			t.Errorf("localenv: %d write requests reached the ECR registry with a token from GetAuthorizationToken; the read-only policy forbids them", n)
		}
		if err := e.Close(); err != nil {
			t.Errorf("localenv close: %v", err)
		}
	})
	return e
}

// Start launches every component. On error everything already started is
// stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.GitLabTokenTTL <= 0 {
		opts.GitLabTokenTTL = 300 * time.Second
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	motoBin, err := findMoto()
	if err != nil {
		return nil, err
	}
	registryBin, err := findRegistry()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "imagesync-localenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{
		Region:          defaultRegion,
		AccountID:       defaultAccountID,
		ECRRegistryName: fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com", defaultAccountID, defaultRegion),
		ECRPassword:     randomHex(24),
		WorkDir:         dir,
		logf:            logf,
		ecrTokens:       newECRTokens(),
		wan:             wan.NewShaper(opts.WAN),
		ecrPulls:        newECRPulls(),
	}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	if err := e.makeCA(opts.PlainHTTP); err != nil {
		return nil, err
	}

	if err := e.startMoto(ctx, motoBin); err != nil {
		return nil, err
	}
	logf("moto (ECR API, IAM enforced) at %s", e.ECRAPIEndpoint)

	// ECR registry endpoint: htpasswd docker-registry behind a proxy.
	ecrPort, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := e.startECRRegistry(ctx, registryBin, ecrPort); err != nil {
		return nil, err
	}
	if err := e.startECRProxy(fmt.Sprintf("http://127.0.0.1:%d", ecrPort)); err != nil {
		return nil, err
	}
	logf("ECR registry (docker-registry, htpasswd) at %s (proxy of 127.0.0.1:%d), layers redirected to %s", e.ECRRegistryEndpoint, ecrPort, e.S3.URL)

	// GitLab: the API must listen before its registry, whose realm points at it.
	gl, err := fakegitlab.New(opts.GitLabTokenTTL)
	if err != nil {
		return nil, err
	}
	e.GitLab = gl
	// The fake listens plain on 127.0.0.1; clients reach it through a TLS
	// front, which the WAN profile shapes and whose URL the fake hands out
	// (web URLs, the registry's token realm).
	if e.GitLabAPIProxy, err = e.newProxy(gl.URL, nil, http2Too, "gitlab.test"); err != nil {
		return nil, err
	}
	gl.URL = e.GitLabAPIProxy.URL
	e.GitLabURL = gl.URL
	e.GitLabToken = gl.Token()
	glPort, err := freePort()
	if err != nil {
		return nil, err
	}
	glRoot, err := e.startGitLabRegistry(ctx, registryBin, glPort, gl)
	if err != nil {
		return nil, err
	}
	e.GitLabProxy, err = e.newProxy(fmt.Sprintf("http://127.0.0.1:%d", glPort), gl.ServeRegistryRules, http2Too, "registry.test")
	if err != nil {
		return nil, err
	}
	e.GitLabRegistryHost = e.GitLabProxy.Host
	e.GitLabRegistryURL = e.GitLabProxy.URL
	gl.SetRegistry(e.GitLabRegistryHost, glRoot)
	if err := gl.SetRegistryBackend(fmt.Sprintf("http://127.0.0.1:%d", glPort)); err != nil {
		return nil, err
	}
	gl.AddProject(defaultProject)
	logf("GitLab API at %s (token %s), registry at %s", e.GitLabURL, e.GitLabToken, e.GitLabRegistryURL)

	if opts.Seed {
		t0 := time.Now()
		imgs, err := e.SeedSamples(ctx)
		if err != nil {
			return nil, fmt.Errorf("seeding samples: %w", err)
		}
		logf("seeded %d sample images in %s", len(imgs), time.Since(t0).Round(time.Millisecond))
	}
	return e, nil
}

// Close stops every process and server and removes the work dir. Safe to call
// more than once.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for i := len(e.procs) - 1; i >= 0; i-- {
			errs = append(errs, e.procs[i].stop())
		}
		if e.ECRAPIProxy != nil {
			errs = append(errs, e.ECRAPIProxy.Close())
		}
		if e.ECRProxy != nil {
			errs = append(errs, e.ECRProxy.Close())
		}
		if e.S3 != nil {
			errs = append(errs, e.S3.Close())
		}
		if e.GitLabProxy != nil {
			errs = append(errs, e.GitLabProxy.Close())
		}
		if e.GitLabAPIProxy != nil {
			errs = append(errs, e.GitLabAPIProxy.Close())
		}
		e.extraMu.Lock()
		for _, srv := range e.extraServers {
			errs = append(errs, srv.Close())
		}
		e.extraMu.Unlock()
		if e.GitLab != nil {
			errs = append(errs, e.GitLab.Close())
		}
		if e.procs != nil || e.GitLab != nil { // only an Env we started owns WorkDir
			errs = append(errs, os.RemoveAll(e.WorkDir))
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// ECRClient returns an ECR API client against moto, signed with the read-only
// key, or the admin key when admin is true.
func (e *Env) ECRClient(ctx context.Context, admin bool) *ecr.Client {
	_ = ctx // kept for symmetry with config.LoadDefaultConfig callers
	id, secret := e.AccessKeyID, e.SecretAccessKey
	if admin {
		id, secret = e.AdminAccessKeyID, e.AdminSecretAccessKey
	}
	return ecr.NewFromConfig(e.awsConfig(id, secret), func(o *ecr.Options) {
		o.BaseEndpoint = aws.String(e.ECRAPIEndpoint)
	})
}

func (e *Env) awsConfig(id, secret string) aws.Config {
	// Built by hand rather than config.LoadDefaultConfig so nothing from the
	// developer's ~/.aws or environment leaks in.
	return aws.Config{
		Region:      e.Region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  e.HTTPClient(),
	}
}

// EnvVars are the variables the provider (and terraform) read.
func (e *Env) EnvVars() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":               e.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":           e.SecretAccessKey,
		"AWS_REGION":                      e.Region,
		"AWS_ENDPOINT_URL_ECR":            e.ECRAPIEndpoint,
		"GITLAB_BASE_URL":                 e.GitLabURL,
		"GITLAB_TOKEN":                    e.GitLabToken,
		"IMAGESYNC_ECR_REGISTRY_ENDPOINT": e.ECRRegistryEndpoint,
		"IMAGESYNC_GITLAB_REGISTRY_URL":   e.GitLabRegistryURL,
	}
}

// ShellExports renders EnvVars and CAEnvVars as sorted `export K='V'` lines.
func (e *Env) ShellExports() string {
	vars := e.EnvVars()
	maps.Copy(vars, e.CAEnvVars())
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(vars[k], "'", `'\''`))
	}
	return b.String()
}

// ProviderHCL is a provider block for this environment, trusting its CA
// through custom_ca_bundle and cacert_file. The GitLab token and the AWS keys
// are left to the environment (GITLAB_TOKEN, AWS_*).
func (e *Env) ProviderHCL() string { return e.ProviderHCLFor(e.Endpoints(), true) }

// ProviderHCLFor is a provider block for the endpoints ep, with the CA
// attributes when withCA is set (and the environment serves HTTPS).
func (e *Env) ProviderHCLFor(ep Endpoints, withCA bool) string {
	ecrCA, gitlabCA := "", ""
	if withCA && e.CAFile != "" {
		ecrCA = fmt.Sprintf("    custom_ca_bundle  = %q\n", e.CAFile)
		gitlabCA = fmt.Sprintf("    cacert_file  = %q\n", e.CAFile)
	}
	return fmt.Sprintf(`provider "imagesync" {
  ecr {
    region            = %q
    endpoint          = %q
    registry_endpoint = %q
%s  }
  gitlab {
    base_url     = %q
    registry_url = %q
%s  }
}
`, e.Region, ep.ECRAPI, ep.ECRRegistry, ecrCA, ep.GitLabAPI, ep.GitLabRegistry, gitlabCA)
}

// Endpoints are the URLs of the environment's five endpoints.
type Endpoints struct {
	ECRAPI, ECRRegistry, S3, GitLabAPI, GitLabRegistry string
}

// Endpoints are the environment's endpoints as it hands them out.
func (e *Env) Endpoints() Endpoints {
	ep := Endpoints{ECRAPI: e.ECRAPIEndpoint, ECRRegistry: e.ECRRegistryEndpoint, GitLabAPI: e.GitLabURL, GitLabRegistry: e.GitLabRegistryURL}
	if e.S3 != nil {
		ep.S3 = e.S3.URL
	}
	return ep
}

// TestNamed are the endpoints under their names ending in .test (ecr.test,
// ecr-api.test, s3.test, gitlab.test, registry.test), which only a
// ForwardProxy resolves: what a client must use to go through the proxy.
// The S3 URLs the ECR registry hands out and the GitLab registry's token
// realm follow the name the client used.
func (e *Env) TestNamed() Endpoints {
	ep := e.Endpoints()
	return Endpoints{
		ECRAPI: e.names.url(ep.ECRAPI), ECRRegistry: e.names.url(ep.ECRRegistry), S3: e.names.url(ep.S3),
		GitLabAPI: e.names.url(ep.GitLabAPI), GitLabRegistry: e.names.url(ep.GitLabRegistry),
	}
}

// MarshalState is State() as indented JSON.
func (e *Env) MarshalState() ([]byte, error) {
	return json.MarshalIndent(e.State(), "", "  ")
}

// freePort asks the kernel for a free port on 127.0.0.1. There is a small
// race until the child binds it; acceptable for a test environment.
func freePort() (int, error) {
	l, err := listenLocal()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("listening on 127.0.0.1:0 gave a %T address", l.Addr())
	}
	return addr.Port, nil
}

// listenLocal listens on a free port of 127.0.0.1.
func listenLocal() (net.Listener, error) {
	return (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
}

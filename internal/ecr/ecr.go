// Package ecr is the Amazon ECR side of the migration: listing repositories and
// their tags through the ECR API, and the registry credentials for reading
// image content. It only ever calls the read-only actions of the migration's
// IAM policy and never writes to ECR.
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// ErrRepositoryNotFound reports an ECR repository that does not exist.
var ErrRepositoryNotFound = errors.New("ECR repository not found")

// Config selects the AWS account, region and endpoints. Empty fields fall back
// to the AWS SDK's default chain (environment, shared config, profile).
type Config struct {
	Region     string
	Profile    string
	RegistryID string
	// Endpoint overrides the ECR API endpoint; AWS_ENDPOINT_URL_ECR works too.
	Endpoint string
	// RegistryEndpoint overrides where registry traffic goes (tests, proxies,
	// VPC endpoints); references keep their real ECR host names.
	RegistryEndpoint string
	AssumeRole       *AssumeRole
	// Network sets proxies, CAs and the idle timeout of the API's connections.
	Network network.Settings
}

// AssumeRole names a role to assume on top of the base credentials.
type AssumeRole struct {
	RoleARN     string
	SessionName string
	ExternalID  string
}

// API is the part of the ECR API this package uses; a seam for unit tests.
type API interface {
	ecr.DescribeRepositoriesAPIClient
	ecr.ListImagesAPIClient
	ecr.DescribeImagesAPIClient
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Client reads repositories, tags and registry credentials from ECR.
type Client struct {
	api        API
	registryID string
	endpoint   string
	region     string

	mu       sync.Mutex
	cred     Credential
	listings map[string]listing
	clock    func() time.Time
	// defaultAccount is the account of the caller's own registry, once a
	// listing of it told: the data source caches tags under the account a
	// repository names, and a resource that names no registry must find them.
	defaultAccount string
}

// Credential is what the ECR registry accepts: user AWS and a token that lasts 12 hours.
type Credential struct {
	// Host is the registry host name, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com.
	Host     string
	User     string
	Password string
	// RefreshAt is when the credential should be replaced, well before it lapses.
	RefreshAt time.Time
}

// newRetryer is the SDK's adaptive retryer, which slows the client down when
// ECR throttles so a large migration does not push a production registry
// past its quotas, except that a stall is not tried again: a server that
// sent nothing for idle_timeout would cost that again on every attempt.
func newRetryer() aws.Retryer {
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(stallNotRetried)}, so.Retryables...)
		})
	})
}

func stallNotRetried(err error) aws.Ternary {
	if f, ok := network.Explain(err); ok && f.Kind == network.KindStall {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// New builds a client on the AWS SDK's default credential chain.
func New(ctx context.Context, cfg Config) (*Client, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(cfg.Profile))
	}
	loadOpts = append(loadOpts, awsconfig.WithRetryer(newRetryer))
	// The SDK's own client, so that it still adds AWS_CA_BUNDLE (to the pool
	// set here, which holds the system's CAs too) and ends reads that stall.
	loadOpts = append(loadOpts, awsconfig.WithHTTPClient(awshttp.NewBuildableClient().
		WithTransportOptions(cfg.Network.Apply).WithReadTimeout(cfg.Network.Idle())))
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("no AWS region: set ecr.region, AWS_REGION or a region in the AWS profile")
	}
	if ar := cfg.AssumeRole; ar != nil && ar.RoleARN != "" {
		stsClient := sts.NewFromConfig(awsCfg)
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, ar.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			if ar.SessionName != "" {
				o.RoleSessionName = ar.SessionName
			}
			if ar.ExternalID != "" {
				o.ExternalID = aws.String(ar.ExternalID)
			}
		}))
	}
	api := ecr.NewFromConfig(awsCfg, func(o *ecr.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	c := NewWithAPI(api, cfg.RegistryID, cfg.RegistryEndpoint)
	c.region = awsCfg.Region
	return c, nil
}

// NewWithAPI wraps an existing API client.
func NewWithAPI(api API, registryID, registryEndpoint string) *Client {
	return &Client{api: api, registryID: registryID, endpoint: registryEndpoint, clock: time.Now, listings: map[string]listing{}}
}

// RegistryEndpoint is the override for registry traffic, or "".
func (c *Client) RegistryEndpoint() string { return c.endpoint }

// Repository is one ECR repository and its tagged images.
type Repository struct {
	Name          string
	URI           string
	ARN           string
	RegistryID    string
	CreatedAt     time.Time
	TagMutability string
	// Images maps tag -> digest; untagged images are left out.
	Images map[string]string
}

// Filter selects repositories and tags. Zero values select everything.
type Filter struct {
	RegistryID string
	Names      []string
	NamePrefix string
	NameRegex  Matcher
	Exclude    Matcher
	TagRegex   Matcher
}

// Matcher is satisfied by *regexp.Regexp.
type Matcher interface{ MatchString(string) bool }

func (c *Client) registry(id string) *string {
	if id != "" {
		return aws.String(id)
	}
	if c.registryID != "" {
		return aws.String(c.registryID)
	}
	return nil
}

// Repositories lists repositories matching the filter, sorted by name, each with its tags.
func (c *Client) Repositories(ctx context.Context, f Filter) ([]Repository, error) {
	repos, err := c.DescribeRepositories(ctx, f)
	if err != nil {
		return nil, err
	}
	if err := c.ListTagsOf(ctx, repos, f.TagRegex); err != nil {
		return nil, err
	}
	return repos, nil
}

// DescribeRepositories lists the repositories whose names pass the filter,
// sorted by name, without their tags.
func (c *Client) DescribeRepositories(ctx context.Context, f Filter) ([]Repository, error) {
	in := &ecr.DescribeRepositoriesInput{RegistryId: c.registry(f.RegistryID)}
	if len(f.Names) > 0 {
		in.RepositoryNames = f.Names // ECR refuses maxResults beside names
	} else {
		in.MaxResults = aws.Int32(pageLimit)
	}
	var repos []Repository
	p := ecr.NewDescribeRepositoriesPaginator(c.api, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			var nf *types.RepositoryNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("%w: %s", ErrRepositoryNotFound, aws.ToString(nf.Message))
			}
			return nil, fmt.Errorf("describing ECR repositories: %w", err)
		}
		for _, r := range out.Repositories {
			name := aws.ToString(r.RepositoryName)
			if f.NamePrefix != "" && !strings.HasPrefix(name, f.NamePrefix) {
				continue
			}
			if f.NameRegex != nil && !f.NameRegex.MatchString(name) {
				continue
			}
			if f.Exclude != nil && f.Exclude.MatchString(name) {
				continue
			}
			repos = append(repos, Repository{
				Name:          name,
				URI:           aws.ToString(r.RepositoryUri),
				ARN:           aws.ToString(r.RepositoryArn),
				RegistryID:    aws.ToString(r.RegistryId),
				CreatedAt:     aws.ToTime(r.CreatedAt),
				TagMutability: string(r.ImageTagMutability),
			})
		}
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].Name < repos[j].Name })
	if c.registry(f.RegistryID) == nil && len(repos) > 0 && repos[0].RegistryID != "" {
		c.mu.Lock()
		c.defaultAccount = repos[0].RegistryID
		c.mu.Unlock()
	}
	return repos, nil
}

// ListTagsOf fills in the Images of each repository, keeping the tags that
// tagFilter (if set) accepts.
func (c *Client) ListTagsOf(ctx context.Context, repos []Repository, tagFilter Matcher) error {
	return eachRepository(ctx, len(repos), func(ctx context.Context, i int) (err error) {
		repos[i].Images, err = c.Tags(ctx, repos[i].RegistryID, repos[i].Name, tagFilter)
		return err
	})
}

// eachRepository runs fn for repositories 0 to n-1, listConcurrency at a
// time (a plan over hundreds of repositories waits on these calls, and ECR
// allows far more than this), and returns the first error: the listing fails
// as a whole, so the calls not yet started are not made and those in flight
// see their context canceled.
func eachRepository(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	for i := range n {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(ctx, i)
		})
	}
	return g.Wait()
}

// pageLimit is the largest page DescribeRepositories and ListImages return.
// Their default is 100, so asking for the largest cuts the calls a listing of
// thousands of repositories makes against ECR's per-region rate limits
// tenfold.
const pageLimit = 1000

// listConcurrency bounds the ListImages calls in flight for one listing.
const listConcurrency = 8

// listing is one ListImages walk of a repository, kept for the life of the
// client: one provider process serves one Terraform operation, and one plan
// reads each repository through the data source and again in every
// resource's plan. Kept for the whole plan, not for a fixed time: a plan of
// thousands of repositories outlasts any fixed lifetime, and the same
// repositories were then listed twice.
type listing struct {
	tags map[string]string // tag -> digest
	// digests is every manifest the repository holds, tagged or not: ECR
	// lists the platforms of an index and referrers as untagged images.
	digests []string
}

// Tags returns tag -> digest for one repository, keeping tags the matcher accepts.
func (c *Client) Tags(ctx context.Context, registryID, repository string, tagFilter Matcher) (map[string]string, error) {
	l, err := c.listing(ctx, registryID, repository)
	if err != nil {
		return nil, err
	}
	images := make(map[string]string, len(l.tags))
	for tag, dig := range l.tags {
		if tagFilter == nil || tagFilter.MatchString(tag) {
			images[tag] = dig
		}
	}
	return images, nil
}

// Digests returns every manifest digest the repository holds, sorted: tagged
// images, the platforms inside indexes and referrers, from the same listing
// as Tags.
func (c *Client) Digests(ctx context.Context, registryID, repository string) ([]string, error) {
	l, err := c.listing(ctx, registryID, repository)
	if err != nil {
		return nil, err
	}
	return l.digests, nil
}

func (c *Client) listing(ctx context.Context, registryID, repository string) (listing, error) {
	c.mu.Lock()
	account := aws.ToString(c.registry(registryID))
	if account == "" {
		account = c.defaultAccount
	}
	key := account + "/" + repository
	hit, ok := c.listings[key]
	c.mu.Unlock()
	if ok {
		return hit, nil
	}
	l, err := c.listImages(ctx, registryID, repository)
	if err != nil {
		return listing{}, err
	}
	c.mu.Lock()
	c.listings[key] = l
	c.mu.Unlock()
	return l, nil
}

// listImages lists tagged and untagged images in one walk: the untagged ones
// cost nothing extra in a repository of fewer than a thousand images, and
// they tell whether any referrer can exist (see Digests).
func (c *Client) listImages(ctx context.Context, registryID, repository string) (listing, error) {
	l := listing{tags: map[string]string{}, digests: []string{}}
	seen := map[string]bool{}
	p := ecr.NewListImagesPaginator(c.api, &ecr.ListImagesInput{
		RegistryId:     c.registry(registryID),
		RepositoryName: aws.String(repository),
		Filter:         &types.ListImagesFilter{TagStatus: types.TagStatusAny},
		MaxResults:     aws.Int32(pageLimit),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			var nf *types.RepositoryNotFoundException
			if errors.As(err, &nf) {
				where := "the registry of the caller's account"
				if id := c.registry(registryID); id != nil {
					where = "the registry of account " + *id
				}
				return listing{}, fmt.Errorf("%w: %q in %s", ErrRepositoryNotFound, repository, where)
			}
			return listing{}, fmt.Errorf("listing images of ECR repository %q: %w", repository, err)
		}
		for _, id := range out.ImageIds {
			dig := aws.ToString(id.ImageDigest)
			if dig != "" && !seen[dig] {
				seen[dig] = true
				l.digests = append(l.digests, dig)
			}
			if tag := aws.ToString(id.ImageTag); tag != "" {
				l.tags[tag] = dig
			}
		}
	}
	sort.Strings(l.digests)
	return l, nil
}

// tokenRefreshMargin is how long before expiry a token is replaced: long
// enough that no copy starts on a token about to lapse.
const tokenRefreshMargin = 30 * time.Minute

// fallbackLifetime applies when ECR reports an expiry that is missing or
// already past (some ECR stand-ins do): refresh often, but not on every call.
const fallbackLifetime = time.Hour

// Credential returns the registry credential, fetching a new token when the
// current one is near its end.
func (c *Client) Credential(ctx context.Context) (Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if c.cred.Password != "" && now.Before(c.cred.RefreshAt) {
		return c.cred, nil
	}
	in := &ecr.GetAuthorizationTokenInput{}
	if c.registryID != "" {
		in.RegistryIds = []string{c.registryID} //nolint:staticcheck // still how a registry is chosen
	}
	out, err := c.api.GetAuthorizationToken(ctx, in)
	if err != nil {
		return Credential{}, fmt.Errorf("getting the ECR registry token (ecr:GetAuthorizationToken): %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return Credential{}, errors.New("ECR returned no authorization data")
	}
	data := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(data.AuthorizationToken))
	if err != nil {
		return Credential{}, fmt.Errorf("decoding the ECR registry token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return Credential{}, errors.New("the ECR registry token is not of the form user:password")
	}
	u, err := url.Parse(aws.ToString(data.ProxyEndpoint))
	if err != nil || u.Host == "" {
		return Credential{}, fmt.Errorf("ECR returned an unusable registry endpoint %q", aws.ToString(data.ProxyEndpoint))
	}
	refresh := aws.ToTime(data.ExpiresAt).Add(-tokenRefreshMargin)
	if !refresh.After(now) {
		refresh = now.Add(fallbackLifetime)
	}
	c.cred = Credential{Host: u.Host, User: user, Password: pass, RefreshAt: refresh}
	return c.cred, nil
}

// Renew replaces a credential the registry refused, unless another caller
// replaced it already, and returns the current one.
func (c *Client) Renew(ctx context.Context, refused Credential) (Credential, error) {
	c.mu.Lock()
	if c.cred.Password == refused.Password {
		c.cred = Credential{}
	}
	c.mu.Unlock()
	return c.Credential(ctx)
}

// RegistryHost is the registry host name of an account, e.g.
// 123456789012.dkr.ecr.eu-west-1.amazonaws.com. For the default account
// ("" and no registry_id) ECR tells it with the registry credential.
func (c *Client) RegistryHost(ctx context.Context, registryID string) (string, error) {
	id := aws.ToString(c.registry(registryID))
	if id == "" || c.region == "" {
		cred, err := c.Credential(ctx)
		if err != nil {
			return "", err
		}
		if id == "" {
			return cred.Host, nil
		}
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(c.region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return fmt.Sprintf("%s.dkr.ecr.%s.%s", id, c.region, suffix), nil
}

// IsProfileMissing tells whether err is a named AWS profile that the shared
// configuration files do not define.
func IsProfileMissing(err error) bool {
	var missing awsconfig.SharedConfigProfileNotExistError
	return errors.As(err, &missing)
}

// IsAccessDenied tells whether err is an authorization failure from AWS.
func IsAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidSignatureException":
			return true
		}
	}
	return false
}

package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
)

// fakeAPI serves repositories and images in pages of pageSize, and records
// the inputs it was called with.
type fakeAPI struct {
	pageSize int
	repos    []types.Repository
	// images maps repository name -> image IDs (tagged and untagged).
	images map[string][]types.ImageIdentifier
	// missing repositories answer ListImages with RepositoryNotFoundException.
	missing map[string]bool
	// slowList, if set, delays the ListImages answer of every other repository.
	slowList func(ctx context.Context)
	descErr  error
	// details maps repository name -> what DescribeImages answers.
	details map[string][]types.ImageDetail

	authToken  string
	authExpiry *time.Time
	proxy      string
	authErr    error

	mu         sync.Mutex
	descCalls  []*ecr.DescribeRepositoriesInput
	listCalls  []*ecr.ListImagesInput
	imageCalls []*ecr.DescribeImagesInput
	authCalls  []*ecr.GetAuthorizationTokenInput
	descTokens []string
}

// page returns items [start, start+size) of n and the next token ("" at the end).
func page(token *string, size, n int) (start, end int, next *string) {
	if token != nil {
		start, _ = strconv.Atoi(*token)
	}
	end = min(start+size, n)
	if end < n {
		next = aws.String(strconv.Itoa(end))
	}
	return start, end, next
}

func (f *fakeAPI) DescribeRepositories(_ context.Context, in *ecr.DescribeRepositoriesInput, _ ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.descCalls = append(f.descCalls, in)
	f.descTokens = append(f.descTokens, aws.ToString(in.NextToken))
	if f.descErr != nil {
		return nil, f.descErr
	}
	start, end, next := page(in.NextToken, f.pageSize, len(f.repos))
	return &ecr.DescribeRepositoriesOutput{Repositories: f.repos[start:end], NextToken: next}, nil
}

func (f *fakeAPI) ListImages(ctx context.Context, in *ecr.ListImagesInput, _ ...func(*ecr.Options)) (*ecr.ListImagesOutput, error) {
	f.mu.Lock()
	f.listCalls = append(f.listCalls, in)
	name := aws.ToString(in.RepositoryName)
	if f.missing[name] {
		f.mu.Unlock()
		return nil, &types.RepositoryNotFoundException{Message: aws.String("repository " + name + " not found")}
	}
	if f.slowList != nil {
		f.mu.Unlock()
		f.slowList(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	ids := f.images[name]
	start, end, next := page(in.NextToken, f.pageSize, len(ids))
	return &ecr.ListImagesOutput{ImageIds: ids[start:end], NextToken: next}, nil
}

func (f *fakeAPI) DescribeImages(_ context.Context, in *ecr.DescribeImagesInput, _ ...func(*ecr.Options)) (*ecr.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imageCalls = append(f.imageCalls, in)
	name := aws.ToString(in.RepositoryName)
	if f.missing[name] {
		return nil, &types.RepositoryNotFoundException{Message: aws.String("repository " + name + " not found")}
	}
	d := f.details[name]
	start, end, next := page(in.NextToken, f.pageSize, len(d))
	return &ecr.DescribeImagesOutput{ImageDetails: d[start:end], NextToken: next}, nil
}

func (f *fakeAPI) GetAuthorizationToken(_ context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authCalls = append(f.authCalls, in)
	if f.authErr != nil {
		return nil, f.authErr
	}
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []types.AuthorizationData{{
		AuthorizationToken: aws.String(f.authToken),
		ExpiresAt:          f.authExpiry,
		ProxyEndpoint:      aws.String(f.proxy),
	}}}, nil
}

func repo(name string) types.Repository {
	return types.Repository{
		RepositoryName:     aws.String(name),
		RepositoryUri:      aws.String("123456789012.dkr.ecr.eu-west-1.amazonaws.com/" + name),
		RepositoryArn:      aws.String("arn:aws:ecr:eu-west-1:123456789012:repository/" + name),
		RegistryId:         aws.String("123456789012"),
		ImageTagMutability: types.ImageTagMutabilityImmutable,
	}
}

func tagged(tag, digest string) types.ImageIdentifier {
	return types.ImageIdentifier{ImageTag: aws.String(tag), ImageDigest: aws.String(digest)}
}

func untagged(digest string) types.ImageIdentifier {
	return types.ImageIdentifier{ImageDigest: aws.String(digest)}
}

// newFake has seven repositories out of name order, listed two per page.
func newFake() *fakeAPI {
	f := &fakeAPI{pageSize: 2, images: map[string][]types.ImageIdentifier{}}
	for _, n := range []string{"team/web", "alpha", "team/api", "legacy/old", "team/worker", "beta", "team/api-test"} {
		f.repos = append(f.repos, repo(n))
		f.images[n] = []types.ImageIdentifier{tagged("latest", "sha256:"+n)}
	}
	// team/api: five tagged images over three pages plus untagged ones.
	f.images["team/api"] = []types.ImageIdentifier{
		tagged("v1.0.0", "sha256:a1"),
		untagged("sha256:dangling1"),
		tagged("v1.1.0", "sha256:a2"),
		tagged("latest", "sha256:a2"),
		{ImageTag: aws.String(""), ImageDigest: aws.String("sha256:emptytag")},
		tagged("dev-123", "sha256:a3"),
		tagged("v2.0.0-rc1", "sha256:a4"),
	}
	return f
}

func names(repos []Repository) []string {
	var out []string
	for _, r := range repos {
		out = append(out, r.Name)
	}
	return out
}

func TestRepositoriesFilters(t *testing.T) {
	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"all, sorted across pages", Filter{}, []string{"alpha", "beta", "legacy/old", "team/api", "team/api-test", "team/web", "team/worker"}},
		{"prefix", Filter{NamePrefix: "team/"}, []string{"team/api", "team/api-test", "team/web", "team/worker"}},
		{"regex", Filter{NameRegex: regexp.MustCompile(`^(alpha|beta)$`)}, []string{"alpha", "beta"}},
		{"exclude", Filter{Exclude: regexp.MustCompile(`-test$|^legacy/`)}, []string{"alpha", "beta", "team/api", "team/web", "team/worker"}},
		{"prefix, regex and exclude together", Filter{
			NamePrefix: "team/",
			NameRegex:  regexp.MustCompile(`api|web`),
			Exclude:    regexp.MustCompile(`test`),
		}, []string{"team/api", "team/web"}},
		{"nothing matches", Filter{NamePrefix: "nope/"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			c := NewWithAPI(f, "", "")
			got, err := c.Repositories(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("names = %q, want %q", names(got), tt.want)
			}
			// Seven repositories two per page: four DescribeRepositories calls.
			if want := []string{"", "2", "4", "6"}; !reflect.DeepEqual(f.descTokens, want) {
				t.Errorf("DescribeRepositories tokens = %q, want %q", f.descTokens, want)
			}
			// Tags are only listed for repositories that passed the filter.
			if len(f.listCalls) < len(tt.want) {
				t.Errorf("ListImages called %d times for %d repositories", len(f.listCalls), len(tt.want))
			}
			for _, call := range f.listCalls {
				if n := aws.ToString(call.RepositoryName); !contains(tt.want, n) {
					t.Errorf("ListImages called for filtered-out repository %q", n)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRepositoriesFields(t *testing.T) {
	f := newFake()
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.repos = []types.Repository{repo("team/api")}
	f.repos[0].CreatedAt = &created
	c := NewWithAPI(f, "", "")
	got, err := c.Repositories(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Repository{{
		Name:          "team/api",
		URI:           "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api",
		ARN:           "arn:aws:ecr:eu-west-1:123456789012:repository/team/api",
		RegistryID:    "123456789012",
		CreatedAt:     created,
		TagMutability: "IMMUTABLE",
		Images: map[string]string{
			"v1.0.0": "sha256:a1", "v1.1.0": "sha256:a2", "latest": "sha256:a2",
			"dev-123": "sha256:a3", "v2.0.0-rc1": "sha256:a4",
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Repositories =\n%+v\nwant\n%+v", got, want)
	}
}

func TestTags(t *testing.T) {
	tests := []struct {
		name   string
		filter Matcher
		want   map[string]string
	}{
		{"all tagged over pages, untagged left out", nil, map[string]string{
			"v1.0.0": "sha256:a1", "v1.1.0": "sha256:a2", "latest": "sha256:a2",
			"dev-123": "sha256:a3", "v2.0.0-rc1": "sha256:a4",
		}},
		{"tag regex", regexp.MustCompile(`^v\d+\.\d+\.\d+$`), map[string]string{
			"v1.0.0": "sha256:a1", "v1.1.0": "sha256:a2",
		}},
		{"tag regex matching nothing", regexp.MustCompile(`^nope$`), map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			c := NewWithAPI(f, "", "")
			got, err := c.Tags(context.Background(), "", "team/api", tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tags = %v, want %v", got, tt.want)
			}
			// Seven image IDs two per page: four calls, tagged and untagged in one walk.
			if len(f.listCalls) != 4 {
				t.Errorf("ListImages called %d times, want 4", len(f.listCalls))
			}
			for _, call := range f.listCalls {
				if call.Filter == nil || call.Filter.TagStatus != types.TagStatusAny {
					t.Errorf("ListImages filter = %+v, want TagStatus ANY", call.Filter)
				}
				if aws.ToInt32(call.MaxResults) != 1000 {
					t.Errorf("ListImages MaxResults = %v, want 1000 (ECR's largest page)", call.MaxResults)
				}
			}
		})
	}
}

// Digests lists every manifest of the repository, tagged or not, from the
// same (cached) walk as Tags: no further ListImages call.
func TestDigestsFromTheTagListing(t *testing.T) {
	f := newFake()
	c := NewWithAPI(f, "", "")
	if _, err := c.Tags(context.Background(), "", "team/api", nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.Digests(context.Background(), "", "team/api")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sha256:a1", "sha256:a2", "sha256:a3", "sha256:a4", "sha256:dangling1", "sha256:emptytag"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Digests = %v, want %v", got, want)
	}
	if len(f.listCalls) != 4 {
		t.Errorf("ListImages called %d times, want the 4 of one walk", len(f.listCalls))
	}
}

func TestRegistryIDPassedThrough(t *testing.T) {
	tests := []struct {
		name         string
		clientID     string
		filterID     string
		wantDescribe *string
	}{
		{"none", "", "", nil},
		{"client default", "111111111111", "", aws.String("111111111111")},
		{"filter overrides client", "111111111111", "222222222222", aws.String("222222222222")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.repos = []types.Repository{repo("alpha")}
			f.repos[0].RegistryId = nil // ListImages then falls back to the client's ID
			c := NewWithAPI(f, tt.clientID, "")
			if _, err := c.Repositories(context.Background(), Filter{RegistryID: tt.filterID, Names: []string{"alpha"}}); err != nil {
				t.Fatal(err)
			}
			d := f.descCalls[0]
			if !reflect.DeepEqual(d.RegistryId, tt.wantDescribe) {
				t.Errorf("DescribeRepositories RegistryId = %v, want %v", aws.ToString(d.RegistryId), aws.ToString(tt.wantDescribe))
			}
			if !reflect.DeepEqual(d.RepositoryNames, []string{"alpha"}) {
				t.Errorf("RepositoryNames = %q", d.RepositoryNames)
			}
			var wantList *string
			if tt.clientID != "" {
				wantList = aws.String(tt.clientID)
			}
			if got := f.listCalls[0].RegistryId; !reflect.DeepEqual(got, wantList) {
				t.Errorf("ListImages RegistryId = %v, want %v", aws.ToString(got), aws.ToString(wantList))
			}
		})
	}

	t.Run("repository's registry used for its tags", func(t *testing.T) {
		f := newFake()
		f.repos = []types.Repository{repo("alpha")}
		c := NewWithAPI(f, "111111111111", "")
		if _, err := c.Repositories(context.Background(), Filter{}); err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(f.listCalls[0].RegistryId); got != "123456789012" {
			t.Errorf("ListImages RegistryId = %q, want the repository's 123456789012", got)
		}
	})
}

func TestRepositoryNotFound(t *testing.T) {
	t.Run("describe", func(t *testing.T) {
		f := newFake()
		f.descErr = &types.RepositoryNotFoundException{Message: aws.String("The repository with name 'gone' does not exist")}
		_, err := NewWithAPI(f, "", "").Repositories(context.Background(), Filter{Names: []string{"gone"}})
		if !errors.Is(err, ErrRepositoryNotFound) {
			t.Fatalf("err = %v, want ErrRepositoryNotFound", err)
		}
	})
	t.Run("list images", func(t *testing.T) {
		f := newFake()
		f.missing = map[string]bool{"team/web": true}
		_, err := NewWithAPI(f, "", "").Repositories(context.Background(), Filter{})
		if !errors.Is(err, ErrRepositoryNotFound) {
			t.Fatalf("err = %v, want ErrRepositoryNotFound", err)
		}
		_, err = NewWithAPI(f, "", "").Tags(context.Background(), "", "team/web", nil)
		if !errors.Is(err, ErrRepositoryNotFound) {
			t.Fatalf("Tags err = %v, want ErrRepositoryNotFound", err)
		}
		// The error names the registry it looked in.
		_, err = NewWithAPI(f, "", "").Tags(t.Context(), "210987654321", "team/web", nil)
		if !errors.Is(err, ErrRepositoryNotFound) || !strings.Contains(err.Error(), `"team/web" in the registry of account 210987654321`) {
			t.Errorf("Tags err = %v, want ErrRepositoryNotFound naming the registry", err)
		}
	})
	t.Run("other errors are not not-found", func(t *testing.T) {
		f := newFake()
		f.descErr = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}
		_, err := NewWithAPI(f, "", "").Repositories(context.Background(), Filter{})
		if err == nil || errors.Is(err, ErrRepositoryNotFound) {
			t.Fatalf("err = %v, want a non-not-found error", err)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" {
			t.Errorf("err = %v, want the API error wrapped", err)
		}
	})
}

// A listing stops at its first failure: the calls in flight see their
// context canceled, and no repository after them is listed.
func TestRepositoriesStopAtFirstFailure(t *testing.T) {
	f := &fakeAPI{pageSize: 1000, images: map[string][]types.ImageIdentifier{}, missing: map[string]bool{"r000": true}}
	for i := range 10 * listConcurrency {
		f.repos = append(f.repos, repo(fmt.Sprintf("r%03d", i)))
	}
	f.slowList = func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second): // how long the others would run on
		}
	}
	_, err := NewWithAPI(f, "", "").Repositories(t.Context(), Filter{})
	if !errors.Is(err, ErrRepositoryNotFound) {
		t.Fatalf("err = %v, want the first failure, ErrRepositoryNotFound", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.listCalls); n > listConcurrency {
		t.Errorf("ListImages called for %d of %d repositories after the first failed, want at most the %d in flight",
			n, len(f.repos), listConcurrency)
	}
}

// fakeClock is a settable clock for Credential's refresh logic.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func token(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestCredential(t *testing.T) {
	start := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	expiry := start.Add(12 * time.Hour)
	f := &fakeAPI{authToken: token("AWS:secret-1"), authExpiry: &expiry, proxy: "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}
	clk := &fakeClock{now: start}
	c := NewWithAPI(f, "123456789012", "")
	c.clock = clk.Now

	ctx := context.Background()
	cred, err := c.Credential(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Credential{
		Host:      "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		User:      "AWS",
		Password:  "secret-1",
		RefreshAt: expiry.Add(-30 * time.Minute),
	}
	if !reflect.DeepEqual(cred, want) {
		t.Fatalf("Credential = %+v, want %+v", cred, want)
	}
	if got := f.authCalls[0].RegistryIds; !reflect.DeepEqual(got, []string{"123456789012"}) { //nolint:staticcheck // checking what the client sends
		t.Errorf("RegistryIds = %q", got)
	}

	// Cached until just before RefreshAt.
	f.authToken = token("AWS:secret-2")
	clk.now = want.RefreshAt.Add(-time.Second)
	if cred, err = c.Credential(ctx); err != nil || cred.Password != "secret-1" {
		t.Fatalf("before RefreshAt: %+v, %v; want the cached secret-1", cred, err)
	}
	if len(f.authCalls) != 1 {
		t.Fatalf("GetAuthorizationToken called %d times, want 1 (cached)", len(f.authCalls))
	}

	// Refreshed at RefreshAt.
	clk.now = want.RefreshAt
	if cred, err = c.Credential(ctx); err != nil || cred.Password != "secret-2" {
		t.Fatalf("at RefreshAt: %+v, %v; want the new secret-2", cred, err)
	}
	if len(f.authCalls) != 2 {
		t.Fatalf("GetAuthorizationToken called %d times, want 2", len(f.authCalls))
	}
}

func TestCredentialRefreshAt(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires *time.Time
		want    time.Time
	}{
		{"12 hours ahead", aws.Time(now.Add(12 * time.Hour)), now.Add(12*time.Hour - 30*time.Minute)},
		// moto reports an expiry in 2015.
		{"already past", aws.Time(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)), now.Add(time.Hour)},
		{"missing", nil, now.Add(time.Hour)},
		{"within the margin", aws.Time(now.Add(10 * time.Minute)), now.Add(time.Hour)},
		{"exactly at the margin", aws.Time(now.Add(30 * time.Minute)), now.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{authToken: token("AWS:pw"), authExpiry: tt.expires, proxy: "https://r.example:5000"}
			clk := &fakeClock{now: now}
			c := NewWithAPI(f, "", "")
			c.clock = clk.Now
			cred, err := c.Credential(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !cred.RefreshAt.Equal(tt.want) {
				t.Errorf("RefreshAt = %v, want %v", cred.RefreshAt, tt.want)
			}
			if cred.Host != "r.example:5000" {
				t.Errorf("Host = %q", cred.Host)
			}
			if f.authCalls[0].RegistryIds != nil { //nolint:staticcheck // checking what the client sends
				t.Errorf("RegistryIds = %q, want none without a registry ID", f.authCalls[0].RegistryIds) //nolint:staticcheck // as above
			}
			// Not fetched again on the next call, even with a past expiry.
			clk.now = now.Add(time.Minute)
			if _, err := c.Credential(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(f.authCalls) != 1 {
				t.Errorf("GetAuthorizationToken called %d times, want 1", len(f.authCalls))
			}
		})
	}
}

func TestCredentialErrors(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		proxy   string
		authErr error
		noData  bool
	}{
		{"not base64", "%%%not-base64", "https://r.example", nil, false},
		{"no colon", token("AWSpassword"), "https://r.example", nil, false},
		{"endpoint without host", token("AWS:pw"), "not a url", nil, false},
		{"empty endpoint", token("AWS:pw"), "", nil, false},
		{"API error", "", "", &smithy.GenericAPIError{Code: "AccessDeniedException"}, false},
		{"no authorization data", "", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var api API = &fakeAPI{authToken: tt.token, proxy: tt.proxy, authErr: tt.authErr}
			if tt.noData {
				api = noAuthData{&fakeAPI{}}
			}
			c := NewWithAPI(api, "", "")
			cred, err := c.Credential(context.Background())
			if err == nil {
				t.Fatalf("Credential = %+v, want an error", cred)
			}
			if cred != (Credential{}) {
				t.Errorf("Credential = %+v alongside error", cred)
			}
			if tt.authErr != nil && !IsAccessDenied(err) {
				t.Errorf("IsAccessDenied(%v) = false through the wrapping", err)
			}
		})
	}
}

// noAuthData answers GetAuthorizationToken with an empty list.
type noAuthData struct{ *fakeAPI }

func (noAuthData) GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	return &ecr.GetAuthorizationTokenOutput{}, nil
}

func TestIsAccessDenied(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, true},
		{&smithy.GenericAPIError{Code: "AccessDenied"}, true},
		{&smithy.GenericAPIError{Code: "UnrecognizedClientException"}, true},
		{&smithy.GenericAPIError{Code: "InvalidSignatureException"}, true},
		{fmt.Errorf("wrapped: %w", &smithy.GenericAPIError{Code: "AccessDeniedException"}), true},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, false},
		{&types.RepositoryNotFoundException{}, false},
		{errors.New("AccessDeniedException"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsAccessDenied(tt.err); got != tt.want {
			t.Errorf("IsAccessDenied(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRegistryEndpoint(t *testing.T) {
	if got := NewWithAPI(&fakeAPI{}, "", "http://127.0.0.1:5000").RegistryEndpoint(); got != "http://127.0.0.1:5000" {
		t.Errorf("RegistryEndpoint = %q", got)
	}
}

func TestCredentialRenew(t *testing.T) {
	expiry := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	api := &fakeAPI{
		authToken:  base64.StdEncoding.EncodeToString([]byte("AWS:first")),
		authExpiry: &expiry,
		proxy:      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	}
	c := NewWithAPI(api, "", "")
	c.clock = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	if _, err := c.Credential(context.Background()); err != nil {
		t.Fatal(err)
	}
	api.authToken = base64.StdEncoding.EncodeToString([]byte("AWS:second"))
	first, _ := c.Credential(context.Background())
	if first.Password != "first" {
		t.Fatalf("before Renew the cached password is %q, want first", first.Password)
	}
	cred, err := c.Renew(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Password != "second" {
		t.Fatalf("after Renew the password is %q, want a new token (second)", cred.Password)
	}
	// A second caller renewing the same refused credential gets the new one,
	// and ECR is not asked again.
	api.authToken = base64.StdEncoding.EncodeToString([]byte("AWS:third"))
	if again, _ := c.Renew(context.Background(), first); again.Password != "second" {
		t.Fatalf("renewing an already replaced credential gave %q, want second", again.Password)
	}
}

func TestRegistryHost(t *testing.T) {
	api := &fakeAPI{authToken: base64.StdEncoding.EncodeToString([]byte("AWS:p")), proxy: "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"}
	c := NewWithAPI(api, "", "")
	c.region = "eu-west-1"
	if h, err := c.RegistryHost(context.Background(), ""); err != nil || h != "111111111111.dkr.ecr.eu-west-1.amazonaws.com" {
		t.Errorf("default account: %q, %v", h, err)
	}
	if h, _ := c.RegistryHost(context.Background(), "222222222222"); h != "222222222222.dkr.ecr.eu-west-1.amazonaws.com" {
		t.Errorf("other account: %q", h)
	}
	c.region = "cn-north-1"
	if h, _ := c.RegistryHost(context.Background(), "333333333333"); h != "333333333333.dkr.ecr.cn-north-1.amazonaws.com.cn" {
		t.Errorf("China partition: %q", h)
	}
}

func TestIsProfileMissing(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		name := filepath.Join(dir, env)
		if err := os.WriteFile(name, []byte("[default]\nregion = eu-west-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(env, name)
	}
	_, err := New(t.Context(), Config{Region: "eu-west-1", Profile: "no-such-profile"})
	if !IsProfileMissing(err) {
		t.Errorf("New with a missing profile: IsProfileMissing(%v) = false", err)
	}
	if _, err := New(t.Context(), Config{Region: "eu-west-1", Profile: "default"}); err != nil {
		t.Errorf("New with the default profile: %v", err)
	}
	if IsProfileMissing(errors.New("failed to get shared config profile, x")) {
		t.Error("IsProfileMissing matched an error by its text")
	}
}

// A plan lists every repository through the data source, under the account
// ECR names for it, and then asks again for each resource, which names no
// registry, minutes later in a large plan: one ListImages walk per
// repository, not two.
func TestTagsListedOncePerPlan(t *testing.T) {
	for _, resourceRegistry := range []string{"", "123456789012"} {
		t.Run("resource registry "+resourceRegistry, func(t *testing.T) {
			f := newFake()
			f.pageSize = 100
			c := NewWithAPI(f, "", "")
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			c.clock = func() time.Time { return now }
			repos, err := c.Repositories(context.Background(), Filter{})
			if err != nil {
				t.Fatal(err)
			}
			// A plan of thousands of repositories reaches the resources
			// minutes after the data source listed them.
			now = now.Add(10 * time.Minute)
			for _, r := range repos {
				if _, err := c.Tags(context.Background(), resourceRegistry, r.Name, nil); err != nil {
					t.Fatal(err)
				}
			}
			if len(f.listCalls) != len(repos) {
				t.Errorf("ListImages called %d times for %d repositories, want once each", len(f.listCalls), len(repos))
			}
		})
	}
}

// DescribeRepositories asks for ECR's largest page, except with names,
// beside which ECR refuses maxResults.
func TestDescribeRepositoriesPageSize(t *testing.T) {
	for _, names := range [][]string{nil, {"team/api"}} {
		f := newFake()
		c := NewWithAPI(f, "", "")
		if _, err := c.Repositories(context.Background(), Filter{Names: names}); err != nil {
			t.Fatal(err)
		}
		for _, call := range f.descCalls {
			want := int32(1000)
			if len(names) > 0 {
				want = 0
			}
			if got := aws.ToInt32(call.MaxResults); got != want {
				t.Errorf("names %v: DescribeRepositories MaxResults = %d, want %d", names, got, want)
			}
		}
	}
}

func TestImageDetails(t *testing.T) {
	pushed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pulled := pushed.Add(48 * time.Hour)
	f := newFake()
	f.details = map[string][]types.ImageDetail{"team/api": {
		{ImageDigest: aws.String("sha256:b2"), ImageTags: []string{"latest", "v2"}, ImageSizeInBytes: aws.Int64(2048),
			ImagePushedAt: aws.Time(pushed), LastRecordedPullTime: aws.Time(pulled)},
		{ImageDigest: aws.String("sha256:a1"), ImageTags: []string{"v1"}, ImageSizeInBytes: aws.Int64(1024), ImagePushedAt: aws.Time(pushed)},
		{ImageDigest: aws.String("sha256:c3"), ImageSizeInBytes: aws.Int64(10)},
	}}
	f.missing = map[string]bool{"gone": true}
	c := NewWithAPI(f, "", "")
	got, err := c.DetailsOf(context.Background(), []Repository{{Name: "team/api"}, {Name: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]ImageDetail{
		"team/api": {
			{Digest: "sha256:a1", Tags: []string{"v1"}, SizeBytes: 1024, PushedAt: pushed},
			{Digest: "sha256:b2", Tags: []string{"latest", "v2"}, SizeBytes: 2048, PushedAt: pushed, LastPulledAt: pulled},
			{Digest: "sha256:c3", SizeBytes: 10},
		},
		"web": nil,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DetailsOf = %+v, want %+v", got, want)
	}
	// Three images in pages of two: two calls for team/api, one for web, each asking for ECR's largest page.
	if len(f.imageCalls) != 3 {
		t.Errorf("%d DescribeImages calls, want 3", len(f.imageCalls))
	}
	for _, in := range f.imageCalls {
		if aws.ToInt32(in.MaxResults) != pageLimit {
			t.Errorf("DescribeImages asked for pages of %d, want %d", aws.ToInt32(in.MaxResults), pageLimit)
		}
	}
	if _, err := c.DetailsOf(context.Background(), []Repository{{Name: "gone"}}); !errors.Is(err, ErrRepositoryNotFound) {
		t.Errorf("a missing repository gave %v, want ErrRepositoryNotFound", err)
	}
}

package localenv

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
)

// testECRRegistry runs against the TestLocalEnv environment (seeded).
func testECRRegistry(t *testing.T, env *Env) {
	t.Run("TokenPerCall", func(t *testing.T) { testECRTokenPerCall(t, env) })
	t.Run("Challenge", func(t *testing.T) { testECRChallenge(t, env) })
	t.Run("BlobRedirect", func(t *testing.T) { testECRBlobRedirect(t, env) })
	t.Run("S3Refusals", func(t *testing.T) { testS3Refusals(t, env) })
	t.Run("S3Faults", func(t *testing.T) { testS3Faults(t, env) })
	t.Run("RealClientsFollowTheRedirect", func(t *testing.T) { testECRClients(t, env) })
	t.Run("ExpiredToken", func(t *testing.T) { testECRExpiredToken(t, env) })
	t.Run("WriteRefused", func(t *testing.T) { testECRWriteRefused(t, env) })
	t.Run("ReferrersAPI", func(t *testing.T) { testECRReferrersAPI(t, env) })
	t.Run("PullTimes", func(t *testing.T) { testECRPullTimes(t, env) })
}

// testECRPullTimes: DescribeImages reports the last pull the registry saw,
// as ECR's lastRecordedPullTime; the environment's own pushes and reads are
// no pulls.
func testECRPullTimes(t *testing.T, env *Env) {
	ctx := t.Context()
	img, err := env.PushECRImage(ctx, "pulls/app", "v1", ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.TagECRImageDigest(ctx, "pulls/app", img.Digest, "stable"); err != nil {
		t.Fatal(err)
	}
	lastPull := func() *time.Time {
		t.Helper()
		out, err := env.ECRClient(ctx, false).DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("pulls/app")})
		if err != nil || len(out.ImageDetails) != 1 {
			t.Fatalf("DescribeImages pulls/app: %v, %d images", err, len(out.ImageDetails))
		}
		return out.ImageDetails[0].LastRecordedPullTime
	}
	if got := lastPull(); got != nil {
		t.Fatalf("a pushed image that nobody pulled has a pull time %s", got)
	}
	before := time.Now().Truncate(time.Second)
	dig, err := env.PullECRImage(ctx, "pulls/app", "stable")
	if err != nil || dig != img.Digest {
		t.Fatalf("PullECRImage = %s, %v; want %s", dig, err, img.Digest)
	}
	got := lastPull()
	if got == nil || got.Before(before) || got.After(time.Now()) {
		t.Errorf("after a pull at %s, lastRecordedPullTime = %v", before, got)
	}
}

// testECRReferrersAPI: ECR answers the OCI referrers API (since 2024): the
// seeded signature of signed/app:v1 is listed, an unsigned image has none,
// and a sha256-<hex> tag naming the image itself is not a referrers list.
func testECRReferrersAPI(t *testing.T, env *Env) {
	pass, _ := ecrToken(t, env)
	var signed, plain Image
	for _, img := range env.Seeded {
		switch {
		case img.Repository == "signed/app" && img.ReferrerDigest != "":
			signed = img
		case img.Repository == "web" && plain.Digest == "":
			plain = img
		}
	}
	list := func(repo, dig string) []string {
		t.Helper()
		resp, body := ecrDo(t, env, http.MethodGet, "/v2/"+repo+"/referrers/"+dig, pass)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ociIndexType {
			t.Fatalf("referrers of %s@%s: %s %s", repo, dig, resp.Status, resp.Header.Get("Content-Type"))
		}
		var index struct {
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		if err := json.Unmarshal([]byte(body), &index); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range index.Manifests {
			out = append(out, m.Digest)
		}
		return out
	}
	if got := list("signed/app", signed.Digest); len(got) != 1 || got[0] != signed.ReferrerDigest {
		t.Errorf("referrers of the signed image: %v, want [%s]", got, signed.ReferrerDigest)
	}
	if got := list("web", plain.Digest); len(got) != 0 {
		t.Errorf("referrers of an unsigned image: %v", got)
	}
	self := strings.Replace(plain.Digest, "sha256:", "sha256-", 1)
	if _, err := env.TagECRImage(t.Context(), "web", plain.Tag, self); err != nil {
		t.Fatal(err)
	}
	if got := list("web", plain.Digest); len(got) != 0 {
		t.Errorf("a tag naming the image itself was read as a referrers list: %v", got)
	}
}

// ecrToken calls GetAuthorizationToken with the provider's read-only key and
// returns the registry password and its expiry.
func ecrToken(t *testing.T, env *Env) (string, time.Time) {
	t.Helper()
	out, err := env.ECRClient(t.Context(), false).GetAuthorizationToken(t.Context(), nil)
	if err != nil || len(out.AuthorizationData) != 1 {
		t.Fatalf("GetAuthorizationToken: %v %+v", err, out)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	if user != "AWS" || len(pass) < 1000 {
		t.Fatalf("token %q is not AWS:<session> shaped like ECR's", raw)
	}
	return pass, aws.ToTime(out.AuthorizationData[0].ExpiresAt)
}

// ecrDo sends one request to the ECR registry proxy with user AWS and pass
// (none when empty), without following redirects.
func ecrDo(t *testing.T, env *Env, method, path, pass string) (answer, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, env.ECRRegistryEndpoint+path, nil)
	if pass != "" {
		req.SetBasicAuth("AWS", pass)
	}
	return doNoRedirect(t, env, req)
}

// answer is a response whose body was read and closed.
type answer struct {
	Status        string
	StatusCode    int
	Header        http.Header
	ContentLength int64
}

// readAnswer reads and closes resp's body.
func readAnswer(resp *http.Response) (answer, string) {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{Status: resp.Status, StatusCode: resp.StatusCode, Header: resp.Header, ContentLength: resp.ContentLength}, string(b)
}

func doNoRedirect(t *testing.T, env *Env, req *http.Request) (answer, string) {
	t.Helper()
	c := *env.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(resp)
}

// seededLayer returns a layer digest of web:v1.0 and its size.
func seededLayer(t *testing.T, env *Env) (string, int64) {
	t.Helper()
	r, _ := env.ECRRef("web", "v1.0")
	m, err := env.RegistryClient().ManifestGet(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	img, ok := m.(manifest.Imager)
	if !ok {
		t.Fatalf("web:v1.0 is a %T, not an image", m)
	}
	layers, err := img.GetLayers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers of web:v1.0: %v", err)
	}
	l := layers[len(layers)-1]
	return l.Digest.String(), l.Size
}

func testECRTokenPerCall(t *testing.T, env *Env) {
	before := env.ECRTokenRequests()
	a, expA := ecrToken(t, env)
	b, expB := ecrToken(t, env)
	if a == b {
		t.Fatal("two GetAuthorizationToken calls returned the same token")
	}
	if n := env.ECRTokenRequests() - before; n != 2 {
		t.Errorf("ECRTokenRequests counted %d calls, want 2", n)
	}
	for _, exp := range []time.Time{expA, expB} {
		if d := time.Until(exp); d < 12*time.Hour-time.Minute || d > 12*time.Hour {
			t.Errorf("token expires in %s, want 12h", d)
		}
	}
	issued := env.IssuedECRPasswords()
	for _, pass := range []string{a, b} {
		if resp, body := ecrDo(t, env, http.MethodGet, "/v2/web/manifests/v1.0", pass); resp.StatusCode != http.StatusOK {
			t.Errorf("manifest GET with a fresh token: %d %s", resp.StatusCode, body)
		}
		if !slices.Contains(issued, pass) {
			t.Error("IssuedECRPasswords lacks a password GetAuthorizationToken handed out")
		}
	}
}

func testECRChallenge(t *testing.T, env *Env) {
	resp, body := ecrDo(t, env, http.MethodGet, "/v2/", "")
	want := `Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("no credentials: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	resp, body = ecrDo(t, env, http.MethodGet, "/v2/web/manifests/v1.0", "not-a-token-ecr-issued")
	if resp.StatusCode != http.StatusForbidden || body != ecrExpiredBody {
		t.Fatalf("unknown token: %d %s", resp.StatusCode, body)
	}
}

var (
	s3Credential = regexp.MustCompile(`^ASIA[0-9A-F]{16}/\d{8}/us-east-1/s3/aws4_request$`)
	hex64        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func testECRBlobRedirect(t *testing.T, env *Env) {
	pass, _ := ecrToken(t, env)
	dig, size := seededLayer(t, env)
	blobPath := "/v2/web/blobs/" + dig

	resp, body := ecrDo(t, env, http.MethodHead, blobPath, pass)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		t.Fatalf("blob HEAD is answered by the registry itself: %d %d %s", resp.StatusCode, resp.ContentLength, body)
	}
	resp, _ = ecrDo(t, env, http.MethodGet, "/v2/web/blobs/sha256:"+strings.Repeat("0", 64), pass)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of a layer ECR does not hold: %d, want 404", resp.StatusCode)
	}

	resp, _ = ecrDo(t, env, http.MethodGet, blobPath, pass)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("blob GET: %d, want 307", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if loc.Host == env.ECRProxy.Host || !strings.HasPrefix(loc.Host, "localhost:") ||
		!strings.HasPrefix(loc.Path, "/prod-us-east-1-starport-layer-bucket/") ||
		q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || !s3Credential.MatchString(q.Get("X-Amz-Credential")) ||
		q.Get("X-Amz-Expires") != "3600" || q.Get("X-Amz-SignedHeaders") != "host" ||
		len(q.Get("X-Amz-Security-Token")) < 500 || !hex64.MatchString(q.Get("X-Amz-Signature")) {
		t.Fatalf("Location is not a pre-signed S3 URL on another host: %s", loc)
	}
	if _, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date")); err != nil {
		t.Fatalf("X-Amz-Date: %v", err)
	}

	env.S3.ResetStats()
	ecrBefore := env.ECRProxy.Stats()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, loc.String(), nil)
	resp, body = doNoRedirect(t, env, req)
	if sum := sha256.Sum256([]byte(body)); resp.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != dig {
		t.Fatalf("S3 GET: %d, %d bytes not matching %s", resp.StatusCode, len(body), dig)
	}
	// The server counts a write after it returns, which can be after the
	// client has read the last byte: give the counters a moment.
	countersSettle(func() bool { return env.S3.Stats().BytesToClient >= size })
	if st := env.S3.Stats(); st.Requests != 1 || st.BytesToClient != size {
		t.Errorf("S3 stats %+v, want 1 request and %d bytes", st, size)
	}
	if after := env.ECRProxy.Stats(); after.BytesToClient-ecrBefore.BytesToClient != size {
		t.Errorf("the ECR proxy's stats do not count the S3 download: %+v -> %+v", ecrBefore, after)
	}

	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, loc.String(), nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, part := doNoRedirect(t, env, req)
	if resp.StatusCode != http.StatusPartialContent || part != body[100:200] {
		t.Fatalf("Range: %d, %d bytes", resp.StatusCode, len(part))
	}
}

// presigned returns a fresh pre-signed URL for a seeded layer.
func presigned(t *testing.T, env *Env) string {
	t.Helper()
	pass, _ := ecrToken(t, env)
	dig, _ := seededLayer(t, env)
	resp, _ := ecrDo(t, env, http.MethodGet, "/v2/web/blobs/"+dig, pass)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("blob GET: %d, want 307", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func testS3Refusals(t *testing.T, env *Env) {
	loc := presigned(t, env)
	get := func(u string, header ...string) (answer, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return doNoRedirect(t, env, req)
	}
	resp, body := get(loc, "Authorization", "Basic QVdTOnNlY3JldA==")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "<Code>InvalidArgument</Code>") ||
		!strings.Contains(body, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified") {
		t.Fatalf("URL with an Authorization header: %d %s", resp.StatusCode, body)
	}
	sig := regexp.MustCompile(`X-Amz-Signature=[0-9a-f]+`)
	resp, body = get(sig.ReplaceAllString(loc, "X-Amz-Signature="+strings.Repeat("0", 64)))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
		t.Fatalf("wrong signature: %d %s", resp.StatusCode, body)
	}
	resp, body = get(strings.Replace(loc, "localhost", "127.0.0.1", 1))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("URL sent to another host name: %d %s", resp.StatusCode, body)
	}

	env.S3.SetURLLifetime(time.Second)
	defer env.S3.SetURLLifetime(time.Hour)
	short := presigned(t, env)
	if resp, _ := get(short); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh 1-second URL: %d", resp.StatusCode)
	}
	time.Sleep(2100 * time.Millisecond)
	resp, body = get(short)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "<Code>AccessDenied</Code><Message>Request has expired</Message>") {
		t.Fatalf("expired URL: %d %s", resp.StatusCode, body)
	}
}

func testS3Faults(t *testing.T, env *Env) {
	defer env.S3.SetFault(nil)
	loc := presigned(t, env)
	var layer string
	env.S3.SetFault(func(r *http.Request) S3Fault {
		repo, dig, _ := env.S3.LayerOf(r)
		layer = repo + "@" + dig
		return S3SlowDown
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, loc, nil)
	resp, body := doNoRedirect(t, env, req)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "<Code>SlowDown</Code>") {
		t.Fatalf("SlowDown: %d %s", resp.StatusCode, body)
	}
	if want, _ := seededLayer(t, env); layer != "web@"+want {
		t.Errorf("LayerOf named %q, want web@%s", layer, want)
	}
	env.S3.SetFault(func(*http.Request) S3Fault { return S3CutBody })
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, loc, nil)
	r, err := env.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	n, err := io.Copy(io.Discard, r.Body)
	// Over HTTP/1.1 the client sees io.ErrUnexpectedEOF, over h2 a stream reset.
	if r.StatusCode != http.StatusOK || err == nil || n == 0 || n >= r.ContentLength {
		t.Fatalf("cut body: status %d, %d of %d bytes, err %v", r.StatusCode, n, r.ContentLength, err)
	}
}

// testECRClients proves regclient and skopeo, given a token from
// GetAuthorizationToken, follow the redirect without sending their
// credential to S3 (which would refuse it).
func testECRClients(t *testing.T, env *Env) {
	pass, _ := ecrToken(t, env)
	host := hostOf(env.ECRRegistryEndpoint)
	rc := regclient.New(
		regclient.WithConfigHost(config.Host{Name: host, User: "AWS", Pass: pass, RegCert: string(env.caPEM)}),
		regclient.WithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	dig, size := seededLayer(t, env)
	r, _ := env.ECRRef("web", "v1.0")
	env.S3.ResetStats()
	br, err := rc.BlobGet(t.Context(), r, descriptor.Descriptor{Digest: digest.Digest(dig), Size: size})
	if err != nil {
		t.Fatalf("regclient BlobGet: %v", err)
	}
	n, err := io.Copy(io.Discard, br)
	br.Close()
	if err != nil || n != size || env.S3.Stats().Requests != 1 {
		t.Fatalf("regclient read %d of %d bytes (%v), S3 saw %+v", n, size, err, env.S3.Stats())
	}

	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	dir := filepath.Join(t.TempDir(), "web")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args := append([]string{"copy", "--insecure-policy"}, env.SkopeoTLSFlags("src-")...)
	out, err := exec.CommandContext(ctx, "skopeo", append(args, "--src-creds", "AWS:"+pass, "docker://"+host+"/web:v1.0", "dir:"+dir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy from ECR: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(dig, "sha256:"))); err != nil || int64(len(b)) != size {
		t.Fatalf("skopeo did not fetch layer %s: %v", dig, err)
	}
}

func testECRExpiredToken(t *testing.T, env *Env) {
	old, _ := ecrToken(t, env)
	env.ExpireECRTokens()
	resp, body := ecrDo(t, env, http.MethodGet, "/v2/web/manifests/v1.0", old)
	if resp.StatusCode != http.StatusForbidden || body != ecrExpiredBody {
		t.Fatalf("expired token: %d %s", resp.StatusCode, body)
	}
	fresh, _ := ecrToken(t, env)
	if resp, body := ecrDo(t, env, http.MethodGet, "/v2/web/manifests/v1.0", fresh); resp.StatusCode != http.StatusOK {
		t.Fatalf("token issued after ExpireECRTokens: %d %s", resp.StatusCode, body)
	}
}

func testECRWriteRefused(t *testing.T, env *Env) {
	pass, _ := ecrToken(t, env)
	env.ResetECRWriteAttempts()
	defer env.ResetECRWriteAttempts() // refused on purpose
	resp, body := ecrDo(t, env, http.MethodPost, "/v2/web/blobs/uploads/", pass)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":"DENIED"`) ||
		!strings.Contains(body, "user/"+ReadOnlyUser+" is not authorized to perform: ecr:InitiateLayerUpload on resource: arn:aws:ecr:us-east-1:123456789012:repository/web") {
		t.Fatalf("upload with a read-only token: %d %s", resp.StatusCode, body)
	}
	resp, _ = ecrDo(t, env, http.MethodDelete, "/v2/web/manifests/v1.0", pass)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("manifest DELETE with a read-only token: %d", resp.StatusCode)
	}
	if n := env.ECRWriteAttempts(); n != 2 {
		t.Fatalf("ECRWriteAttempts = %d, want 2", n)
	}
	// The environment's own credential still writes (seeding, tests).
	if _, err := env.TagECRImage(t.Context(), "web", "v1.0", "write-check"); err != nil {
		t.Fatalf("the environment's own push: %v", err)
	}
	if n := env.ECRWriteAttempts(); n != 2 {
		t.Fatalf("the environment's own writes were counted: %d", n)
	}
}

// countersSettle waits up to a second for done, checking every few
// milliseconds; the caller then asserts the exact figures.
func countersSettle(done func() bool) {
	for deadline := time.Now().Add(time.Second); !done() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

package localenv

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

// S3Fault is what the S3 stand-in does with one valid download.
type S3Fault int

const (
	S3Serve         S3Fault = iota // serve it
	S3SlowDown                     // 503 SlowDown, as S3 throttles
	S3InternalError                // 500 InternalError
	S3CutBody                      // send the headers and half the bytes, then drop the connection
	S3StallBody                    // send the headers and half the bytes, then nothing; the connection stays open
)

const (
	s3URLLifetime = time.Hour // X-Amz-Expires of the URLs ECR hands out
	s3Algorithm   = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
)

// S3 stands in for the bucket behind ECR's layer downloads. The ECR registry
// answers a blob GET with 307 to a pre-signed URL here, on another host name
// (localhost instead of 127.0.0.1, or s3.test for a client that reached the
// registry as ecr.test), so clients meet what they meet on AWS: a
// URL that carries its own SigV4 signature and expiry, and a server that
// refuses a second auth mechanism (an Authorization header). The bytes are
// streamed from the ECR registry itself.
type S3 struct {
	URL    string // "https://localhost:P"; it listens on 127.0.0.1:P
	Bucket string // "prod-<region>-starport-layer-bucket"

	region, account string
	registry        *url.URL // the ECR docker-registry, read directly
	password        string   // its credential for user AWS
	client          *http.Client
	srv             *http.Server
	names           *testNames
	done            chan struct{}

	secretKey     string // signs the URLs, as the ECR service role's key would
	accessKeyID   string
	securityToken string
	lifetime      atomic.Int64 // nanoseconds

	counters
	parent atomic.Pointer[counters] // the ECR proxy's counters, which count this traffic too
	fault  atomic.Pointer[func(*http.Request) S3Fault]

	mu      sync.Mutex
	objects map[string]s3Object // object key -> layer
}

type s3Object struct{ repo, digest string }

func newS3(region, account string, registry *url.URL, password string, serving *servingTLS, names *testNames, network *wan.Shaper) (*S3, error) {
	s := &S3{
		Bucket: "prod-" + region + "-starport-layer-bucket",
		names:  names,
		done:   make(chan struct{}),
		region: region, account: account, registry: registry, password: password,
		client:        &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}},
		secretKey:     randomBase64(30),
		accessKeyID:   "ASIA" + strings.ToUpper(randomHex(8)),
		securityToken: "IQoJb3JpZ2luX2VjE" + randomBase64(600),
		objects:       map[string]s3Object{},
	}
	s.lifetime.Store(int64(s3URLLifetime))
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	var err error
	if s.URL, err = serving.serve(s.srv, "localhost", http2Too, network); err != nil {
		return nil, err
	}
	names.add(hostOf(s.URL), "s3.test")
	return s, nil
}

// SetURLLifetime sets X-Amz-Expires of the URLs issued from now on (default
// one hour).
func (s *S3) SetURLLifetime(d time.Duration) { s.lifetime.Store(int64(d)) }

// SetFault decides per valid download what the stand-in does; nil serves all.
func (s *S3) SetFault(f func(r *http.Request) S3Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// LayerOf names the layer a download is for (the repository and digest ECR
// signed the URL for), so a fault can pick its victim; ok is false for a key
// ECR never handed out.
func (s *S3) LayerOf(r *http.Request) (repo, digest string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.objects[strings.TrimPrefix(r.URL.Path, "/"+s.Bucket+"/")]
	return obj.repo, obj.digest, ok
}

// Stats counts the downloads the stand-in served or refused.
func (s *S3) Stats() Stats { return s.stats() }

// ResetStats zeroes Stats (not the ECR proxy's).
func (s *S3) ResetStats() { s.reset() }

// Close stops the server, ending its stalls first.
func (s *S3) Close() error {
	close(s.done)
	return shutdown(s.srv)
}

// presign returns a URL for the layer digest of repo, shaped like ECR's:
// one object key per layer, SigV4 query parameters, signed for its host,
// which is S3's test name when testName is set.
func (s *S3) presign(repo, digest string, now time.Time, testName bool) string {
	key := s.objectKey(repo, digest)
	s.mu.Lock()
	s.objects[key] = s3Object{repo: repo, digest: digest}
	s.mu.Unlock()
	amzDate := now.UTC().Format(amzDateFormat)
	q := url.Values{
		"X-Amz-Algorithm":      {s3Algorithm},
		"X-Amz-Credential":     {s.accessKeyID + "/" + s.scope(amzDate)},
		"X-Amz-Date":           {amzDate},
		"X-Amz-Expires":        {strconv.Itoa(int(time.Duration(s.lifetime.Load()).Seconds()))},
		"X-Amz-Security-Token": {s.securityToken},
		"X-Amz-SignedHeaders":  {"host"},
	}
	path := "/" + s.Bucket + "/" + key
	query := canonicalQuery(q)
	base := s.URL
	if testName {
		base = s.names.url(base)
	}
	sig := s.signature(http.MethodGet, path, query, hostOf(base), amzDate)
	return base + path + "?" + query + "&X-Amz-Signature=" + sig
}

// objectKey names a layer the way ECR's bucket does
// ("<4 hex>-<account>-<uuid>/<uuid>"), stable per repository and digest.
func (s *S3) objectKey(repo, digest string) string {
	mac := func(v string) []byte {
		h := hmac.New(sha256.New, []byte(s.secretKey))
		h.Write([]byte(v))
		return h.Sum(nil)
	}
	r, d := mac("repository:"+repo), mac("layer:"+repo+"@"+digest)
	return hex.EncodeToString(r[:2]) + "-" + s.account + "-" + uuidOf(r[2:18]) + "/" + uuidOf(d[:16])
}

func (s *S3) scope(amzDate string) string {
	return amzDate[:8] + "/" + s.region + "/s3/aws4_request"
}

// signature is SigV4 for a pre-signed request with UNSIGNED-PAYLOAD.
func (s *S3) signature(method, path, query, host, amzDate string) string {
	canonical := strings.Join([]string{method, path, query, "host:" + host + "\n", "host", "UNSIGNED-PAYLOAD"}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{s3Algorithm, amzDate, s.scope(amzDate), hex.EncodeToString(sum[:])}, "\n")
	key := []byte("AWS4" + s.secretKey)
	for _, part := range []string{amzDate[:8], s.region, "s3", "aws4_request", toSign} {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(part))
		key = h.Sum(nil)
	}
	return hex.EncodeToString(key)
}

func (s *S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	if p := s.parent.Load(); p != nil {
		p.count(r)
	}
	cw := &countingWriter{ResponseWriter: w, n: []*atomic.Int64{&s.out}}
	if p := s.parent.Load(); p != nil {
		cw.n = append(cw.n, &p.out)
	}
	if a := r.Header.Get("Authorization"); a != "" {
		s.writeError(cw, r, http.StatusBadRequest, "InvalidArgument",
			"Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
			"<ArgumentName>Authorization</ArgumentName><ArgumentValue>"+html.EscapeString(a)+"</ArgumentValue>")
		return
	}
	obj, ok := s.checkPresigned(cw, r)
	if !ok {
		return
	}
	fault := S3Serve
	if f := s.fault.Load(); f != nil {
		fault = (*f)(r)
	}
	switch fault {
	case S3SlowDown:
		s.writeError(cw, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.", "")
		return
	case S3InternalError:
		s.writeError(cw, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.", "")
		return
	}
	var out http.ResponseWriter = cw
	switch fault {
	case S3CutBody:
		out, _ = applyNetFault(NetCutBody, cw, r, s.done)
	case S3StallBody:
		out, _ = applyNetFault(NetStallBody, cw, r, s.done)
	}
	s.serveObject(out, r, obj)
}

// checkPresigned verifies the query-string signature and expiry as S3 does,
// answering the error itself when they fail.
func (s *S3) checkPresigned(w http.ResponseWriter, r *http.Request) (s3Object, bool) {
	q := r.URL.Query()
	for _, p := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"} {
		if q.Get(p) == "" {
			s.writeError(w, r, http.StatusForbidden, "AccessDenied", "Access Denied", "")
			return s3Object{}, false
		}
	}
	if key, _, _ := strings.Cut(q.Get("X-Amz-Credential"), "/"); key != s.accessKeyID || q.Get("X-Amz-Security-Token") != s.securityToken {
		s.writeError(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", "")
		return s3Object{}, false
	}
	signed, errDate := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	secs, errExp := strconv.Atoi(q.Get("X-Amz-Expires"))
	if errDate != nil || errExp != nil {
		s.writeError(w, r, http.StatusBadRequest, "AuthorizationQueryParametersError", "X-Amz-Date and X-Amz-Expires must be a date and a number of seconds.", "")
		return s3Object{}, false
	}
	if now, expires := time.Now().UTC(), signed.Add(time.Duration(secs)*time.Second); now.After(expires) {
		s.writeError(w, r, http.StatusForbidden, "AccessDenied", "Request has expired",
			fmt.Sprintf("<X-Amz-Expires>%d</X-Amz-Expires><Expires>%s</Expires><ServerTime>%s</ServerTime>",
				secs, expires.Format(time.RFC3339), now.Format(time.RFC3339)))
		return s3Object{}, false
	}
	unsigned := url.Values{}
	for k, v := range q {
		if k != "X-Amz-Signature" {
			unsigned[k] = v
		}
	}
	want := s.signature(r.Method, r.URL.EscapedPath(), canonicalQuery(unsigned), r.Host, q.Get("X-Amz-Date"))
	if !hmac.Equal([]byte(want), []byte(q.Get("X-Amz-Signature"))) {
		s.writeError(w, r, http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your key and signing method.", "")
		return s3Object{}, false
	}
	s.mu.Lock()
	obj, ok := s.objects[strings.TrimPrefix(r.URL.Path, "/"+s.Bucket+"/")]
	s.mu.Unlock()
	if !ok {
		s.writeError(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", "")
	}
	return obj, ok
}

// serveObject streams the layer from the registry, honouring Range.
func (s *S3) serveObject(w http.ResponseWriter, r *http.Request, obj s3Object) {
	u := *s.registry
	u.Path = "/v2/" + obj.repo + "/blobs/" + obj.digest
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		s.writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error(), "")
		return
	}
	req.SetBasicAuth("AWS", s.password)
	if rg := r.Header.Get("Range"); rg != "" {
		req.Header.Set("Range", rg)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.writeError(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.", "")
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
	case http.StatusRequestedRangeNotSatisfiable:
		s.writeError(w, r, resp.StatusCode, "InvalidRange", "The requested range is not satisfiable", "")
		return
	case http.StatusNotFound:
		s.writeError(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", "")
		return
	default:
		s.writeError(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.", "")
		return
	}
	h := w.Header()
	s.amzHeaders(h)
	for _, k := range []string{"Content-Length", "Content-Range", "Last-Modified"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+strings.TrimPrefix(obj.digest, "sha256:")[:32]+`"`)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, resp.Body)
}

func (s *S3) amzHeaders(h http.Header) {
	h.Set("Server", "AmazonS3")
	h.Set("x-amz-request-id", strings.ToUpper(randomHex(8)))
	h.Set("x-amz-id-2", randomBase64(48))
}

// writeError answers with S3's XML error document (headers only for HEAD).
func (s *S3) writeError(w http.ResponseWriter, r *http.Request, status int, code, message, extra string) {
	h := w.Header()
	s.amzHeaders(h)
	h.Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message>%s<RequestId>%s</RequestId><HostId>%s</HostId></Error>`,
		code, html.EscapeString(message), extra, h.Get("x-amz-request-id"), h.Get("x-amz-id-2"))
}

// canonicalQuery is SigV4's: keys sorted, RFC 3986 escaping.
func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string{}, q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

func awsEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(url.QueryEscape(s), "+", "%20"), "%7E", "~")
}

func uuidOf(b []byte) string {
	x := hex.EncodeToString(b)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// randomBytes is n bytes from crypto/rand, which does not fail on Linux.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Errorf("crypto/rand: %w", err))
	}
	return b
}

func randomHex(n int) string    { return hex.EncodeToString(randomBytes(n)) }
func randomBase64(n int) string { return base64.StdEncoding.EncodeToString(randomBytes(n)) }

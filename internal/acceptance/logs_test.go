package acceptance

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTraceLogHoldsNoSecret runs an apply with TF_LOG=trace whose layers
// come through ECR's pre-signed S3 URLs and meet refusals on the way: an S3
// URL that has lapsed (403, fetched again), an ECR token that has expired
// (403, renewed) and a renewed token refused at once (403, final: the tag
// fails). Neither the log nor the command's output may hold a secret.
func TestTraceLogHoldsNoSecret(t *testing.T) {
	f := newFaultFixture(t, standardImages(512<<10))
	logPath := filepath.Join(t.TempDir(), "terraform-trace.log")
	f.w.env = append(f.w.env, "TF_LOG=trace", "TF_LOG_PATH="+logPath)

	refusals := newRefusalSequence(f.repo)
	env.ECRProxy.SetFault(refusals.onECRRequest)
	t.Cleanup(func() { env.ECRProxy.SetFault(nil); env.S3.SetURLLifetime(time.Hour) })

	out, code := f.w.run("apply", "-auto-approve", "-input=false", "-no-color")
	if code == 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "ECR refused") {
		t.Fatalf("apply exited %d; the refused renewal should fail a tag and name ECR:\n%s", code, out)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	if step := refusals.reached(); step != refusalsDone {
		t.Fatalf("the refusals stopped at step %d of %d", step, refusalsDone)
	}
	// The log is worth searching: large, with the redacted pre-signed URLs
	// and the refusals.
	s3Host := strings.TrimPrefix(env.S3.URL, "http://")
	switch {
	case len(log) < 256<<10 || strings.Count(log, "reg http request") < 20:
		t.Fatalf("trace log is %d bytes with %d registry requests; TF_LOG=trace did not reach the provider", len(log), strings.Count(log, "reg http request"))
	case !strings.Contains(log, s3Host):
		t.Errorf("trace log never mentions the S3 host %s: the layers did not come through pre-signed URLs", s3Host)
	case !strings.Contains(log, "X-Amz-Signature=REDACTED"):
		t.Error("trace log has no X-Amz-Signature=REDACTED: redaction never met a pre-signed URL")
	case !strings.Contains(log, `resp-status="403 Forbidden"`):
		t.Error("trace log has no 403: the refusals were not logged")
	}
	expectNoSecrets(t, "TF_LOG=trace log", log)
	expectNoSecrets(t, "terraform apply output", out)
}

// refusalSequence makes, one after the other as each one's effect shows,
// S3 refuse a pre-signed URL that has lapsed, ECR refuse an expired token,
// and ECR refuse the renewed one.
type refusalSequence struct {
	blobs string // path prefix of the repository's blob GETs

	mu        sync.Mutex
	step      int
	s3Seen    int64 // S3 requests before the URLs lapsed
	ecrTokens int   // GetAuthorizationToken calls before the first expiry
}

const (
	refusalsLapsedURLs = iota
	refusalsExpiredToken
	refusalsRefusedRenewal
	refusalsDone
)

func newRefusalSequence(repo string) *refusalSequence {
	return &refusalSequence{blobs: "/v2/" + repo + "/blobs/sha256:"}
}

func (s *refusalSequence) reached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step
}

// onECRRequest is the ECR proxy's fault hook; it never answers by itself.
func (s *refusalSequence) onECRRequest(r *http.Request) (int, string, bool) {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, s.blobs) {
		return 0, "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.step {
	case refusalsLapsedURLs: // this GET's URL has lapsed when it reaches S3
		s.s3Seen = env.S3.Stats().Requests
		env.S3.SetURLLifetime(0)
		s.step++
	case refusalsExpiredToken: // once S3 refused a URL: this GET's token has expired
		if env.S3.Stats().Requests > s.s3Seen {
			env.S3.SetURLLifetime(time.Hour)
			s.ecrTokens = env.ECRTokenRequests()
			env.ExpireECRTokens()
			s.step++
		}
	case refusalsRefusedRenewal: // once renewed: the new token has expired too
		if env.ECRTokenRequests() > s.ecrTokens {
			env.ExpireECRTokens()
			s.step++
		}
	}
	return 0, "", false
}

var (
	jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.`)
	// A pre-signed URL's secrets, plain or URL-encoded inside another URL;
	// group 2 is the value, which must be the redactor's mask.
	presignedSecret = regexp.MustCompile(`(?i)X-Amz-(Signature|Security-Token)(?:=|%3D)([^&\s"'<>\\]*)`)
)

// expectNoSecrets fails the test for every secret in text, quoting the
// line it is on (cut around it).
func expectNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, leak := range secretLeaks(text) {
		t.Errorf("%s holds %s", what, leak)
	}
}

// secretLeaks finds the environment's secrets and secret-shaped text.
func secretLeaks(text string) []string {
	type secret struct{ name, value string }
	secrets := []secret{
		{"the GitLab token", env.GitLabToken},
		{"the AWS secret access key", env.SecretAccessKey},
		{"the AWS admin secret access key", env.AdminSecretAccessKey},
		// Every STS session token starts so, the S3 stand-in's included.
		{"an AWS session token", "IQoJb3JpZ2luX2Vj"},
	}
	for _, pass := range env.IssuedECRPasswords() {
		secrets = append(secrets,
			secret{"an ECR registry password", pass},
			secret{"an ECR registry password as base64 AWS:<password>", base64.StdEncoding.EncodeToString([]byte("AWS:" + pass))})
	}
	var leaks []string
	for _, s := range secrets {
		if i := strings.Index(text, s.value); s.value != "" && i >= 0 {
			leaks = append(leaks, fmt.Sprintf("%s: %s", s.name, lineAround(text, i)))
		}
	}
	for _, m := range jwtPattern.FindAllStringIndex(text, 3) {
		leaks = append(leaks, "a JWT: "+lineAround(text, m[0]))
	}
	presigned := 0
	for _, m := range presignedSecret.FindAllStringSubmatchIndex(text, -1) {
		if value := text[m[4]:m[5]]; value != "" && value != "REDACTED" {
			if presigned++; presigned <= 3 {
				leaks = append(leaks, "an S3 URL's X-Amz-"+text[m[2]:m[3]]+": "+lineAround(text, m[0]))
			}
		}
	}
	if presigned > 3 {
		leaks = append(leaks, fmt.Sprintf("%d more S3 URL secrets", presigned-3))
	}
	return leaks
}

// lineAround quotes the line holding text[i], cut to 300 characters around i.
func lineAround(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := len(text)
	if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
		end = i + j
	}
	start, end = max(start, i-150), min(end, i+150)
	return fmt.Sprintf("%q", text[start:end])
}

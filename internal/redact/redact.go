// Package redact removes secrets from text bound for logs and diagnostics:
// the signature, session token and credential of pre-signed S3 URLs (ECR
// hands one out for every layer download), JSON Web Tokens (GitLab's registry
// tokens), HTTP Basic and Bearer credentials, and any secret a Redactor was
// given (the GitLab token, the ECR registry password).
package redact

import (
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
)

// Mask replaces what was removed.
const Mask = "REDACTED"

// Patterns match secrets by their shape wherever they appear; tflog masks use
// them too, so a log line is cleaned before it is written.
//
// A value must be longer than Mask (every real one is), so that text already
// redacted is left as it is: tflog's masks, which run after the redactor,
// would otherwise turn "X-Amz-Signature=REDACTED" into "***".
var Patterns = []*regexp.Regexp{
	// Pre-signed URL parameters; the value ends at a separator or a quote
	// (a URL inside an error message is quoted, inside JSON it is escaped).
	regexp.MustCompile(`(?i)X-Amz-(?:Signature|Security-Token|Credential)(?:=|%3D)[^&\s"'<>\\]{9,}`),
	// JSON Web Tokens: three base64url parts, the first an encoded '{"'.
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`),
	// Credentials of an Authorization header.
	regexp.MustCompile(`(?i)\b(?:Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{9,}`),
}

// Text removes the secrets that Patterns recognise.
func Text(s string) string {
	for _, p := range Patterns {
		s = p.ReplaceAllStringFunc(s, maskMatch)
	}
	return s
}

// maskMatch keeps the name of what was removed (the parameter, the auth
// scheme) so a reader still sees what the text was about.
func maskMatch(m string) string {
	if i := strings.IndexAny(m, "= "); i > 0 && !strings.HasPrefix(m, "eyJ") {
		return m[:i+1] + Mask
	}
	if strings.HasPrefix(strings.ToLower(m), "x-amz-") {
		if i := strings.Index(strings.ToLower(m), "%3d"); i > 0 {
			return m[:i+3] + Mask
		}
	}
	return Mask
}

// Redactor also removes known secret values, and the forms they travel in.
// Secrets can be added while it is in use (ECR issues passwords on the way).
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
	known   map[string]bool
}

// New returns a Redactor for the given secrets; empty ones are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add registers more secrets, with their base64 forms as HTTP Basic sends
// them (e.g. "AWS:<password>" for the ECR registry).
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]bool{}
	}
	for _, s := range secrets {
		if len(s) < 4 || r.known[s] {
			continue
		}
		r.known[s] = true
		r.secrets = append(r.secrets, s, base64.StdEncoding.EncodeToString([]byte(s)))
	}
}

// Secrets returns every registered value, for log masks.
func (r *Redactor) Secrets() []string {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string{}, r.secrets...)
}

// String removes registered secrets and secret-shaped text.
func (r *Redactor) String(s string) string {
	for _, secret := range r.Secrets() {
		s = strings.ReplaceAll(s, secret, Mask)
	}
	return Text(s)
}

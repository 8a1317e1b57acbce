package mirror

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
)

// Credentials supplies the ECR registry credential; ecr.Client satisfies it.
// It is asked only when a request goes to ECR, so reading GitLab never
// touches ECR.
type Credentials interface {
	Credential(ctx context.Context) (ecr.Credential, error)
	// Renew replaces refused unless it was replaced already, and returns the current credential.
	Renew(ctx context.Context, refused ecr.Credential) (ecr.Credential, error)
}

// ecrLogin adds the ECR registry credential to requests for ECR.
type ecrLogin struct {
	creds Credentials

	mu sync.Mutex
	// renewedFor is the password that replaced a refused one. When that one
	// is refused too soon after, the refusal is final: asking again would not
	// help (a missing permission). Much later it is an expiry like any other.
	renewedFor string
	renewedAt  time.Time
}

// refusalWindow is how long a renewed credential's refusal counts as final.
const refusalWindow = time.Minute

func (l *ecrLogin) roundTrip(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if l == nil || l.creds == nil {
		return base.RoundTrip(req)
	}
	cred, err := l.creds.Credential(req.Context())
	if err != nil {
		err = fmt.Errorf("getting the ECR registry token (ecr:GetAuthorizationToken): %w", err)
		if isConnectionFailure(err) {
			return nil, err
		}
		return loginFailure(req, err), nil
	}
	resp, err := sendBasic(base, req, cred)
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	// ECR answers an expired or revoked token with 403 (401 without one):
	// renew it once and send again; ECR is only read, so there is no body.
	renewed, ok := l.renew(req.Context(), cred)
	if !ok || (req.Body != nil && req.Body != http.NoBody) {
		return resp, nil
	}
	discard(resp)
	return sendBasic(base, req, renewed)
}

func (l *ecrLogin) renew(ctx context.Context, refused ecr.Credential) (ecr.Credential, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if refused.Password == l.renewedFor && time.Since(l.renewedAt) < refusalWindow {
		return refused, false
	}
	cred, err := l.creds.Renew(ctx, refused)
	if err != nil {
		return refused, false
	}
	if cred.Password != refused.Password {
		l.renewedFor, l.renewedAt = cred.Password, time.Now()
	}
	return cred, true
}

func sendBasic(base http.RoundTripper, req *http.Request, cred ecr.Credential) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.SetBasicAuth(cred.User, cred.Password)
	return base.RoundTrip(r)
}

package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/regclient/regclient/types/errs"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// Side names the registry a failure came from, so a diagnostic says which
// one to look at.
type Side string

// The two sides of a migration. Amazon S3, where ECR redirects layer
// downloads, counts as ECR.
const (
	SideECR    Side = "ECR"
	SideGitLab Side = "GitLab"
)

// RegistryError is a registry's refusal as it was sent: the status and the
// code and message of the error body. regclient keeps only the status class,
// and drops the body of a 401 altogether; this is what a user needs to see.
type RegistryError struct {
	Side   Side
	Method string
	Host   string
	// Path is the URL path only: a pre-signed URL carries secrets in its query.
	Path    string
	Status  int
	Code    string
	Message string
	Detail  string
	// RetryAt is when the registry asked to be asked again (Retry-After).
	RetryAt time.Time
}

func (e *RegistryError) Error() string {
	s := fmt.Sprintf("the %s registry answered %d %s to %s %s%s", e.Side, e.Status, http.StatusText(e.Status), e.Method, e.Host, e.Path)
	if e.Code != "" || e.Message != "" {
		s += fmt.Sprintf(": %s %q", e.Code, e.Message)
	}
	if e.Detail != "" {
		s += " (detail: " + e.Detail + ")"
	}
	return redact.Text(s)
}

// Refused reports a 401 or 403: the credentials or the rules say no.
func (e *RegistryError) Refused() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// maxErrorBody bounds how much of an error body is kept.
const maxErrorBody = 64 << 10

// registryErrorFrom reads an error response's body (putting the bytes back
// for regclient) and decodes the registry's JSON error list or S3's XML error.
func registryErrorFrom(side Side, req *http.Request, resp *http.Response) *RegistryError {
	re := &RegistryError{Side: side, Method: req.Method, Host: req.URL.Host, Path: req.URL.Path, Status: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		re.RetryAt = time.Now().Add(time.Duration(secs) * time.Second)
	}
	if resp.Body == nil || req.Method == http.MethodHead {
		return re
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
	re.Code, re.Message, re.Detail = decodeErrorBody(body)
	return re
}

// decodeErrorBody understands the distribution spec's error list and S3's
// XML error; anything else is quoted, shortened.
func decodeErrorBody(body []byte) (code, message, detail string) {
	var list struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &list) == nil && len(list.Errors) > 0 {
		e := list.Errors[0]
		detail := strings.Trim(string(e.Detail), `"`)
		if detail == "null" {
			detail = ""
		}
		return e.Code, e.Message, detail
	}
	var s3 struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &s3) == nil && s3.Code != "" {
		return s3.Code, s3.Message, ""
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	return "", text, ""
}

// recorder keeps the outcome of the last request of one call: the registry's
// refusal, or nil after a success or a broken connection, so the call's error
// carries the answer that ended it and not an earlier one.
type recorder struct {
	mu   sync.Mutex
	last *RegistryError
	// conn is the last connection failure of the call (a stall, a refused
	// connection), failures how many there were, resumedFrom the offsets
	// from which a download was asked for again.
	conn        *ConnectionError
	failures    int
	stalls      int
	resumedFrom []int64
	// budget counts the stalls of the copy the call belongs to.
	budget *stallBudget
}

// refuse is the error for a request to host when the call's copy has spent
// its stalls on it (see stallBudget).
func (r *recorder) refuse(host string) error {
	if r == nil {
		return nil
	}
	return r.budget.refuse(host)
}

type recorderKey struct{}

func (r *recorder) record(e *RegistryError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = e
}

// connFailed keeps a connection failure of side. An error the network
// package does not recognise is left out: an upload that fails because its
// source (the ECR download) broke off is the source's failure. spent is the
// stall that used up the copy's budget on its host, if err is one.
func (r *recorder) connFailed(side Side, err error) (spent *network.StallError) {
	var refused *stalledHostError
	if _, ok := network.Explain(err); !ok || side == "" || errors.As(err, &refused) {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn = &ConnectionError{Side: side, Cause: err}
	r.failures++
	var stall *network.StallError
	if errors.As(err, &stall) {
		r.stalls++
		if r.budget.note(stall) {
			return stall
		}
	}
	return nil
}

// noteResume keeps where a request asks to resume from: the engine sends no
// Range of its own, so one is regclient resuming a broken-off download.
func (r *recorder) noteResume(req *http.Request) {
	var from int64
	if _, err := fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-", &from); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resumedFrom = append(r.resumedFrom, from)
}

// connectionError is the call's connection failure with what was tried,
// around err, the call's own error; nil when no connection failed.
func (r *recorder) connectionError(err error) *ConnectionError {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	c := *r.conn
	c.Failures, c.Stalls, c.ResumedFrom, c.Err = r.failures, r.stalls, slices.Clone(r.resumedFrom), err
	return &c
}

func recorderFrom(ctx context.Context) *recorder {
	r, _ := ctx.Value(recorderKey{}).(*recorder)
	return r
}

// call runs one regclient operation against side's registry and, when it
// fails, attaches what the registry answered, or else which side failed.
func call(ctx context.Context, side Side, op func(context.Context) error) error {
	rec := &recorder{budget: stallBudgetFrom(ctx)}
	err := op(context.WithValue(ctx, recorderKey{}, rec))
	if err == nil {
		return nil
	}
	rec.mu.Lock()
	last := rec.last
	rec.mu.Unlock()
	if last != nil {
		return &callError{answer: last, err: err}
	}
	// Even when the apply was stopped, a connection failure on the way says
	// more than the context's error alone.
	if conn := rec.connectionError(err); conn != nil {
		return conn
	}
	if SideOf(err) != "" || ctx.Err() != nil {
		return err
	}
	return &SideError{Side: side, Err: err}
}

// ConnectionError is a call that failed because a connection did: it could
// not be made, or it stalled. Cause is the last such failure (it names the
// host), Failures how many the call met, ResumedFrom the byte offsets from
// which a download was asked for again, and Err the call's own error.
type ConnectionError struct {
	Side        Side
	Cause       error
	Failures    int
	Stalls      int // how many of the failures were stalls
	ResumedFrom []int64
	Err         error
}

// stalledOut is a call that gave up because its requests kept stalling: a
// server that stalled twice hangs, and another attempt would cost more idle
// timeouts for the same answer.
func stalledOut(err error) bool {
	var ce *ConnectionError
	return errors.As(err, &ce) && ce.Stalls >= maxStallsPerHost
}

func (c *ConnectionError) Error() string {
	tried := fmt.Sprintf("%d failed attempt(s)", c.Failures)
	if len(c.ResumedFrom) > 0 {
		offsets := make([]string, len(c.ResumedFrom))
		for i, o := range c.ResumedFrom {
			offsets[i] = strconv.FormatInt(o, 10)
		}
		tried += ", resumed with Range from byte " + strings.Join(offsets, ", ")
	}
	if c.Err != nil && errors.Is(c.Err, c.Cause) {
		return redact.Text(fmt.Sprintf("%v (%s)", c.Err, tried))
	}
	s := fmt.Sprintf("%v (%s)", c.Cause, tried)
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return redact.Text(s)
}

func (c *ConnectionError) Unwrap() []error { return []error{c.Cause, c.Err} }

// callError is a failed regclient call with the registry's own answer.
type callError struct {
	answer *RegistryError
	err    error
}

func (c *callError) Error() string   { return c.answer.Error() }
func (c *callError) Unwrap() []error { return []error{c.answer, c.err} }

// SideError is a failure that happened on one side before or outside any
// registry answer: getting a credential, a broken connection.
type SideError struct {
	Side Side
	Err  error
}

// Error is the failure itself; diagnostics name the side from Side.
func (s *SideError) Error() string { return redact.Text(s.Err.Error()) }
func (s *SideError) Unwrap() error { return s.Err }

// sideErr marks err as side's unless it names a side already.
func sideErr(side Side, err error) error {
	if SideOf(err) != "" {
		return err
	}
	return &SideError{Side: side, Err: err}
}

// SideOf tells which side an error came from; "" when it cannot tell.
func SideOf(err error) Side {
	var ce *ConnectionError
	if errors.As(err, &ce) {
		return ce.Side
	}
	var re *RegistryError
	if errors.As(err, &re) {
		return re.Side
	}
	var se *SideError
	if errors.As(err, &se) {
		return se.Side
	}
	return ""
}

// Answer returns the registry's answer carried by err, if any.
func Answer(err error) (*RegistryError, bool) {
	var re *RegistryError
	ok := errors.As(err, &re)
	return re, ok
}

// isTransient is a failure another attempt may not meet: the registry was
// overloaded or throttled past regclient's own retries, a pre-signed URL
// lapsed, or the connection broke or stalled once.
func isTransient(err error) bool {
	if stalledOut(err) {
		return false
	}
	if errors.As(err, new(transferError)) {
		// A stream cannot be sent twice, so a 401 on it was not resent: the
		// transport has renewed the token meanwhile, and the copy's next
		// attempt uses it. (Tag rules refuse manifests, never blobs.) A 403
		// is a missing right, and final.
		re, ok := Answer(err)
		return !ok || re.Status != http.StatusForbidden
	}
	if re, ok := Answer(err); ok {
		switch {
		case re.Status == http.StatusTooManyRequests, re.Status == http.StatusRequestTimeout, re.Status >= 500:
			return true
		case re.Status == http.StatusForbidden && re.Code == "AccessDenied" && re.Side == SideECR:
			// S3 (its XML code, not the registry's DENIED) refusing a
			// pre-signed URL that lapsed on the way; ECR hands out a new one.
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, errs.ErrHTTPRateLimit) || errors.Is(err, errs.ErrRetryLimitExceeded) || errors.Is(err, errs.ErrBackoffLimit) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED)
}

// isNotFound is a manifest or blob the registry does not have.
func isNotFound(err error) bool {
	if re, ok := Answer(err); ok {
		return re.Status == http.StatusNotFound
	}
	return errors.Is(err, errs.ErrNotFound)
}

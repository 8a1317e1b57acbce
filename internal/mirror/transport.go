package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// registryTransport sits under regclient and logs in to both registries.
// regclient's own login keeps one set of credentials per host for the life of
// the client and holds a bearer token for at least 60 seconds whatever the
// registry says; ECR's password changes every 12 hours and must not be asked
// for before a copy needs it, and a GitLab token must be renewed when GitLab
// refuses it. So regclient sends its requests bare and this transport adds:
//   - ECR: HTTP Basic with the current ECR registry credential, renewed once
//     when ECR refuses it (403 "Your authorization token has expired");
//   - GitLab: a bearer token per repository from GitLab's /jwt/auth, renewed
//     when it lapses and once when the registry refuses it.
//
// It also records each refusal for the call that caused it (see call), and
// turns a Retry-After date into seconds, the form regclient understands.
type registryTransport struct {
	// ecrBase (ECR's registry and S3) and gitlabBase send the requests, each
	// with its side's CAs; a host of neither side goes through gitlabBase.
	ecrBase    http.RoundTripper
	gitlabBase http.RoundTripper
	ecr        *ecrLogin
	gitlab     *gitlabTokens

	// hung are the hosts that stalled a copy's budget away.
	hung hungHosts

	pauses      hostPauses
	mu          sync.RWMutex
	gitlabHosts map[string]bool
	ecrHosts    map[string]bool // endpoint overrides (tests, proxies)
}

// ecrHostName matches ECR's registry host names, e.g.
// 123456789012.dkr.ecr.eu-west-1.amazonaws.com (and the .cn partition).
var ecrHostName = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:[0-9]+)?$`)

func (t *registryTransport) sideOf(req *http.Request) Side {
	if req.Response != nil {
		// A redirect, e.g. ECR's layer download to S3: the side that sent it,
		// and never its credentials (S3 refuses a second auth mechanism).
		return ""
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch host := req.URL.Host; {
	case t.gitlabHosts[host]:
		return SideGitLab
	case t.ecrHosts[host], ecrHostName.MatchString(host):
		return SideECR
	}
	return ""
}

// baseOf is the transport of side's connections.
func (t *registryTransport) baseOf(side Side) http.RoundTripper {
	if side == SideECR {
		return t.ecrBase
	}
	return t.gitlabBase
}

// redirectedFrom is the side whose redirect led to req, if any.
func (t *registryTransport) redirectedFrom(req *http.Request) Side {
	for r := range redirectChain(req) {
		if r == req {
			continue
		}
		if side := t.sideOf(r); side != "" {
			return side
		}
	}
	return ""
}

func (t *registryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorderFrom(req.Context())
	host := req.URL.Host
	if err := rec.refuse(host); err != nil {
		return nil, err
	}
	if err := takeBlobSlot(req); err != nil {
		return nil, err
	}
	if err := t.pauses.wait(req.Context(), host); err != nil {
		return nil, err
	}
	probe, err := t.hung.admit(host)
	if err != nil {
		return nil, err
	}
	side, resp, err := t.send(req)
	t.hung.settle(host, probe, err == nil)
	if err == nil {
		normalizeRetryAfter(resp)
		t.pauses.note(host, resp)
		resp.Body = &resumableBody{ReadCloser: resp.Body, rec: rec, t: t, side: side, req: req}
	}
	if rec != nil && side != "" && !isUploadCancel(req) {
		t.record(rec, side, req, resp, err)
	}
	var stall *network.StallError
	if probe && rec != nil && errors.As(err, &stall) {
		rec.budget.spend(stall) // still hung: this copy need not find out twice
	}
	return resp, err
}

// send sends req with its side's credentials; a request of neither side (a
// redirect) goes bare over the transport of the side that sent it there,
// which is the side it counts for.
func (t *registryTransport) send(req *http.Request) (Side, *http.Response, error) {
	switch side := t.sideOf(req); side {
	case SideECR:
		resp, err := t.ecr.roundTrip(t.ecrBase, req)
		return side, resp, err
	case SideGitLab:
		resp, err := t.gitlab.roundTrip(t.gitlabBase, req)
		return side, resp, err
	}
	side := t.redirectedFrom(req)
	resp, err := t.baseOf(side).RoundTrip(req)
	return side, resp, err
}

// record keeps the outcome of req for its call.
func (t *registryTransport) record(rec *recorder, side Side, req *http.Request, resp *http.Response, err error) {
	rec.noteResume(req)
	switch {
	case err != nil:
		rec.record(nil)
		t.connFailed(rec, side, err)
	case resp.StatusCode >= 400:
		rec.record(registryErrorFrom(side, req, resp))
	case resp.StatusCode < 300:
		rec.record(nil)
	}
}

// connFailed records a connection failure, and marks its host hung when
// it used up the copy's stall budget.
func (t *registryTransport) connFailed(rec *recorder, side Side, err error) {
	if stall := rec.connFailed(side, err); stall != nil {
		t.hung.mark(stall)
	}
}

// resumableBody reports a body whose connection stalled or broke to
// regclient as io.ErrUnexpectedEOF, the one error on which regclient asks
// again for the rest of a blob with a Range request from the last byte
// received; the call's recorder keeps what happened for its error message.
type resumableBody struct {
	io.ReadCloser
	rec  *recorder
	t    *registryTransport
	side Side
	req  *http.Request
}

func (b *resumableBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || errors.Is(err, io.EOF) || b.req.Context().Err() != nil {
		return n, err // the end, or the call was stopped: nothing to resume
	}
	if b.rec != nil {
		if _, known := network.Explain(err); !known {
			err = &network.BrokenError{Host: b.req.URL.Host, Err: err}
		}
		b.t.connFailed(b.rec, b.side, err)
	}
	return n, io.ErrUnexpectedEOF
}

// isUploadCancel is regclient cleaning up after a failed blob upload; its
// answer (GitLab wants the delete right for it) is not why the call failed.
func isUploadCancel(req *http.Request) bool {
	return req.Method == http.MethodDelete && strings.Contains(req.URL.Path, "/blobs/uploads/")
}

// normalizeRetryAfter rewrites an HTTP-date Retry-After as seconds.
func normalizeRetryAfter(resp *http.Response) {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return
	}
	if _, err := strconv.Atoi(v); err == nil {
		return
	}
	if at, err := http.ParseTime(v); err == nil {
		resp.Header.Set("Retry-After", strconv.Itoa(max(1, int(time.Until(at).Seconds()+0.5))))
	}
}

// maxReplayBody bounds the request bodies kept in memory so that a request
// refused for its credentials can be sent again (manifests, small blobs).
const maxReplayBody = 1 << 20

// withReplayableBody reads a small body into memory so the request can be
// sent twice; ok is false for a large stream, which is sent once.
func withReplayableBody(req *http.Request) (_ *http.Request, ok bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.ContentLength < 0 || req.ContentLength > maxReplayBody {
		return req, false
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	r := req.Clone(req.Context())
	if err != nil {
		r.Body = io.NopCloser(errReader{err})
		return r, false
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
	return r, true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// again clones a replayable request for a second attempt.
func again(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	if req.GetBody != nil {
		r.Body, _ = req.GetBody()
	}
	return r
}

// discard drains and closes a response that will be replaced.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// isConnectionFailure is a login that failed on the way to the token
// service, not by its refusal: a failure of the connection, which regclient
// may try again and the diagnostic explains as such.
func isConnectionFailure(err error) bool {
	_, ok := network.Explain(err)
	return ok
}

// loginFailure answers a request whose credentials could not be obtained as
// the registry would refuse it: 401 with the reason and no challenge, so
// regclient fails the request at once instead of retrying a login that
// cannot work (GitLab bans an address after 300 failed logins a minute).
func loginFailure(req *http.Request, err error) *http.Response {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": redact.Text(err.Error())}}})
	return answer(req, http.StatusUnauthorized, http.Header{"Content-Type": {"application/json"}}, body)
}

// answer is a response to req made here rather than by the registry.
func answer(req *http.Request, status int, header http.Header, body []byte) *http.Response {
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

package mirror

import (
	"iter"
	"net/http"
	"strings"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// streamSplit sends the requests that carry a blob's bytes (downloads, the
// redirects they follow, upload bodies) over HTTP/1.1 connections of their
// own, and every other request over the shared connections, HTTP/2 where the
// registry offers it. On HTTP/2 all streams to a host share one TCP
// connection, whose window and congestion control then cap the bytes in
// flight: across a WAN that one connection, not max_concurrent_blobs, set
// the pace of a cold copy. Small requests stay multiplexed, saving the
// handshakes.
type streamSplit struct {
	calls   http.RoundTripper
	streams http.RoundTripper
}

// newStreamSplit builds one side's transports from its network settings;
// pooled sizes their idle pools.
func newStreamSplit(s network.Settings, pooled func(*http.Transport)) streamSplit {
	return streamSplit{
		calls:   s.NewTransport(pooled),
		streams: s.NewTransport(pooled, http1Only),
	}
}

// http1Only also offers only http/1.1 in the TLS handshake: a TLS
// configuration cloned from a transport that has spoken HTTP/2 still lists h2.
func http1Only(t *http.Transport) {
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	t.TLSClientConfig = t.TLSClientConfig.Clone()
	t.TLSClientConfig.NextProtos = []string{"http/1.1"}
}

func (s streamSplit) RoundTrip(req *http.Request) (*http.Response, error) {
	if carriesBlob(req) {
		return s.streams.RoundTrip(req)
	}
	return s.calls.RoundTrip(req)
}

// carriesBlob is a blob download or an upload body.
func carriesBlob(req *http.Request) bool { return isBlobDownload(req) || isUploadBody(req) }

// isBlobDownload is a GET of a blob, or of a redirect of one (e.g. ECR's to S3).
func isBlobDownload(req *http.Request) bool {
	if req.Method != http.MethodGet {
		return false
	}
	for r := range redirectChain(req) {
		if isBlobPath(r.URL.Path) {
			return true
		}
	}
	return false
}

// isUploadBody is an upload request that carries bytes.
func isUploadBody(req *http.Request) bool {
	return (req.Method == http.MethodPatch || req.Method == http.MethodPut) &&
		strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Body != nil && req.Body != http.NoBody
}

// redirectChain yields req, then each earlier request whose redirect led to
// the one before, back to the first.
func redirectChain(req *http.Request) iter.Seq[*http.Request] {
	return func(yield func(*http.Request) bool) {
		for r := req; r != nil && yield(r); {
			if r.Response == nil {
				return
			}
			r = r.Response.Request
		}
	}
}

func isBlobPath(p string) bool {
	return strings.HasPrefix(p, "/v2/") && strings.Contains(p, "/blobs/sha256:")
}

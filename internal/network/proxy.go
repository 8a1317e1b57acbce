package network

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// ProxyError is a proxy's refusal to open a tunnel (CONNECT) to a host.
type ProxyError struct {
	Proxy  string // host:port of the proxy, without credentials
	Target string // the host the tunnel was for
	Status int
}

func (e *ProxyError) Error() string {
	return fmt.Sprintf("the proxy %s refused a tunnel to %s: %d %s", e.Proxy, e.Target, e.Status, http.StatusText(e.Status))
}

// refuseTunnel turns a proxy's answer other than 200 to CONNECT into a
// ProxyError; the standard library would report only the status text.
func refuseTunnel(_ context.Context, proxy *url.URL, req *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &ProxyError{Proxy: proxy.Host, Target: req.Host, Status: resp.StatusCode}
}

package network

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkBodyRead reads a 16 MiB body from a local server with and without
// the idle clock, to show what watching every read costs.
func BenchmarkBodyRead(b *testing.B) {
	body := make([]byte, 16<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	b.Cleanup(srv.Close)
	bare := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // the standard library's own type
	Settings{}.Apply(bare)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"bare", bare}, {"watched", Settings{}.NewTransport()}} {
		name, rt := c.name, c.rt
		b.Run(name, func(b *testing.B) {
			client := &http.Client{Transport: rt}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
}

package mirror

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A request that reaches the transport while a 429's Retry-After runs
// leaves only once it has run out, whoever let it through before.
func TestRetryAfterHoldsRequestsAlreadyPastRegclient(t *testing.T) {
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		first := len(arrivals) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	rt := &registryTransport{ecrBase: http.DefaultTransport, gitlabBase: http.DefaultTransport, gitlabHosts: map[string]bool{}, ecrHosts: map[string]bool{}}
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < 900*time.Millisecond {
		t.Errorf("the second request arrived %s after a 429 that asked for 1s", gap)
	}
}

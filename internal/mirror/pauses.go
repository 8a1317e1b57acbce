package mirror

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// hostPauses holds every request to a host while a 429's Retry-After runs.
// regclient keeps the pause for the requests it has not sent yet, but a
// request past its check may still wait here, e.g. an upload body for its
// blob slot, and would leave in the middle of the pause. The zero value
// holds no pause.
type hostPauses struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// note starts a pause for host when resp is a 429 with a Retry-After in
// seconds (see normalizeRetryAfter).
func (p *hostPauses) note(host string, resp *http.Response) {
	if resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return
	}
	end := time.Now().Add(time.Duration(secs) * time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.until == nil {
		p.until = map[string]time.Time{}
	}
	if end.After(p.until[host]) {
		p.until[host] = end
	}
}

// wait returns once host's pause, if any, has run out.
func (p *hostPauses) wait(ctx context.Context, host string) error {
	p.mu.Lock()
	end := p.until[host]
	p.mu.Unlock()
	return sleepUntil(ctx, end)
}

// sleepUntil returns at t, or earlier with ctx's error when ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// A stall costs idle_timeout. The first on a host may be one dropped flow;
// a request sent after it that stalls again is a server that hangs, and
// every further request to it would cost another idle_timeout for the same
// answer. So the stalls of a copy are counted per host across regclient's
// retries and the engine's own (stallBudget), and a host that used up a
// copy's budget is known hung to the whole engine (hungHosts) until it
// answers again. Requests in flight together stall together (one HTTP/2
// connection whose window a stalled upload holds, one outage): they count
// as one stall.

// maxStallsPerHost is how many times the requests of one copy may stall
// on a host.
const maxStallsPerHost = 2

// stallBudget counts the stalls of one copy (a resource's Mirror, or a
// single call outside one) per host.
type stallBudget struct {
	mu     sync.Mutex
	stalls map[string]int
	seen   map[string]time.Time // when the host's last counted stall was seen
	last   map[string]*network.StallError
}

func newStallBudget() *stallBudget {
	return &stallBudget{stalls: map[string]int{}, seen: map[string]time.Time{}, last: map[string]*network.StallError{}}
}

type stallBudgetKey struct{}

// withStallBudget gives the calls under ctx one budget.
func withStallBudget(ctx context.Context) context.Context {
	return context.WithValue(ctx, stallBudgetKey{}, newStallBudget())
}

// stallBudgetFrom is ctx's budget, or a new one for a call on its own.
func stallBudgetFrom(ctx context.Context) *stallBudget {
	if b, ok := ctx.Value(stallBudgetKey{}).(*stallBudget); ok {
		return b
	}
	return newStallBudget()
}

// note counts a stall, unless its request was sent before the host's last
// counted stall was seen; spent reports that the host has now used up the
// budget.
func (b *stallBudget) note(stall *network.StallError) (spent bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last[stall.Host] = stall
	if seen, ok := b.seen[stall.Host]; ok && stall.Sent.Before(seen) {
		return false
	}
	b.seen[stall.Host] = time.Now()
	b.stalls[stall.Host]++
	return b.stalls[stall.Host] >= maxStallsPerHost
}

// spend uses up the budget on stall's host at once: a probe of a host known
// hung stalled, so the copy need not find out twice for itself.
func (b *stallBudget) spend(stall *network.StallError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stalls[stall.Host] = max(b.stalls[stall.Host], maxStallsPerHost)
	b.seen[stall.Host] = time.Now()
	b.last[stall.Host] = stall
}

// refuse is the error for a request to host once host used up the budget.
func (b *stallBudget) refuse(host string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stalls[host] < maxStallsPerHost {
		return nil
	}
	return &stalledHostError{Stall: b.last[host], Why: fmt.Sprintf("it stalled %d times in this copy already", b.stalls[host])}
}

// endsCopy says why err ends the copy when it is a stall on a host that
// used up the budget: another attempt would only stall again.
func (b *stallBudget) endsCopy(err error) (why string, ends bool) {
	var stall *network.StallError
	if !errors.As(err, &stall) {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.stalls[stall.Host]; n >= maxStallsPerHost {
		return fmt.Sprintf("not tried again: %s stalled %d times in this copy, each for %s", stall.Host, n, stall.Idle), true
	}
	return "", false
}

// stalledHostError is a request not sent because its host hangs: it
// unwraps to the last stall there, so it is explained as one.
type stalledHostError struct {
	Stall *network.StallError
	Why   string
}

func (e *stalledHostError) Error() string {
	return fmt.Sprintf("not sent to %s: %s (the last: %v)", e.Stall.Host, e.Why, e.Stall)
}

func (e *stalledHostError) Unwrap() error { return e.Stall }

// hungHosts are the hosts that used up a copy's stall budget. A request to
// one fails at once, except one at a time that goes as a probe: when it is
// answered, the host is used again; when it stalls, its copy's budget on the
// host is spent, so a copy after the first costs one idle_timeout at most.
type hungHosts struct {
	mu    sync.Mutex
	hosts map[string]*hungHost
}

type hungHost struct {
	stall   *network.StallError
	probing bool
}

func (h *hungHosts) mark(stall *network.StallError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hosts == nil {
		h.hosts = map[string]*hungHost{}
	}
	if hh, ok := h.hosts[stall.Host]; ok {
		hh.stall = stall
		return
	}
	h.hosts[stall.Host] = &hungHost{stall: stall}
}

// admit lets a request to host go, as the probe when host is hung; err
// refuses it while another probe is on its way.
func (h *hungHosts) admit(host string) (probe bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hh, hung := h.hosts[host]
	switch {
	case !hung:
		return false, nil
	case hh.probing:
		return false, &stalledHostError{Stall: hh.stall, Why: "it stalled repeatedly in this apply and has not answered since"}
	}
	hh.probing = true
	return true, nil
}

// settle ends a request admitted to host: an answer clears the mark.
func (h *hungHosts) settle(host string, probe, answered bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hh, hung := h.hosts[host]
	switch {
	case !hung:
	case answered:
		delete(h.hosts, host)
	case probe:
		hh.probing = false
	}
}

package mirror

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// heads is how many HEADs GitLab got so far.
func (b *blobRegistries) heads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls["GitLab HEAD"]
}

// expectRefusedAsStall checks that err is a request refused without being
// sent, explained as the stall that made its host hung.
func expectRefusedAsStall(t *testing.T, what string, err error) {
	t.Helper()
	var refused *stalledHostError
	f, explained := network.Explain(err)
	if !errors.As(err, &refused) || !explained || f.Kind != network.KindStall || SideOf(err) != SideGitLab {
		t.Errorf("%s: error %v; want a GitLab request refused as a stall", what, err)
	}
}

// TestStallBudgetSpansTheCopy: once a host stalled twice within one copy,
// the copy's further requests to it are not sent, so a hung registry costs
// a copy two idle timeouts whatever regclient and the engine would retry.
func TestStallBudgetSpansTheCopy(t *testing.T) {
	b, c := newBlobRegistries(t, created, func(b *blobRegistries) { b.hangHeads, b.idle = true, testIdle })
	ctx := withStallBudget(context.Background())
	if err := c.placeBlob(ctx, b.desc); !stalledOut(err) {
		t.Fatalf("first call: %v; want two stalls", err)
	}
	err := c.placeBlob(ctx, b.desc)
	expectRefusedAsStall(t, "second call of the copy", err)
	if b.heads() != maxStallsPerHost {
		t.Errorf("GitLab got %d HEADs; want %d, none after the budget was spent", b.heads(), maxStallsPerHost)
	}
	if why, ends := stallBudgetFrom(ctx).endsCopy(err); !ends {
		t.Errorf("the copy would be tried again after its budget was spent: %v", err)
	} else {
		t.Log(why)
	}
}

// TestHungHostProbedUntilItAnswers: a host that spent a copy's budget is
// hung for every copy of the engine: one request at a time goes to it as a
// probe, the others fail at once, a copy whose probe stalls ends after that
// one stall, and once the host answers it is used again.
func TestHungHostProbedUntilItAnswers(t *testing.T) {
	b, c := newBlobRegistries(t, created, func(b *blobRegistries) { b.hangHeads, b.idle = true, testIdle })
	placeBlob := func() error {
		ctx := withStallBudget(context.Background())
		_, _, err := c.e.withRetries(ctx, c, "blob", func(cp *copier) error { return cp.placeBlob(ctx, b.desc) })
		return err
	}
	_ = placeBlob()
	probed := make(chan error, 1)
	go func() { probed <- placeBlob() }()
	for deadline := time.Now().Add(30 * time.Second); b.heads() <= maxStallsPerHost; {
		if time.Now().After(deadline) {
			t.Fatal("the other copy sent no probe to the hung host")
		}
		time.Sleep(10 * time.Millisecond)
	}
	expectRefusedAsStall(t, "a copy while the probe is out", placeBlob())
	if err := <-probed; err == nil {
		t.Error("the probe sent while the host hung succeeded")
	}
	if got := b.heads(); got != maxStallsPerHost+1 {
		t.Errorf("GitLab got %d HEADs; want %d: the probe alone, and its copy not tried again", got, maxStallsPerHost+1)
	}
	b.answerHeads.Store(true)
	for i := range 2 {
		if err := placeBlob(); err != nil {
			t.Errorf("copy %d once the host answers again: %v", i+1, err)
		}
	}
}

func TestHungHostsOneProbeAtATime(t *testing.T) {
	var h hungHosts
	stall := &network.StallError{Host: "registry.example.com", Phase: "waiting for the response headers", Idle: time.Minute}
	if probe, err := h.admit(stall.Host); probe || err != nil {
		t.Fatalf("a host never hung: probe %v, %v", probe, err)
	}
	h.mark(stall)
	probe, err := h.admit(stall.Host)
	if !probe || err != nil {
		t.Fatalf("first request to a hung host: probe %v, %v; want the probe", probe, err)
	}
	if _, err := h.admit(stall.Host); err == nil {
		t.Error("a second request went while the probe was out")
	}
	h.settle(stall.Host, true, false)
	if probe, err := h.admit(stall.Host); !probe || err != nil {
		t.Errorf("after a probe that stalled: probe %v, %v; want another probe", probe, err)
	}
	h.settle(stall.Host, true, true)
	if probe, err := h.admit(stall.Host); probe || err != nil {
		t.Errorf("after a probe was answered: probe %v, %v; want the host used as before", probe, err)
	}
}

// TestStallBudgetCountsTogetherOnce: requests in flight together when the
// host stalled (one HTTP/2 connection held by a stalled upload) are one
// stall; a request sent after it that stalls is the repeat.
func TestStallBudgetCountsTogetherOnce(t *testing.T) {
	b := newStallBudget()
	stallSent := func(at time.Time) *network.StallError {
		return &network.StallError{Host: "registry.example.com", Phase: "sending the request", Idle: time.Minute, Sent: at}
	}
	before := time.Now()
	for i := range 3 {
		if b.note(stallSent(before)) {
			t.Fatalf("stall %d of requests in flight together spent the budget", i+1)
		}
	}
	if err := b.refuse("registry.example.com"); err != nil {
		t.Fatalf("a host that stalled once is refused: %v", err)
	}
	if !b.note(stallSent(time.Now())) {
		t.Error("a request sent after the stall stalled too, and the budget is not spent")
	}
	if err := b.refuse("registry.example.com"); err == nil {
		t.Error("a host that stalled twice is still asked")
	}
}

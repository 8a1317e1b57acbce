package orphan

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// gone is called once the parent changes, and not while it stays.
func TestWatch(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	called := make(chan struct{})
	go Watch(context.Background(), time.Millisecond, func() int { return int(ppid.Load()) }, func() { close(called) })

	select {
	case <-called:
		t.Fatal("gone called while the parent is still there")
	case <-time.After(50 * time.Millisecond):
	}
	ppid.Store(1) // handed to init
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("gone not called 5s after the parent changed")
	}
}

// Watch returns when its context ends.
func TestWatchStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, time.Millisecond, func() int { return 7 }, func() { t.Error("gone called") })
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch still running 5s after its context ended")
	}
}

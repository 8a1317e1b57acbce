// Package orphan stops the provider when the Terraform that started it is
// gone. Killed alone (the OOM killer, a kill -9 of one process), terraform
// leaves its provider running: nothing will read what it copies or writes,
// and go-plugin has no way to tell it.
package orphan

import (
	"context"
	"os"
	"time"
)

// Watch calls gone once the process's parent changes, which on Unix means
// the parent exited and the process was handed to init or a subreaper. It
// checks every interval until ctx ends.
func Watch(ctx context.Context, interval time.Duration, getppid func() int, gone func()) {
	parent := getppid()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if getppid() != parent {
				gone()
				return
			}
		}
	}
}

// ExitWhenOrphaned runs Watch in the background and exits the process with
// status 1 once its parent is gone.
func ExitWhenOrphaned(ctx context.Context) {
	go Watch(ctx, time.Second, os.Getppid, func() { os.Exit(1) })
}

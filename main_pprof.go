//go:build pprof

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// Built with -tags pprof, the provider writes a CPU profile and an execution
// trace of its whole life into IMAGESYNC_PPROF_DIR, one pair per process: a
// way to see where a plan or an apply spends its time. GOFLAGS=-tags=pprof
// reaches the builds that make bench and make demo do, too.
func init() { startProfiling = profileIntoDir }

func profileIntoDir() (stop func()) {
	dir := os.Getenv("IMAGESYNC_PPROF_DIR")
	if dir == "" {
		return func() {}
	}
	base := filepath.Join(dir, fmt.Sprintf("provider-%d-%d", time.Now().UnixMilli(), os.Getpid()))
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return func() {}
	}
	tr, err := os.Create(base + ".trace")
	if err != nil {
		_ = cpu.Close()
		return func() {}
	}
	_ = pprof.StartCPUProfile(cpu)
	_ = trace.Start(tr)
	return func() {
		pprof.StopCPUProfile()
		trace.Stop()
		_ = cpu.Close()
		_ = tr.Close()
	}
}

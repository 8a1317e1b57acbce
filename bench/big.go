package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

type bigResult struct {
	layer    int64
	secs     float64
	peakKB   int64 // max VmHWM / VmRSS of the provider processes
	samples  int
	ecrBytes int64
	err      error
}

// bigRun pushes one repository with a single big own layer and copies it
// cold with the provider, sampling the provider's RSS.
func (b *bench) bigRun(ctx context.Context) (*bigResult, error) {
	const repo = "big-000"
	res := &bigResult{layer: b.o.bigLayerSize}
	logf("big: pushing %s with one %s layer", repo, mb(b.o.bigLayerSize))
	img, err := b.env.PushECRImage(ctx, repo, "t1", localenv.ImageSpec{OwnLayerSize: b.o.bigLayerSize, Seed: 777})
	if err != nil {
		return nil, err
	}
	w := &workload{repos: []repoW{{name: repo, tags: []string{"t1"}, dig: map[string]string{"t1": img.Digest}}}}
	p := b.env.GitLab.AddProject("bench/big")
	dir := filepath.Join(b.work, "runs", "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := b.tfDir(ctx, dir, p.Path, []string{repo}); err != nil {
		return nil, err
	}
	sampler := newRSSSampler()
	stop := sampler.start(50 * time.Millisecond)
	s, err := b.measure(ctx, func(ctx context.Context) error { return b.tfApply(ctx, dir) })
	stop()
	if err != nil {
		return nil, err
	}
	if probs := b.verify(ctx, w, p.ImagePrefix); len(probs) > 0 {
		return nil, fmt.Errorf("big copy incomplete: %s", probs[0])
	}
	res.secs, res.ecrBytes = s.secs, s.ecrBytes
	res.peakKB, res.samples = sampler.result()
	logf("big: %.2fs, peak RSS %.1f MB (%d samples)", res.secs, float64(res.peakKB)/1024, res.samples)
	return res, nil
}

// rssSampler polls /proc for terraform-provider processes whose parent is a
// terraform process started by this bench (other terraform runs on the
// machine are not ours) and keeps the highest VmHWM / VmRSS.
type rssSampler struct {
	mu      sync.Mutex
	peakKB  int64
	samples int
	self    int
}

func newRSSSampler() *rssSampler { return &rssSampler{self: os.Getpid()} }

func (s *rssSampler) start(every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *rssSampler) sample() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "terraform-provi") {
			continue
		}
		if !s.descendant(pid) {
			continue
		}
		kb := statusKB(pid)
		s.mu.Lock()
		s.samples++
		s.peakKB = max(s.peakKB, kb)
		s.mu.Unlock()
	}
}

// descendant reports whether pid descends from this process.
func (s *rssSampler) descendant(pid int) bool {
	for range 16 {
		pp := ppid(pid)
		if pp <= 1 {
			return false
		}
		if pp == s.self {
			return true
		}
		pid = pp
	}
	return false
}

func ppid(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// statusKB is max(VmHWM, VmRSS) of pid in kB.
func statusKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	var best int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, key := range []string{"VmHWM:", "VmRSS:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				fields := strings.Fields(v)
				if len(fields) > 0 {
					n, _ := strconv.ParseInt(fields[0], 10, 64)
					best = max(best, n)
				}
			}
		}
	}
	return best
}

func (s *rssSampler) result() (int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakKB, s.samples
}

type tenxResult struct {
	baseTags, tenTags int
	baseSecs, tenSecs float64
	err               error
}

// tenxRun pushes the rest of a ten times bigger workload and copies all of
// it cold with the provider; W's number is the provider's cold median.
func (b *bench) tenxRun(ctx context.Context) (*tenxResult, error) {
	var prov *toolResult
	for _, r := range b.results {
		if r.tool == "provider" {
			prov = r
		}
	}
	if prov == nil || len(prov.cold) == 0 {
		return nil, fmt.Errorf("no provider cold run on W to compare with")
	}
	n := len(b.w.repos)
	logf("10x: pushing repositories %d..%d", n, 10*n-1)
	t0 := time.Now()
	extra, err := b.generate(ctx, n, 10*n)
	if err != nil {
		return nil, err
	}
	logf("10x: pushed in %s", time.Since(t0).Round(time.Second))
	all := &workload{repos: append(append([]repoW{}, b.w.repos...), extra.repos...)}
	p := b.env.GitLab.AddProject("bench/tenx")
	dir := filepath.Join(b.work, "runs", "tenx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := b.tfDir(ctx, dir, p.Path, all.names()); err != nil {
		return nil, err
	}
	s, err := b.measure(ctx, func(ctx context.Context) error { return b.tfApply(ctx, dir) })
	if err != nil {
		return nil, err
	}
	if probs := b.verify(ctx, all, p.ImagePrefix); len(probs) > 0 {
		return nil, fmt.Errorf("10x copy incomplete: %d problems, first: %s", len(probs), probs[0])
	}
	res := &tenxResult{
		baseTags: b.w.tagCount(), tenTags: all.tagCount(),
		baseSecs: median(secsOf(prov.cold)), tenSecs: s.secs,
	}
	logf("10x: %.2fs for %d tags", res.tenSecs, res.tenTags)
	return res, nil
}

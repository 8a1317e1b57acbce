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
	if err := b.tfDir(ctx, dir, tfVars{project: p.Path, prefix: "big-"}); err != nil {
		return nil, err
	}
	sampler := newRSSSampler()
	stop := sampler.start(50 * time.Millisecond)
	plan, apply, _ := b.tfSteps(dir)
	s, _, err := b.measureSteps(ctx, []step{plan, apply})
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

// rssSampler polls /proc for the terraform and terraform-provider
// processes that descend from this bench (other terraform runs on the
// machine are not ours) and keeps each kind's highest VmHWM / VmRSS and
// the CPU time of every process it saw.
type rssSampler struct {
	mu      sync.Mutex
	peakKB  map[string]int64         // kind -> kB
	ticks   map[string]map[int]int64 // kind -> pid -> utime+stime, last seen
	samples int
	self    int
}

// Process kinds the sampler tells apart.
const (
	kindTerraform = "terraform"
	kindProvider  = "provider"
)

func newRSSSampler() *rssSampler {
	return &rssSampler{self: os.Getpid(), peakKB: map[string]int64{}, ticks: map[string]map[int]int64{}}
}

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

func processKind(comm string) string {
	switch comm = strings.TrimSpace(comm); {
	case comm == "terraform":
		return kindTerraform
	case strings.HasPrefix(comm, "terraform-provi"):
		return kindProvider
	}
	return ""
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
		if err != nil {
			continue
		}
		kind := processKind(string(comm))
		if kind == "" || !s.descendant(pid) {
			continue
		}
		kb, ticks := statusKB(pid), cpuTicks(pid)
		s.mu.Lock()
		s.samples++
		s.peakKB[kind] = max(s.peakKB[kind], kb)
		if s.ticks[kind] == nil {
			s.ticks[kind] = map[int]int64{}
		}
		s.ticks[kind][pid] = max(s.ticks[kind][pid], ticks)
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

// cpuTicks is utime+stime of pid in clock ticks (/proc/PID/stat).
func cpuTicks(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatTicks(string(raw))
}

// parseStatTicks reads fields 14 and 15 (utime, stime) of a /proc/PID/stat
// line; the command name in field 2 may hold spaces, so fields count from
// its closing parenthesis.
func parseStatTicks(stat string) int64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// usage is what the sampler saw of one kind of process.
type usage struct {
	peakKB  int64
	cpuSecs float64
	procs   int
}

func (s *rssSampler) usage(kind string) usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := usage{peakKB: s.peakKB[kind], procs: len(s.ticks[kind])}
	for _, t := range s.ticks[kind] {
		u.cpuSecs += float64(t) / clockTicks
	}
	return u
}

func (s *rssSampler) result() (int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakKB[kindProvider], s.samples
}

type tenxResult struct {
	baseTags, tenTags int
	baseSecs          float64
	cold, noop, check sample
	unique            int64 // bytes of the 10x workload
	err               error
}

// tenxRun pushes the rest of a ten times bigger workload, copies all of it
// cold with the provider, then runs the no-op plan and regsync check on the
// finished mirror; W's number is the provider's cold median.
func (b *bench) tenxRun(ctx context.Context) (*tenxResult, error) {
	prov := b.result("provider")
	if prov == nil {
		return nil, fmt.Errorf("no provider cold run on W to compare with")
	}
	n := len(b.w.repos)
	logf("10x: pushing repositories %d..%d", n, 10*n-1)
	t0 := time.Now()
	var extra *workload
	var err error
	b.atLoopback(func() { extra, err = b.generate(ctx, n, 10*n) }) // pushed as W was
	if err != nil {
		return nil, err
	}
	logf("10x: pushed in %s", time.Since(t0).Round(time.Second))
	all := &workload{repos: append(append([]repoW{}, b.w.repos...), extra.repos...)}
	st, err := b.stage(ctx, "tenx", all, false)
	if err != nil {
		return nil, err
	}
	res := &tenxResult{baseTags: b.w.tagCount(), tenTags: all.tagCount(), baseSecs: median(secsOf(prov.cold)),
		cold: st.cold, noop: st.noop, check: st.check, unique: b.w.unique + extra.unique - extra.baseSize}
	logf("10x: %.2fs for %d tags", res.cold.secs, res.tenTags)
	return res, nil
}

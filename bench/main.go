// Command bench compares the imagesync provider with skopeo sync, regsync and
// crane on the same ECR -> GitLab migration, on the local environment of
// internal/localenv (moto, two docker-registry servers behind counting
// proxies, a fake GitLab). `make bench` runs it; `go run ./bench -small` is a
// quick smoke run.
//
// For every tool and every run it copies the workload into a fresh GitLab
// project, then runs the tool again on the finished mirror (the rerun), and
// records wall time, bytes read from ECR, bytes written to GitLab and registry
// requests, as counted by the proxies in front of both registries. It also
// measures the wire limit (one sequential streaming copy of the workload's
// unique blobs), the provider's peak RSS on a 1 GiB layer (-big) and how the
// provider scales to ten times the workload (-tenx).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

type options struct {
	repos, tags, runs       int
	big, small, tenx, scale bool
	plainHTTP               bool
	shardsOnly              bool
	shards, shardsAtOnce    int
	seedParallel            int
	out                     string
	tools                   string
	verbose                 bool
	wan                     wan.Profile

	// Layer sizes, set from -small.
	baseLayerSize, ownLayerSize, bigLayerSize int64
}

func main() {
	var o options
	flag.IntVar(&o.repos, "repos", 40, "ECR repositories in the workload W (-scale pushes 100 times as many)")
	flag.IntVar(&o.tags, "tags", 4, "tags per repository (2 distinct digests per repository)")
	flag.IntVar(&o.runs, "runs", 3, "cold runs per tool (the median is reported)")
	flag.BoolVar(&o.scale, "scale", false, "the scale-out run: 100x W in tags with small layers, one state and shards, instead of the peers")
	flag.IntVar(&o.shards, "shards", 8, "with -scale: shards of the 100x workload")
	flag.IntVar(&o.shardsAtOnce, "shards-at-once", 2, "with -scale: shards run at the same time in the parallel round")
	flag.BoolVar(&o.shardsOnly, "shards-only", false, "with -scale: 1x W in one state (the per-tag base), then only the parallel round of 100x W in shards; its own report section")
	flag.IntVar(&o.seedParallel, "seed-parallel", 8, "repositories pushed to the local ECR at once")
	flag.BoolVar(&o.big, "big", true, "also measure the provider's peak RSS copying one 1 GiB layer")
	flag.BoolVar(&o.small, "small", false, "quick smoke run: 4 repositories, small layers, 1 run, 64 MiB big layer")
	flag.BoolVar(&o.tenx, "tenx", false, "also run the provider cold on ten times the workload (expensive)")
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "markdown report file; each mode (W, -scale, -small) replaces only its own section")
	flag.StringVar(&o.tools, "tools", "provider,provider-noref,skopeo,skopeo-8,regsync,regsync-8,crane,crane-8", "comma-separated tools to run")
	flag.BoolVar(&o.verbose, "v", false, "print the tools' output")
	wanFlag := flag.String("wan", "off", "WAN profile in front of every endpoint for the tools' runs: a name (same-region, cross-region, gitlab-com) or ROUNDTRIP,RATE[,HOSTRATE] such as 40ms,200Mbit; its own report section")
	flag.BoolVar(&o.plainHTTP, "http", false, "run the local environment over plain HTTP instead of HTTPS, to measure what TLS costs (its own report section)")
	flag.Parse()
	var err error
	if o.wan, err = wan.Parse(*wanFlag); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	o.baseLayerSize, o.ownLayerSize, o.bigLayerSize = 15<<20, 3<<20, 1<<30
	if o.small {
		// Explicit -repos / -runs still win.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["repos"] {
			o.repos = 4
		}
		if !set["runs"] {
			o.runs = 1
		}
		o.baseLayerSize, o.ownLayerSize, o.bigLayerSize = 1<<20, 256<<10, 64<<20
	}
	if o.scale {
		// 100x W must fit this machine's disk several times over (one copy
		// in ECR, three in GitLab): small own layers, a small shared base.
		o.baseLayerSize, o.ownLayerSize = 1<<20, 100<<10
	}
	if o.repos < 1 || o.tags < 1 || o.runs < 1 || o.shards < 1 || o.shardsAtOnce < 1 || o.seedParallel < 1 {
		fmt.Fprintln(os.Stderr, "bench: -repos, -tags, -runs, -shards, -shards-at-once and -seed-parallel must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) (err error) {
	started := time.Now()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "main.go")); err != nil {
		return fmt.Errorf("run the bench from the repository root: %w", err)
	}
	work, err := os.MkdirTemp("", "imagesync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	logf("tools: installing what is missing, building the provider")
	tl, err := setupTools(ctx, root, work)
	if err != nil {
		return err
	}

	logf("starting the local environment")
	env, err := localenv.Start(ctx, localenv.Options{Seed: false, PlainHTTP: o.plainHTTP, Logf: func(f string, a ...any) {
		if o.verbose {
			logf("  "+f, a...)
		}
	}})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the local environment")
		if cerr := env.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	b := &bench{o: o, env: env, tools: tl, work: work, started: started}
	if o.scale {
		return b.scaleMain(ctx)
	}
	return b.main(ctx)
}

type bench struct {
	o     options
	env   *localenv.Env
	tools *tools
	work  string
	w     *workload

	started time.Time
	seeding time.Duration

	results []*toolResult
	wire    *wireResult
	big     *bigResult
	tenx    *tenxResult
	scale   *scaleResult
	// timeline is the request log of the provider's first cold run.
	timeline *timeline
}

func (b *bench) main(ctx context.Context) error {
	n := b.o.repos
	logf("generating the workload: %d repositories x %d tags", n, b.o.tags)
	t0 := time.Now()
	w, err := b.generate(ctx, 0, n)
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	b.w, b.seeding = w, time.Since(t0)
	logf("workload ready in %s: %d repositories, %d tags, %d distinct images, %s unique",
		b.seeding.Round(time.Second), len(w.repos), w.tagCount(), len(w.images), mb(w.unique))
	b.enterWAN()

	selected := map[string]bool{}
	for _, t := range splitList(b.o.tools) {
		selected[t] = true
	}
	var runners []toolRunner
	for _, r := range b.allRunners() {
		if selected[r.name] {
			runners = append(runners, r)
			b.results = append(b.results, &toolResult{tool: r.name, label: r.label})
		}
	}
	// Runs are interleaved (run 1 of every tool, then run 2...) so a slow
	// phase of the machine does not land on one tool only.
	for run := 1; run <= b.o.runs; run++ {
		for i, r := range runners {
			if err := ctx.Err(); err != nil {
				return err
			}
			b.runTool(ctx, r, run, b.results[i])
		}
	}

	if err := ctx.Err(); err != nil {
		return err
	}
	logf("wire limit: sequential streaming copy of the unique blobs")
	if b.wire, err = b.wireLimit(ctx); err != nil {
		logf("wire limit failed: %v", err)
	}
	if b.o.big && selected["provider"] {
		if b.big, err = b.bigRun(ctx); err != nil {
			logf("big layer run failed: %v", err)
			b.big = &bigResult{err: err}
		}
	}
	if b.o.tenx && selected["provider"] {
		if b.tenx, err = b.tenxRun(ctx); err != nil {
			logf("10x run failed: %v", err)
			b.tenx = &tenxResult{err: err}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.writeReport(b.report())
}

// writeReport prints the report and puts it into its mode's section of the
// report file, keeping the other modes' sections.
func (b *bench) writeReport(report string) error {
	fmt.Print(report)
	if b.o.out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(b.o.out), 0o755); err != nil {
		return err
	}
	old, err := os.ReadFile(b.o.out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.WriteFile(b.o.out, []byte(replaceSection(string(old), b.mode(), report)), 0o600); err != nil {
		return err
	}
	logf("report written to %s (section %s)", b.o.out, b.mode())
	return nil
}

// mode names the report's section: the runs differ in what they measure,
// and over plain HTTP in what they pay for TLS.
func (b *bench) mode() string {
	mode := "peers"
	switch {
	case b.o.scale && b.o.shardsOnly:
		mode = "scale-shards"
	case b.o.scale:
		mode = "scale"
	case b.o.small:
		mode = "small"
	}
	if b.o.plainHTTP {
		mode += "-http"
	}
	if !b.o.scale {
		mode += b.wanSuffix()
	}
	return mode
}

// transport says how the environment was reached, for the report.
func (b *bench) transport() string {
	if b.o.plainHTTP {
		return "plain HTTP (`-http`)"
	}
	return "HTTPS (TLS 1.3, a local CA; HTTP/2 to S3 and GitLab, HTTP/1.1 to ECR)"
}

func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

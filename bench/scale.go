package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// stageResult is the provider on one workload in one state: the cold copy
// (plan -out, apply), the no-op plan and regsync check on the finished
// mirror, with what terraform and the provider used.
type stageResult struct {
	name              string
	repos, tags       int
	seeding           time.Duration // pushing this stage's new repositories
	cold, noop, check sample
	coldSteps         []sample
	coldUse, noopUse  map[string]usage
	stateBytes        int64
	profiles          map[string]*profile // step -> CPU profile (with -perf)
	alone             *aloneResult        // Terraform alone at the same size
}

// sampleEvery is the RSS/CPU sampling interval of long runs.
const sampleEvery = 200 * time.Millisecond

// stage copies w cold with the provider into a fresh project, then runs the
// no-op plan and regsync check (its read-only peer) on that mirror.
func (b *bench) stage(ctx context.Context, name string, w *workload, profiled bool) (*stageResult, error) {
	p := b.env.GitLab.AddProject("bench/" + name)
	dir := filepath.Join(b.work, "runs", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := b.tfDir(ctx, dir, tfVars{project: p.Path, prefix: repoPrefix}); err != nil {
		return nil, err
	}
	res := &stageResult{name: name, repos: len(w.repos), tags: w.tagCount(), profiles: map[string]*profile{}}
	plan, apply, rerun := b.tfSteps(dir)

	logf("%s: cold copy of %d repositories, %d tags, one state", name, res.repos, res.tags)
	var err error
	res.cold, res.coldSteps, res.coldUse, err = b.sampled(ctx, name+" cold", profiled, res.profiles, func(ctx context.Context) (sample, []sample, error) {
		return b.measureSteps(ctx, []step{plan, apply})
	})
	if err != nil {
		return nil, fmt.Errorf("%s cold: %w", name, err)
	}
	if probs := b.verify(ctx, w, p.ImagePrefix); len(probs) > 0 {
		return nil, fmt.Errorf("%s cold copy incomplete: %d problems, first: %s", name, len(probs), probs[0])
	}
	logf("%s: cold %.2fs (plan %.2fs, apply %.2fs)", name, res.cold.secs, res.coldSteps[0].secs, res.coldSteps[1].secs)
	if fi, err := os.Stat(filepath.Join(dir, "terraform.tfstate")); err == nil {
		res.stateBytes = fi.Size()
	}

	res.noop, _, res.noopUse, err = b.sampled(ctx, name+" no-op", profiled, res.profiles, b.measured(rerun.run))
	if err != nil {
		return nil, fmt.Errorf("%s no-op plan: %w", name, err)
	}
	logf("%s: no-op plan %.2fs, %d ECR + %d GitLab registry requests", name, res.noop.secs, res.noop.ecrReqs, res.noop.glReqs)

	cfg := filepath.Join(dir, "regsync.yaml")
	if err := b.writeRegsyncConfig(cfg, p.Path, w.repos, 0); err != nil {
		return nil, err
	}
	if res.check, err = b.measure(ctx, b.regsyncCmd(dir, cfg, "check")); err != nil {
		return nil, fmt.Errorf("%s regsync check: %w", name, err)
	}
	logf("%s: regsync check %.2fs", name, res.check.secs)

	if res.alone, err = b.terraformAlone(ctx, name, w); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	logf("%s: terraform alone (terraform_data) cold %.2fs (plan %.2fs, apply %.2fs), no-op plan %.2fs",
		name, res.alone.cold(), res.alone.plan, res.alone.apply, res.alone.noop)
	return res, nil
}

// measured adapts one command to sampled: measured as a whole, no steps.
func (b *bench) measured(f func(ctx context.Context) error) func(ctx context.Context) (sample, []sample, error) {
	return func(ctx context.Context) (sample, []sample, error) {
		s, err := b.measure(ctx, f)
		return s, nil, err
	}
}

// sampled runs f with the RSS/CPU sampler and, when profiled and perf is
// there, a system-wide CPU profile stored under key.
func (b *bench) sampled(ctx context.Context, key string, profiled bool, profiles map[string]*profile,
	f func(ctx context.Context) (sample, []sample, error)) (sample, []sample, map[string]usage, error) {
	sampler := newRSSSampler()
	stopSampler := sampler.start(sampleEvery)
	var stopPerf func() (*profile, error)
	if profiled && b.tools.perf != "" {
		var err error
		if stopPerf, err = b.startPerf(ctx, key); err != nil {
			logf("perf: %v (no profile for %s)", err, key)
		}
	}
	s, each, err := f(ctx)
	stopSampler()
	if stopPerf != nil {
		prof, perr := stopPerf()
		if perr != nil {
			logf("perf: %v (no profile for %s)", perr, key)
		} else {
			profiles[key] = prof
		}
	}
	use := map[string]usage{kindTerraform: sampler.usage(kindTerraform), kindProvider: sampler.usage(kindProvider)}
	return s, each, use, err
}

// shardRound is the 100x workload in shards, each its own working
// directory and state, atOnce of them at a time.
type shardRound struct {
	shards, atOnce    int
	cold, noop        sample // the whole round: wall time, counters summed
	coldUse, noopUse  map[string]usage
	shardCold, shardN []float64 // one after another: each shard's seconds
}

func (b *bench) shardRound(ctx context.Context, w *workload, atOnce int) (*shardRound, error) {
	name := fmt.Sprintf("shards-%d-at-once", atOnce)
	p := b.env.GitLab.AddProject("bench/" + name)
	res := &shardRound{shards: b.o.shards, atOnce: atOnce}
	var colds, noops []func(context.Context) error
	var times []*[2]float64
	for i := range b.o.shards {
		dir := filepath.Join(b.work, "runs", fmt.Sprintf("%s-%d", name, i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := b.tfDir(ctx, dir, tfVars{project: p.Path, prefix: repoPrefix, shardIndex: i, shardCount: b.o.shards}); err != nil {
			return nil, err
		}
		plan, apply, rerun := b.tfSteps(dir)
		t := &[2]float64{}
		times = append(times, t)
		colds = append(colds, func(ctx context.Context) error {
			t0 := time.Now()
			defer func() { t[0] = time.Since(t0).Seconds() }()
			if err := plan.run(ctx); err != nil {
				return fmt.Errorf("shard %d plan: %w", i, err)
			}
			return apply.run(ctx)
		})
		noops = append(noops, func(ctx context.Context) error {
			t0 := time.Now()
			defer func() { t[1] = time.Since(t0).Seconds() }()
			return rerun.run(ctx)
		})
	}
	logf("%s: cold copy of %d tags in %d shards, %d at a time", name, w.tagCount(), b.o.shards, atOnce)
	var err error
	res.cold, _, res.coldUse, err = b.sampled(ctx, name+" cold", false, nil,
		b.measured(func(ctx context.Context) error { return inPool(ctx, atOnce, colds) }))
	if err != nil {
		return nil, fmt.Errorf("%s cold: %w", name, err)
	}
	if probs := b.verify(ctx, w, p.ImagePrefix); len(probs) > 0 {
		return nil, fmt.Errorf("%s cold copy incomplete: %d problems, first: %s", name, len(probs), probs[0])
	}
	logf("%s: cold %.2fs", name, res.cold.secs)
	res.noop, _, res.noopUse, err = b.sampled(ctx, name+" no-op", false, nil,
		b.measured(func(ctx context.Context) error { return inPool(ctx, atOnce, noops) }))
	if err != nil {
		return nil, fmt.Errorf("%s no-op: %w", name, err)
	}
	logf("%s: no-op %.2fs", name, res.noop.secs)
	for _, t := range times {
		res.shardCold, res.shardN = append(res.shardCold, t[0]), append(res.shardN, t[1])
	}
	return res, nil
}

// scaleResult is the -scale run.
type scaleResult struct {
	stages []*stageResult
	rounds []*shardRound
	w      *workload
	// partial names the last step finished while the run is still going;
	// "" once it is complete.
	partial string
}

// scaleMain pushes W, 10x W and 100x W in stages, measuring the provider
// in one state at each, then the 100x workload in shards.
func (b *bench) scaleMain(ctx context.Context) error {
	res := &scaleResult{w: &workload{}}
	b.scale = res
	for i, n := range []int{b.o.repos, 10 * b.o.repos, 100 * b.o.repos} {
		from := len(res.w.repos)
		logf("scale: pushing repositories %d..%d (%d tags each)", from, n-1, b.o.tags)
		t0 := time.Now()
		extra, err := b.generate(ctx, from, n)
		if err != nil {
			return fmt.Errorf("workload: %w", err)
		}
		res.w.repos = append(res.w.repos, extra.repos...)
		res.w.images = append(res.w.images, extra.images...)
		res.w.baseSize = extra.baseSize
		res.w.computeUnique()
		pushed := time.Since(t0)
		b.seeding += pushed
		logf("scale: pushed %d repositories in %s", n-from, pushed.Round(time.Second))
		if b.o.shardsOnly && i > 0 {
			continue
		}
		st, err := b.stage(ctx, fmt.Sprintf("scale-%dx", n/b.o.repos), res.w, i == 2)
		if err != nil {
			return err
		}
		st.seeding = pushed
		res.stages = append(res.stages, st)
		b.writePartial(fmt.Sprintf("stage %s", st.name))
	}
	b.w = res.w
	rounds := []int{1, b.o.shardsAtOnce}
	if b.o.shardsOnly {
		rounds = rounds[1:]
	}
	for _, atOnce := range rounds {
		round, err := b.shardRound(ctx, res.w, atOnce)
		if err != nil {
			return err
		}
		res.rounds = append(res.rounds, round)
		if atOnce == 1 {
			b.writePartial(round.name())
		}
	}
	res.partial = ""
	return b.writeReport(b.scaleReport())
}

// writePartial writes the report so far, marked as such: a run of an hour
// that is stopped still leaves the stages it finished.
func (b *bench) writePartial(after string) {
	b.scale.partial = after
	if err := b.writeReport(b.scaleReport()); err != nil {
		logf("scale: writing the partial report: %v", err)
	}
}

// findPerf is perf's path, or "" when it cannot profile here.
func findPerf(ctx context.Context) string {
	p, err := exec.LookPath("perf")
	if err != nil {
		return ""
	}
	if err := exec.CommandContext(ctx, p, "stat", "-e", "task-clock", "true").Run(); err != nil {
		return ""
	}
	return p
}

func (b *bench) scaleReport() string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	res := b.scale
	base := res.stages[0]
	flags := "-scale"
	if b.o.shardsOnly {
		flags = "-scale -shards-only"
	}
	p("## Scale-out to 100x W (`make bench BENCH_FLAGS='%s'`), %s\n\n", flags, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.header(p)
	if b.o.shardsOnly {
		p("This run (`-shards-only`) measures 1x W in one state, for the per-tag base, and then only the round of %d shards %d at a time; "+
			"the one-state stages at 10x and 100x W and the round one after another are in the `-scale` section.\n\n", b.o.shards, b.o.shardsAtOnce)
	}
	if res.partial != "" {
		p("**Partial run**: written after %s; the later stages and rounds had not finished.\n\n", res.partial)
	}
	p("Workload: W = %d repositories x %d tags, with small layers so 100x W fits the disk several times (base %d x %s "+
		"shared by all, own layer %s per platform, 2 images per repository, every 4th a 2-platform index); pushed in stages "+
		"of 1x, 10x and 100x W (%d repositories, %d tags, %s unique). Each stage copies the whole workload so far cold with "+
		"the provider into a fresh GitLab project in one state (`terraform plan -out`, then `apply` of the plan; Terraform's "+
		"default `-parallelism=10`), then runs the no-op `terraform plan` and `regsync check` (sequential, as check always is) "+
		"on that mirror. The 100x workload is then copied again in %d shards (`shard_index`/`shard_count`, each its own "+
		"working directory and state), one after another and %d at a time. Per-tag figures compare with 1x W at the same layer sizes.\n\n",
		b.o.repos, b.o.tags, len(baseSeeds), mb(b.o.baseLayerSize), mb(b.o.ownLayerSize), len(res.w.repos), res.w.tagCount(),
		mb(res.w.unique), b.o.shards, b.o.shardsAtOnce)
	p("Pushing the workload to the local ECR (%d repositories at a time; moto is one Python process): ", b.o.seedParallel)
	var parts []string
	for _, st := range res.stages {
		parts = append(parts, fmt.Sprintf("%s %s (%.1f repositories/s)", st.name, st.seeding.Round(time.Second),
			float64(st.repos-prevRepos(res.stages, st))/st.seeding.Seconds()))
	}
	p("%s; %s in all.\n\n", strings.Join(parts, ", "), b.seeding.Round(time.Second))

	coldPerTag := func(s sample, tags int) float64 { return s.secs / float64(tags) }
	p("| one state | repositories | tags | cold s | plan s + apply s | cold ms/tag | ratio to 1x | no-op plan s | no-op ms/tag | ratio to 1x | `regsync check` s | plan / check | state file |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, st := range res.stages {
		p("| %s | %d | %d | %.1f | %.1f + %.1f | %.2f | %.2f | %.2f | %.3f | %.2f | %.2f | %.2f | %s |\n", st.name, st.repos, st.tags,
			st.cold.secs, st.coldSteps[0].secs, st.coldSteps[1].secs, 1000*coldPerTag(st.cold, st.tags),
			coldPerTag(st.cold, st.tags)/coldPerTag(base.cold, base.tags), st.noop.secs, 1000*coldPerTag(st.noop, st.tags),
			coldPerTag(st.noop, st.tags)/coldPerTag(base.noop, base.tags), st.check.secs, st.noop.secs/st.check.secs, mb(st.stateBytes))
	}
	p("\nRequests and ECR API calls (per repository = / repositories, per tag = / tags):\n\n")
	p("| one state | cold plan: ECR API calls | ListImages / repository | cold apply: ECR API calls | cold registry requests / tag | no-op plan: ECR API calls | ListImages / repository | no-op registry requests / tag, ECR + GitLab | GitLab only | `regsync check` requests / tag |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, st := range res.stages {
		r, t := float64(st.repos), float64(st.tags)
		p("| %s | %s | %.2f | %s | %.2f | %s | %.2f | %.2f | %.2f | %.2f |\n", st.name, apiSummary(st.coldSteps[0]),
			float64(st.coldSteps[0].api["ListImages"])/r, apiSummary(st.coldSteps[1]), float64(st.cold.ecrReqs+st.cold.glReqs)/t,
			apiSummary(st.noop), float64(st.noop.api["ListImages"])/r, float64(st.noop.ecrReqs+st.noop.glReqs)/t,
			float64(st.noop.glReqs)/t, float64(st.check.ecrReqs+st.check.glReqs)/t)
	}
	p("\nWhat terraform and the provider used (CPU from /proc, summed over every process of the kind; peak RSS the highest VmHWM of one process):\n\n")
	p("| step | wall s | terraform CPU s | provider CPU s | terraform peak RSS | provider peak RSS | provider processes |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	useRow := func(name string, secs float64, u map[string]usage) {
		t, pr := u[kindTerraform], u[kindProvider]
		p("| %s | %.1f | %.1f | %.1f | %.0f MB | %.0f MB | %d |\n", name, secs, t.cpuSecs, pr.cpuSecs,
			float64(t.peakKB)/1024, float64(pr.peakKB)/1024, pr.procs)
	}
	for _, st := range res.stages {
		useRow(st.name+" cold", st.cold.secs, st.coldUse)
		useRow(st.name+" no-op plan", st.noop.secs, st.noopUse)
	}
	for _, r := range res.rounds {
		useRow(r.name()+" cold", r.cold.secs, r.coldUse)
		useRow(r.name()+" no-op", r.noop.secs, r.noopUse)
	}
	b.aloneReport(p)
	big := res.stages[len(res.stages)-1]
	p("\n100x W in one state and in %d shards (wall time of the round; per-tag = wall / %d tags):\n\n", b.o.shards, res.w.tagCount())
	p("| 100x W | cold wall s | cold ms/tag | ratio to 1x | no-op wall s | no-op ms/tag | ratio to 1x | no-op registry requests / tag | shards' cold s (min-max) |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	if !b.o.shardsOnly {
		b.oneStateRow(p, base, big)
	}
	allTags := res.w.tagCount()
	for _, r := range res.rounds {
		lo, hi := minMax(r.shardCold)
		p("| %s | %.1f | %.2f | %.2f | %.1f | %.3f | %.2f | %.2f | %.1f-%.1f |\n", r.name(), r.cold.secs, 1000*coldPerTag(r.cold, allTags),
			coldPerTag(r.cold, allTags)/coldPerTag(base.cold, base.tags), r.noop.secs, 1000*coldPerTag(r.noop, allTags),
			coldPerTag(r.noop, allTags)/coldPerTag(base.noop, base.tags), float64(r.noop.ecrReqs+r.noop.glReqs)/float64(allTags), lo, hi)
	}
	for _, key := range []string{big.name + " cold", big.name + " no-op"} {
		if prof := big.profiles[key]; prof != nil {
			b.profileReport(p, key, prof)
		}
	}
	p("\n### Targets (issue 9, scale)\n\n")
	for _, t := range b.scaleTargets() {
		p("%s\n", t)
	}
	p("\nWhole run (tools, environment, pushes, every stage and round): %s.\n\n", time.Since(b.started).Round(time.Second))
	return sb.String()
}

// oneStateRow is the 100x workload in one state, beside the shard rounds.
func (b *bench) oneStateRow(p func(string, ...any), base, big *stageResult) {
	perTag := func(s sample) float64 { return s.secs / float64(big.tags) }
	basePerTag := func(s sample) float64 { return s.secs / float64(base.tags) }
	p("| one state | %.1f | %.2f | %.2f | %.1f | %.3f | %.2f | %.2f | |\n", big.cold.secs, 1000*perTag(big.cold),
		perTag(big.cold)/basePerTag(base.cold), big.noop.secs, 1000*perTag(big.noop),
		perTag(big.noop)/basePerTag(base.noop), float64(big.noop.ecrReqs+big.noop.glReqs)/float64(big.tags))
}

func (r *shardRound) name() string {
	if r.atOnce == 1 {
		return fmt.Sprintf("%d shards, one after another", r.shards)
	}
	return fmt.Sprintf("%d shards, %d at a time", r.shards, r.atOnce)
}

func prevRepos(stages []*stageResult, st *stageResult) int {
	prev := 0
	for _, s := range stages {
		if s == st {
			return prev
		}
		prev = s.repos
	}
	return prev
}

func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// apiSummary is a step's ECR API calls, total and by action.
func apiSummary(s sample) string {
	var parts []string
	for _, a := range ecrActions {
		if n := s.api[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a, n))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", s.apiCalls(), strings.Join(parts, ", "))
}

func (b *bench) profileReport(p func(string, ...any), key string, prof *profile) {
	p("\nCPU profile of the %s step (%d non-idle samples at %d Hz over %.0f s on %d cores; `%s`):\n\n",
		key, prof.samples, perfHz, prof.secs, runtime.NumCPU(), prof.command)
	pct := func(n int) float64 { return 100 * float64(n) / float64(max(prof.samples, 1)) }
	var procs []string
	for _, c := range top(prof.byProcess, 8) {
		procs = append(procs, fmt.Sprintf("%s %.0f%%", c.name, pct(c.n)))
	}
	p("- By process: %s.\n", strings.Join(procs, ", "))
	for _, kind := range []string{kindTerraform, kindProvider} {
		var fs, ls []string
		for _, c := range top(prof.funcs[kind], 12) {
			fs = append(fs, fmt.Sprintf("`%s` %.0f%%", c.name, pct(c.n)))
		}
		for _, c := range top(prof.leaves[kind], 6) {
			ls = append(ls, fmt.Sprintf("`%s` %.0f%%", c.name, pct(c.n)))
		}
		if len(fs) > 0 {
			p("- %s, functions on the stack (%% of all samples): %s.\n", kind, strings.Join(fs, ", "))
			p("- %s, package of the running function: %s.\n", kind, strings.Join(ls, ", "))
		}
	}
}

func (b *bench) scaleTargets() []target {
	res := b.scale
	base, big := res.stages[0], res.stages[len(res.stages)-1]
	perTag := func(s float64, tags int) float64 { return s / float64(tags) }
	ratio := func(s float64, tags int, baseS float64) float64 { return perTag(s, tags) / perTag(baseS, base.tags) }
	var out []target
	if !b.o.shardsOnly {
		c := ratio(big.cold.secs, big.tags, base.cold.secs)
		out = append(out, target{"Per-tag cold cost at 100x W, one state, within 1.3x of W's", fmt.Sprintf("%.2fx", c), c <= 1.3})
		n := ratio(big.noop.secs, big.tags, base.noop.secs)
		out = append(out, target{"Per-tag no-op cost at 100x W, one state, within 1.3x of W's", fmt.Sprintf("%.2fx", n), n <= 1.3})
	}
	allTags := res.w.tagCount()
	for _, r := range res.rounds {
		c := ratio(r.cold.secs, allTags, base.cold.secs)
		out = append(out, target{fmt.Sprintf("Per-tag cold cost at 100x W, %s, within 1.3x of W's", r.name()), fmt.Sprintf("%.2fx", c), c <= 1.3})
		n := ratio(r.noop.secs, allTags, base.noop.secs)
		out = append(out, target{fmt.Sprintf("Per-tag no-op cost at 100x W, %s, within 1.3x of W's", r.name()), fmt.Sprintf("%.2fx", n), n <= 1.3})
	}
	for _, st := range res.stages {
		out = append(out, target{fmt.Sprintf("No-op plan at most 0.5x `regsync check`, %s", st.name),
			fmt.Sprintf("%.2fs / %.2fs = %.2fx", st.noop.secs, st.check.secs, st.noop.secs/st.check.secs), st.noop.secs <= 0.5*st.check.secs})
		r := float64(st.repos)
		cl, nl := float64(st.coldSteps[0].api["ListImages"])/r, float64(st.noop.api["ListImages"])/r
		out = append(out, target{fmt.Sprintf("ECR API listings per repository per plan, %s", st.name),
			fmt.Sprintf("cold plan %.2f, no-op plan %.2f ListImages per repository", cl, nl), cl <= 1 && nl <= 1})
		q := float64(st.noop.ecrReqs+st.noop.glReqs) / float64(st.tags)
		out = append(out, target{fmt.Sprintf("No-op registry requests per managed tag with `copy_referrers` on, at most 1.5, %s", st.name),
			fmt.Sprintf("%.2f", q), q <= 1.5})
	}
	return out
}

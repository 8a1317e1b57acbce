package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secsOf(ss []sample) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = s.secs
	}
	return out
}

func medianOf(ss []sample, f func(sample) int64) float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = float64(f(s))
	}
	return median(out)
}

// mb formats bytes in MB (10^6 bytes).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// ecrActions are the ECR API actions of the migration's read-only policy
// that a listing or a copy may call, in the report's order.
var ecrActions = []string{"DescribeRepositories", "ListImages", "DescribeImages", "BatchGetImage", "GetAuthorizationToken"}

// target is one of the targets, with the measured figure.
type target struct {
	what   string
	figure string
	met    bool
}

func (t target) String() string {
	verdict := "met"
	if !t.met {
		verdict = "**missed**"
	}
	return fmt.Sprintf("- %s: %s (%s).", t.what, t.figure, verdict)
}

// peer is the name of the tool a runner belongs to, "" for the provider.
func peer(tool string) string {
	if strings.HasPrefix(tool, "provider") {
		return ""
	}
	name, _, _ := strings.Cut(tool, "-")
	return name
}

func sequential(tool string) bool { return !strings.Contains(tool, "-") }

func (b *bench) result(tool string) *toolResult {
	for _, r := range b.results {
		if r.tool == tool && len(r.cold) > 0 {
			return r
		}
	}
	return nil
}

func (b *bench) report() string {
	var sb strings.Builder
	w := b.w
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	var benchFlags []string
	if b.o.small {
		benchFlags = append(benchFlags, "-small")
	}
	if b.wanOn() {
		benchFlags = append(benchFlags, "-wan "+b.o.wan.String())
	}
	flags := "make bench"
	if len(benchFlags) > 0 {
		flags += " BENCH_FLAGS='" + strings.Join(benchFlags, " ") + "'"
	}
	p("## Peers on W (`%s`), %s\n\n", flags, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.header(p)
	b.wanTable(p)
	p("Workload W: %d repositories x %d tags = %d tags, %d distinct images (2 per repository, every 4th a 2-platform index), "+
		"base %d x %s shared by all, own layer %s per platform; unique bytes %s; pushed to the local ECR in %s. "+
		"%d cold run(s) per tool, interleaved, median reported; each run copies into a fresh GitLab project, then reruns on "+
		"the finished mirror. Bytes and registry requests are counted by the proxies in front of the two registries "+
		"(ECR's includes the layer downloads it redirects to S3; GitLab's /jwt/auth is not a registry request); ECR API "+
		"calls by the proxy in front of moto. The peers read ECR with the registry password, as after `aws ecr "+
		"get-login-password`, and make no ECR API call.\n\n",
		len(w.repos), b.o.tags, w.tagCount(), len(w.images), len(baseSeeds), mb(b.o.baseLayerSize), mb(b.o.ownLayerSize),
		mb(w.unique), b.seeding.Round(time.Second), b.o.runs)

	b.coldTable(p)
	b.noopTable(p)
	b.apiTable(p, "the provider", b.result("provider"), len(w.repos), w.tagCount())
	b.apiTable(p, "the provider with `copy_referrers = false`", b.result("provider-noref"), len(w.repos), w.tagCount())
	b.extras(p)
	b.timelineSection(p)
	p("\n### Targets (issue 9)\n\n")
	for _, t := range append(b.targets(), b.wanTargets()...) {
		p("%s\n", t)
	}
	b.failures(p)
	p("\nWhole run (tools, environment, workload, every tool, extras): %s.\n\n", time.Since(b.started).Round(time.Second))
	return sb.String()
}

func (b *bench) header(p func(string, ...any)) {
	p("Machine: %s. Tools: ", machine())
	var vs []string
	for _, t := range []string{"provider", "terraform", "skopeo", "regsync", "crane"} {
		vs = append(vs, fmt.Sprintf("%s %s", t, b.tools.versions[t]))
	}
	p("%s. Transport: %s.\n\n", strings.Join(vs, "; "), b.transport())
}

func (b *bench) coldTable(p func(string, ...any)) {
	w := b.w
	tags := float64(w.tagCount())
	p("| tool, setting | cold median s | ECR bytes read | ratio to unique | GitLab bytes written | registry requests | rerun median s | rerun requests/tag, ECR + GitLab registries | rerun requests/tag, GitLab |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range b.results {
		if len(r.cold) == 0 {
			p("| %s | FAILED | | | | | | | |\n", r.label)
			continue
		}
		ecr := medianOf(r.cold, func(s sample) int64 { return s.ecrBytes })
		gl := medianOf(r.cold, func(s sample) int64 { return s.glBytes })
		reqs := medianOf(r.cold, func(s sample) int64 { return s.ecrReqs + s.glReqs })
		rerunS, both, glOnly := "FAILED", "", ""
		if len(r.rerun) > 0 {
			rerunS = fmt.Sprintf("%.2f", median(secsOf(r.rerun)))
			both = fmt.Sprintf("%.2f", medianOf(r.rerun, func(s sample) int64 { return s.ecrReqs + s.glReqs })/tags)
			glOnly = fmt.Sprintf("%.2f", medianOf(r.rerun, func(s sample) int64 { return s.glReqs })/tags)
		}
		p("| %s | %.2f | %s | %.2f | %s | %.0f | %s | %s | %s |\n", r.label, median(secsOf(r.cold)),
			mb(int64(ecr)), ecr/float64(w.unique), mb(int64(gl)), reqs, rerunS, both, glOnly)
	}
	p("\n")
	for _, r := range b.results {
		if len(r.cold) == 0 {
			continue
		}
		p("- %s runs: cold %s s; rerun %s s", r.tool, joinSecs(r.cold), joinSecs(r.rerun))
		if len(r.coldSteps) > 0 && len(r.coldSteps[0]) > 1 {
			var parts []string
			for i := range r.coldSteps[0] {
				var ss []sample
				for _, run := range r.coldSteps {
					ss = append(ss, run[i])
				}
				parts = append(parts, fmt.Sprintf("%.2f", median(secsOf(ss))))
			}
			p(" (cold median by step: plan %s s, apply %s s)", parts[0], strings.Join(parts[1:], " + "))
		}
		p(".\n")
	}
	p("\n")
}

func joinSecs(ss []sample) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%.2f", s.secs))
	}
	return strings.Join(out, " / ")
}

// noopTable compares the reruns with nothing to copy: the provider's plan
// with regsync check, its read-only equivalent, and the peers' reruns.
func (b *bench) noopTable(p func(string, ...any)) {
	prov := b.result("provider")
	if prov == nil || len(prov.rerun) == 0 {
		return
	}
	tags := float64(b.w.tagCount())
	plan := median(secsOf(prov.rerun))
	p("No-op rerun (the mirror is complete; nothing to copy):\n\n")
	p("| rerun | median s | provider's plan / this | registry requests/tag, ECR + GitLab | GitLab requests/tag |\n")
	p("| --- | ---: | ---: | ---: | ---: |\n")
	row := func(label string, ss []sample) {
		if len(ss) == 0 {
			return
		}
		s := median(secsOf(ss))
		p("| %s | %.2f | %.2f | %.2f | %.2f |\n", label, s, plan/s,
			medianOf(ss, func(s sample) int64 { return s.ecrReqs + s.glReqs })/tags, medianOf(ss, func(s sample) int64 { return s.glReqs })/tags)
	}
	row("provider: `terraform plan` (refresh + plan)", prov.rerun)
	if r := b.result("provider-noref"); r != nil {
		row("provider, `copy_referrers = false`: `terraform plan`", r.rerun)
	}
	for _, r := range b.results {
		if len(r.check) > 0 {
			row(fmt.Sprintf("`%s` (%s configuration; check runs its steps one after the other)", r.checkCommand, r.tool), r.check)
		}
	}
	for _, r := range b.results {
		if peer(r.tool) != "" {
			row(r.label+", rerun", r.rerun)
		}
	}
	p("\n")
}

// apiTable is the ECR API calls of each provider step, median over runs.
func (b *bench) apiTable(p func(string, ...any), who string, r *toolResult, repos, tags int) {
	if r == nil || len(r.coldSteps) == 0 {
		return
	}
	p("ECR API calls of %s (median over runs; per repository = / %d, per tag = / %d), with the registry requests of the same step:\n\n", who, repos, tags)
	p("| step | %s | other | total | per repository | per tag | ECR registry requests | GitLab registry requests |\n", strings.Join(ecrActions, " | "))
	p("|---%s| ---: | ---: | ---: | ---: | ---: | ---: |\n", strings.Repeat("| ---: ", len(ecrActions)))
	row := func(name string, ss []sample) {
		p("| %s |", name)
		var total, known float64
		for _, a := range ecrActions {
			n := medianOf(ss, func(s sample) int64 { return s.api[a] })
			known += n
			p(" %.0f |", n)
		}
		total = medianOf(ss, sample.apiCalls)
		p(" %.0f | %.0f | %.2f | %.2f | %.0f | %.0f |\n", total-known, total, total/float64(repos), total/float64(tags),
			medianOf(ss, func(s sample) int64 { return s.ecrReqs }), medianOf(ss, func(s sample) int64 { return s.glReqs }))
	}
	names := []string{"cold: `terraform plan -out`", "cold: `terraform apply` of the plan"}
	for i := range r.coldSteps[0] {
		var ss []sample
		for _, run := range r.coldSteps {
			ss = append(ss, run[i])
		}
		row(names[min(i, len(names)-1)], ss)
	}
	row("rerun: `terraform plan`", r.rerun)
	p("\n")
}

func (b *bench) extras(p func(string, ...any)) {
	w := b.w
	if b.wire != nil {
		p("- Wire limit: %s/s (sequential regclient BlobCopy of the %d unique blobs, %s, ECR -> GitLab, in %.2fs).\n",
			mb(int64(b.wire.rate())), b.wire.blobs, mb(b.wire.bytes), b.wire.secs)
		for _, r := range b.results {
			if len(r.cold) == 0 {
				continue
			}
			tput := float64(w.unique) / median(secsOf(r.cold))
			p("- %s throughput: %s/s of unique bytes = %.2f of the wire limit.\n", r.tool, mb(int64(tput)), tput/b.wire.rate())
		}
	} else {
		p("- Wire limit: not measured.\n")
	}
	switch {
	case b.big == nil:
	case b.big.err != nil:
		p("- Peak RSS (provider, one %s layer): FAILED: %v\n", mb(b.o.bigLayerSize), b.big.err)
	default:
		p("- Peak RSS of the provider copying one %s layer: %.1f MB (max VmHWM/VmRSS over %d samples; copy %.2fs, %s/s).\n",
			mb(b.big.layer), float64(b.big.peakKB)/1024, b.big.samples, b.big.secs, mb(int64(float64(b.big.layer)/b.big.secs)))
	}
	switch {
	case b.tenx == nil:
		p("- 10x: not run (`BENCH_FLAGS=-tenx`).\n")
	case b.tenx.err != nil:
		p("- 10x: FAILED: %v\n", b.tenx.err)
	default:
		t := b.tenx
		a := t.baseSecs / float64(t.baseTags)
		c := t.cold.secs / float64(t.tenTags)
		p("- 10x W (`BENCH_FLAGS=-tenx`): provider cold %.3f s/tag on W (%d tags, median) and %.3f s/tag on 10x W (%d tags, %.2fs); ratio %.2f. "+
			"No-op `terraform plan` %.2fs, `regsync check` %.2fs: %.2fx.\n",
			a, t.baseTags, c, t.tenTags, t.cold.secs, c/a, t.noop.secs, t.check.secs, t.noop.secs/t.check.secs)
		if floor := b.floorOf(t.unique); floor > 0 {
			p("  Under the WAN profile: %s unique, the wire's floor %.2f s, the cold copy %.1fx it.\n", mb(t.unique), floor, t.cold.secs/floor)
		}
	}
}

func (b *bench) failures(p func(string, ...any)) {
	var errs []string
	for _, r := range b.results {
		for _, e := range r.errs {
			errs = append(errs, r.tool+" "+e)
		}
	}
	if len(errs) > 0 {
		p("\nFailures:\n\n")
		for _, e := range errs {
			p("- %s\n", oneLine(e))
		}
	}
}

// targets evaluates issue 9's targets that W measures.
func (b *bench) targets() []target {
	var out []target
	prov := b.result("provider")
	if prov == nil {
		return nil
	}
	cold := median(secsOf(prov.cold))
	best, bestSeq := map[string]float64{}, math.Inf(1)
	bestName, bestSeqName := map[string]string{}, ""
	for _, r := range b.results {
		name := peer(r.tool)
		if name == "" || len(r.cold) == 0 {
			continue
		}
		s := median(secsOf(r.cold))
		if v, ok := best[name]; !ok || s < v {
			best[name], bestName[name] = s, r.tool
		}
		if sequential(r.tool) && s < bestSeq {
			bestSeq, bestSeqName = s, r.tool
		}
	}
	fastest, fastestName := math.Inf(1), ""
	for name, s := range best {
		if s < fastest {
			fastest, fastestName = s, bestName[name]
		}
	}
	if fastestName != "" {
		out = append(out, target{"Cold W at most 0.7x the fastest peer at its best",
			fmt.Sprintf("%.2fs / %.2fs (%s) = %.2fx", cold, fastest, fastestName, cold/fastest), cold <= 0.7*fastest})
	}
	if bestSeqName != "" {
		out = append(out, target{"Cold W at most 0.5x the fastest sequential peer",
			fmt.Sprintf("%.2fs / %.2fs (%s) = %.2fx", cold, bestSeq, bestSeqName, cold/bestSeq), cold <= 0.5*bestSeq})
	}
	ecr := medianOf(prov.cold, func(s sample) int64 { return s.ecrBytes }) / float64(b.w.unique)
	out = append(out, target{"ECR bytes read at most 1.05x unique", fmt.Sprintf("%.3fx", ecr), ecr <= 1.05})
	tags, repos := float64(b.w.tagCount()), float64(len(b.w.repos))
	if len(prov.rerun) > 0 {
		plan := median(secsOf(prov.rerun))
		if r := b.result("regsync"); r != nil && len(r.check) > 0 {
			check := median(secsOf(r.check))
			out = append(out, target{"No-op rerun on W at most 0.5x `regsync check`",
				fmt.Sprintf("%.2fs / %.2fs = %.2fx", plan, check, plan/check), plan <= 0.5*check})
		}
		both := medianOf(prov.rerun, func(s sample) int64 { return s.ecrReqs + s.glReqs }) / tags
		out = append(out, target{"Rerun registry requests per managed tag, `copy_referrers` on (both registries), at most 1.5",
			fmt.Sprintf("%.2f", both), both <= 1.5})
		lists := medianOf(prov.rerun, func(s sample) int64 { return s.api["ListImages"] }) / repos
		out = append(out, target{"ECR API listings per repository in the no-op plan, at most 1",
			fmt.Sprintf("%.2f ListImages per repository", lists), lists <= 1})
	}
	if r := b.result("provider-noref"); r != nil && len(r.rerun) > 0 {
		both := medianOf(r.rerun, func(s sample) int64 { return s.ecrReqs + s.glReqs }) / tags
		out = append(out, target{"Rerun registry requests per managed tag, `copy_referrers = false` (both registries), at most 1.2",
			fmt.Sprintf("%.2f", both), both <= 1.2})
	}
	if len(prov.coldSteps) > 0 {
		var plans []sample
		for _, run := range prov.coldSteps {
			plans = append(plans, run[0])
		}
		lists := medianOf(plans, func(s sample) int64 { return s.api["ListImages"] }) / repos
		out = append(out, target{"ECR API listings per repository in the cold plan, at most 1",
			fmt.Sprintf("%.2f ListImages per repository", lists), lists <= 1})
	}
	return out
}

// replaceSection puts body into doc between the markers of section name,
// replacing what was there, or appends it.
func replaceSection(doc, name, body string) string {
	begin, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	section := begin + "\n" + strings.TrimRight(body, "\n") + "\n" + end + "\n"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i >= 0 && j > i {
		rest := strings.TrimPrefix(doc[j+len(end):], "\n")
		return doc[:i] + section + rest
	}
	if strings.TrimSpace(doc) == "" {
		return "# imagesync benchmark results\n\nWritten by `make bench` (`bench/`); each mode replaces its own section.\n\n" + section
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + section
}

// oneLine shortens a failure to one line, keeping its end: a command's
// own error comes last in its output.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

package main

import (
	"fmt"
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

func (b *bench) report() string {
	var sb strings.Builder
	w := b.w
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("# imagesync benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("Machine: %s. Tools: ", machine())
	var vs []string
	for _, t := range []string{"provider", "terraform", "skopeo", "regsync", "crane"} {
		vs = append(vs, fmt.Sprintf("%s %s", t, b.tools.versions[t]))
	}
	p("%s.\n\n", strings.Join(vs, "; "))
	p("Workload W: %d repositories x %d tags = %d tags, %d distinct images (2 per repository, every 4th a 2-platform index), "+
		"base %d x %s shared by all, own layer %s per platform; unique bytes %s. %d cold run(s) per tool, median reported; "+
		"each run copies into a fresh GitLab project. Bytes and requests are counted by the proxies in front of the two "+
		"registries (the ECR API, moto, and GitLab's /jwt/auth are not included).\n\n",
		len(w.repos), b.o.tags, w.tagCount(), len(w.images), len(baseSeeds), mb(b.o.baseLayerSize), mb(b.o.ownLayerSize), mb(w.unique), b.o.runs)

	p("| tool | cold median s | ECR bytes read | ratio to unique | GitLab bytes written | requests | rerun s | rerun requests/tag |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	tags := float64(w.tagCount())
	for _, r := range b.results {
		if len(r.cold) == 0 {
			p("| %s | FAILED | | | | | | |\n", r.tool)
			continue
		}
		ecr := medianOf(r.cold, func(s sample) int64 { return s.ecrBytes })
		gl := medianOf(r.cold, func(s sample) int64 { return s.glBytes })
		reqs := medianOf(r.cold, func(s sample) int64 { return s.ecrReqs + s.glReqs })
		rerunS, rerunReq := "FAILED", ""
		if len(r.rerun) > 0 {
			rerunS = fmt.Sprintf("%.2f", median(secsOf(r.rerun)))
			rerunReq = fmt.Sprintf("%.2f", medianOf(r.rerun, func(s sample) int64 { return s.glReqs })/tags)
		}
		p("| %s | %.2f | %s | %.2f | %s | %.0f | %s | %s |\n", r.tool, median(secsOf(r.cold)),
			mb(int64(ecr)), ecr/float64(w.unique), mb(int64(gl)), reqs, rerunS, rerunReq)
	}
	p("\n")
	for _, r := range b.results {
		if len(r.cold) == 0 {
			continue
		}
		var cs, rs []string
		for _, s := range r.cold {
			cs = append(cs, fmt.Sprintf("%.2f", s.secs))
		}
		for _, s := range r.rerun {
			rs = append(rs, fmt.Sprintf("%.2f", s.secs))
		}
		p("- %s runs: cold %s s; rerun %s s.\n", r.tool, strings.Join(cs, " / "), strings.Join(rs, " / "))
	}

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
		p("- Peak RSS of the provider copying one %s layer: %.1f MB (max VmHWM/VmRSS over %d samples at 50 ms; copy %.2fs, %s/s).\n",
			mb(b.big.layer), float64(b.big.peakKB)/1024, b.big.samples, b.big.secs, mb(int64(float64(b.big.layer)/b.big.secs)))
	}
	switch {
	case b.tenx == nil:
		p("- 10x: not run (-tenx).\n")
	case b.tenx.err != nil:
		p("- 10x: FAILED: %v\n", b.tenx.err)
	default:
		a := b.tenx.baseSecs / float64(b.tenx.baseTags)
		c := b.tenx.tenSecs / float64(b.tenx.tenTags)
		p("- 10x: provider cold %.3f s/tag on W (%d tags, median) and %.3f s/tag on 10x W (%d tags, %.2fs); ratio %.2f.\n",
			a, b.tenx.baseTags, c, b.tenx.tenTags, b.tenx.tenSecs, c/a)
	}
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
	return sb.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

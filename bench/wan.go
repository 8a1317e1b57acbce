package main

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

// The WAN run (-wan): the workload is pushed at loopback speed, then every
// endpoint of the local environment goes behind the profile for the tools'
// runs. The wire's floor is what the bytes alone cost there: the unique bytes
// over the provider's max_concurrent_blobs connections at the profile's rate,
// never less than the largest layer over one connection.

// blobConnections is the provider's max_concurrent_blobs default, the
// connections the floor assumes.
const blobConnections = 8

func (b *bench) wanOn() bool { return !b.o.wan.Off() }

// enterWAN puts the profile in front of every endpoint, after the workload
// was pushed at loopback speed.
func (b *bench) enterWAN() {
	if b.wanOn() {
		logf("WAN profile %s in front of every endpoint", b.o.wan)
		b.env.SetWAN(b.o.wan)
	}
}

// atLoopback runs f with the WAN profile lifted, e.g. to push more of the
// workload.
func (b *bench) atLoopback(f func()) {
	if b.wanOn() {
		b.env.SetWAN(wan.Profile{})
		defer b.env.SetWAN(b.o.wan)
	}
	f()
}

// floorSecs is the wire's floor of a cold copy of the workload.
func (b *bench) floorSecs() float64 { return b.floorOf(b.w.unique) }

// floorOf is the wire's floor of a cold copy of unique bytes: over
// max_concurrent_blobs connections at the profile's rate, never less than
// the largest layer over one; 0 without a WAN.
func (b *bench) floorOf(unique int64) float64 {
	rate := float64(b.o.wan.Rate) / 8
	if rate <= 0 {
		return 0
	}
	largest := max(b.o.baseLayerSize, b.o.ownLayerSize)
	return math.Max(float64(unique)/(blobConnections*rate), float64(largest)/rate)
}

// loopbackRerun measures the provider's no-op plan once more with the WAN
// lifted, for the ratio of the same plan on both networks in one run.
func (b *bench) loopbackRerun(ctx context.Context, r toolRunner, rerun step, res *toolResult) {
	if !b.wanOn() || !strings.HasPrefix(r.name, "provider") {
		return
	}
	b.env.SetWAN(wan.Profile{})
	defer b.env.SetWAN(b.o.wan)
	s, err := b.measure(ctx, rerun.run)
	if err != nil {
		logf("%s loopback rerun failed: %v", r.name, err)
		return
	}
	res.rerunLoopback = append(res.rerunLoopback, s)
	logf("%-9s loopback rerun: %6.2fs", r.name, s.secs)
}

// wanTable is the WAN section: each tool's cold copy against the floor, its
// no-op rerun in round trips, and the provider's plan on loopback.
func (b *bench) wanTable(p func(string, ...any)) {
	if !b.wanOn() {
		return
	}
	floor, rtt := b.floorSecs(), b.o.wan.RoundTrip.Seconds()
	p("Network: every endpoint behind the WAN profile `%s` (round trip %s, %s per connection and direction%s; "+
		"the workload was pushed before, at loopback speed). Wire's floor of the cold copy: %.2f s (%s unique over %d "+
		"connections, the largest layer %s over one).\n\n", b.o.wan, b.o.wan.RoundTrip, b.o.wan.Rate, hostCap(b.o.wan),
		floor, mb(b.w.unique), blobConnections, mb(max(b.o.baseLayerSize, b.o.ownLayerSize)))
	p("| tool, setting | cold median s | cold / floor | rerun median s | rerun in round trips | rerun on loopback s | WAN / loopback |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range b.results {
		if len(r.cold) == 0 || len(r.rerun) == 0 {
			continue
		}
		cold, rerun := median(secsOf(r.cold)), median(secsOf(r.rerun))
		loop, ratio := "", ""
		if len(r.rerunLoopback) > 0 {
			l := median(secsOf(r.rerunLoopback))
			loop, ratio = fmt.Sprintf("%.2f", l), fmt.Sprintf("%.2f", rerun/l)
		}
		p("| %s | %.2f | %.1f | %.2f | %.0f | %s | %s |\n", r.label, cold, cold/floor, rerun, rerun/rtt, loop, ratio)
	}
	p("\n")
}

func hostCap(p wan.Profile) string {
	if p.HostRate <= 0 {
		return ", no cap per endpoint"
	}
	return ", " + p.HostRate.String() + " per endpoint"
}

// wanTargets are the targets under the WAN profile.
func (b *bench) wanTargets() []target {
	prov := b.result("provider")
	if !b.wanOn() || prov == nil || len(prov.cold) == 0 {
		return nil
	}
	cold := median(secsOf(prov.cold))
	out := []target{{"Cold W within 3x the wire's floor under the WAN profile",
		fmt.Sprintf("%.2fs / %.2fs = %.1fx", cold, b.floorSecs(), cold/b.floorSecs()), cold <= 3*b.floorSecs()}}
	if fastest, name := b.fastestAtBest(); name != "" {
		out = append(out, target{"Cold W at most 0.25x the fastest peer at its best under the WAN profile",
			fmt.Sprintf("%.2fs / %.2fs (%s) = %.2fx", cold, fastest, name, cold/fastest), cold <= 0.25*fastest})
	}
	if len(prov.rerun) == 0 {
		return out
	}
	plan := median(secsOf(prov.rerun))
	for _, r := range b.results {
		if len(r.check) > 0 {
			check := median(secsOf(r.check))
			out = append(out, target{"No-op plan at most 0.1x `regsync check` under the WAN profile",
				fmt.Sprintf("%.2fs / %.2fs (%s) = %.2fx", plan, check, r.tool, plan/check), plan <= 0.1*check})
			break
		}
	}
	if len(prov.rerunLoopback) > 0 {
		loop := median(secsOf(prov.rerunLoopback))
		out = append(out, target{"No-op plan under the WAN profile at most 1.3x the same plan on loopback",
			fmt.Sprintf("%.2fs / %.2fs = %.2fx", plan, loop, plan/loop), plan <= 1.3*loop})
	}
	return out
}

// fastestAtBest is the fastest cold median of the peers' best settings.
func (b *bench) fastestAtBest() (float64, string) {
	fastest, name := math.Inf(1), ""
	for _, r := range b.results {
		if peer(r.tool) == "" || len(r.cold) == 0 || sequential(r.tool) {
			continue
		}
		if s := median(secsOf(r.cold)); s < fastest {
			fastest, name = s, r.tool
		}
	}
	return fastest, name
}

// wanSuffix marks a WAN run's report section and title.
func (b *bench) wanSuffix() string {
	if !b.wanOn() {
		return ""
	}
	return "-wan"
}

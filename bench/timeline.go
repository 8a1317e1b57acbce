package main

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// timeline is where the provider's first cold run spent its time, read from
// the proxies' request log: how long each repository was busy, how many
// upload bodies flowed at once, and the requests of a median repository in
// the order they went out.
type timeline struct {
	repos               int
	spanMedian, spanMax float64
	bodiesAvg           float64 // upload bodies in flight, averaged over the time any flowed
	bodiesMax           int
	cpuBusy             float64 // share of the machine's CPU busy during the run
	kinds               map[string]int
	medianName          string
	median              []localenv.LoggedRequest
}

// repoInPath finds the repository of a registry path, by its last level (the
// ECR name and the GitLab path end alike).
var repoInPath = regexp.MustCompile(`^(?:/v2|/gitlab/v1/repositories)/(?:.+/)?([^/]+)/(?:manifests|blobs|tags|referrers)(?:/|$)`)

func newTimeline(entries []localenv.LoggedRequest) *timeline {
	t := &timeline{kinds: map[string]int{}}
	byRepo := map[string][]localenv.LoggedRequest{}
	for _, e := range entries {
		t.kinds[requestKind(e)]++
		if m := repoInPath.FindStringSubmatch(e.Path); m != nil {
			byRepo[m[1]] = append(byRepo[m[1]], e)
		}
	}
	type span struct {
		name string
		secs float64
	}
	var spans []span
	for name, rs := range byRepo {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
		end := slices.MaxFunc(rs, func(a, b localenv.LoggedRequest) int { return int(a.End - b.End) }).End
		spans = append(spans, span{name, (end - rs[0].Start).Seconds()})
	}
	if len(spans) == 0 {
		return t
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].secs < spans[j].secs })
	mid := spans[len(spans)/2]
	t.repos, t.spanMedian, t.spanMax = len(spans), mid.secs, spans[len(spans)-1].secs
	t.medianName, t.median = mid.name, byRepo[mid.name]
	t.bodiesAvg, t.bodiesMax = uploadsInFlight(entries)
	return t
}

func isUploadBody(e localenv.LoggedRequest) bool {
	return e.Endpoint == "GitLab registry" && (e.Method == "PUT" || e.Method == "PATCH") && strings.Contains(e.Path, "/blobs/uploads/")
}

// uploadsInFlight averages the upload bodies in flight over the time any was.
func uploadsInFlight(entries []localenv.LoggedRequest) (avg float64, peak int) {
	type edge struct {
		at time.Duration
		d  int
	}
	var edges []edge
	for _, e := range entries {
		if isUploadBody(e) {
			edges = append(edges, edge{e.Start, 1}, edge{e.End, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i].at < edges[j].at })
	var busy, weighted time.Duration
	n := 0
	for i, e := range edges {
		if i > 0 && n > 0 {
			gap := e.at - edges[i-1].at
			busy += gap
			weighted += gap * time.Duration(n)
		}
		n += e.d
		peak = max(peak, n)
	}
	if busy == 0 {
		return 0, peak
	}
	return float64(weighted) / float64(busy), peak
}

// requestKind names what a request was for.
func requestKind(e localenv.LoggedRequest) string {
	p := e.Path
	switch e.Endpoint {
	case "ECR API", "GitLab API":
		if strings.Contains(p, "/jwt/auth") {
			return "GitLab registry token (/jwt/auth)"
		}
		return e.Endpoint + " call"
	case "GitLab registry":
		switch {
		case strings.HasPrefix(p, "/gitlab/v1/"):
			return "GitLab tag listing (/gitlab/v1/)"
		case isUploadBody(e):
			return "GitLab blob upload body (PUT)"
		case strings.Contains(p, "/blobs/uploads/"):
			return "GitLab upload start or mount (POST)"
		}
	}
	what := "other"
	switch {
	case strings.Contains(p, "/manifests/"):
		what = "manifest"
	case strings.Contains(p, "/blobs/"):
		what = "blob"
	}
	return fmt.Sprintf("%s %s %s", e.Endpoint, what, e.Method)
}

// timelineSection renders the timeline; nothing when there is none.
func (b *bench) timelineSection(p func(string, ...any)) {
	t := b.timeline
	if t == nil || t.repos == 0 {
		return
	}
	p("\n### Where the provider's cold copy waits (request log of its first run)\n\n")
	p("Each repository was busy (first to last request naming it) %.2f s at the median and %.2f s at most; "+
		"Terraform's `-parallelism` of 10 runs 10 at once, so %d repositories take about %d such turns. "+
		"Upload bodies in flight while any flowed: %.1f on average, %d at most (`max_concurrent_blobs` = %d). "+
		"The machine's CPU (%d cores, every process: terraform, the provider, the registries, the proxies and the WAN's "+
		"delay lines) was %.0f%% busy.\n\n",
		t.spanMedian, t.spanMax, t.repos, (t.repos+9)/10, t.bodiesAvg, t.bodiesMax, parallelism, runtime.NumCPU(), 100*t.cpuBusy)
	p("| request | count |\n| --- | ---: |\n")
	kinds := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return t.kinds[kinds[i]] > t.kinds[kinds[j]] })
	for _, k := range kinds {
		p("| %s | %d |\n", k, t.kinds[k])
	}
	p("\nThe median repository, `%s`, request by request (times from its first request, as the registries saw them; "+
		"each request also spends the profile's round trip on the wire):\n\n| starts s | ends s | request |\n| ---: | ---: | --- |\n", t.medianName)
	t0 := t.median[0].Start
	for _, e := range t.median {
		p("| %.3f | %.3f | %s |\n", (e.Start - t0).Seconds(), (e.End - t0).Seconds(), requestKind(e))
	}
}

// machineCPU is the machine's busy and total CPU time so far, in clock
// ticks over every core (/proc/stat); busy leaves out idle and iowait.
func machineCPU() (busy, total int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	for i, f := range fields[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// busyShare is the share of the machine's CPU time that was busy since the
// sample taken with machineCPU.
func busyShare(busy0, total0 int64) float64 {
	busy, total := machineCPU()
	if total <= total0 {
		return 0
	}
	return float64(busy-busy0) / float64(total-total0)
}

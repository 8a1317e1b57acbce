package main

import (
	"fmt"
	"strings"
)

// The bytes the apply reads from ECR, so a reviewer sees the egress (and,
// with the team's own per-GB price, its cost) before approving.

// egress is what the plan's copies read from ECR at most.
type egress struct {
	Repos   []repoChange // those that copy something
	Total   int64
	Unknown int // repositories whose size the plan does not know
}

func egressOf(changes []repoChange) egress {
	var e egress
	for _, r := range changes {
		if !copies(r.Tags) && !r.TagsLater {
			continue
		}
		e.Repos = append(e.Repos, r)
		if r.CopyBytes == nil {
			e.Unknown++
			continue
		}
		e.Total += *r.CopyBytes
	}
	return e
}

// writeEgress renders the bytes per repository and in total; pricePerGB,
// when above 0, turns the total into a cost (GB = 10^9 bytes).
func writeEgress(b *strings.Builder, changes []repoChange, pricePerGB float64) {
	e := egressOf(changes)
	if len(e.Repos) == 0 {
		return
	}
	fmt.Fprintf(b, "\n#### Read from ECR\n\nThe apply reads at most **%s** from ECR", humanBytes(e.Total))
	if e.Unknown > 0 {
		fmt.Fprintf(b, " plus what %s whose size the plan could not read", plural(e.Unknown, "repository holds", "repositories hold"))
	}
	b.WriteString(" (manifests, configs and layers of the digests it copies, a layer shared by several images counted " +
		"once per repository; less where GitLab holds a layer already or mounts it from another repository).")
	if pricePerGB > 0 {
		cost := fmt.Sprintf("%.2f", float64(e.Total)/1e9*pricePerGB)
		if cost == "0.00" {
			cost = "less than 0.01"
		}
		fmt.Fprintf(b, " At %g per GB of ECR data transfer, that is at most **%s**.", pricePerGB, cost)
	}
	b.WriteString("\n\n| repository | bytes at most |\n| --- | ---: |\n")
	for _, r := range e.Repos {
		size := "unknown"
		if r.CopyBytes != nil {
			size = fmt.Sprintf("%d (%s)", *r.CopyBytes, humanBytes(*r.CopyBytes))
		}
		fmt.Fprintf(b, "| `%s` | %s |\n", r.Repository, size)
	}
	fmt.Fprintf(b, "| total | %d (%s) |\n", e.Total, humanBytes(e.Total))
}

// humanBytes prints n in decimal units, as data transfer is billed.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

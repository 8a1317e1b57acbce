package main

import (
	"fmt"
	"strings"
	"time"
)

// summary is what one plan changes, ready to print.
type summary struct {
	Title string // e.g. "shard 2 of 8 (state imagesync-2-of-8)"
	// PricePerGB is the team's price of ECR data transfer per GB, 0 if unset.
	PricePerGB float64
	Widget     widget
	Changes    []repoChange
	Imports    []string    // repositories imported with nothing else to do
	Loose      []overwrite // overwrite warnings that match no planned change
	// Evidence is what the plan tells about switching ECR off: pull times
	// after the cut-over, both digests of every tag.
	Evidence evidence
}

// counts are the summary's totals.
type counts struct {
	create, update, remove, imports                int // repositories
	added, changed, unmanaged, deleted, overwrites int // tags
}

func (s summary) counts() counts {
	c := counts{imports: len(s.Imports), overwrites: len(s.Loose)}
	for _, r := range s.Changes {
		switch r.Action {
		case "create", "replace":
			c.create++
		case "delete":
			c.remove++
		default:
			c.update++
		}
		if r.Imported {
			c.imports++
		}
		c.overwrites += len(r.Overwrites)
		for _, t := range r.Tags {
			switch t.Kind {
			case tagAdded:
				c.added++
			case tagChanged:
				c.changed++
			case tagUnmanaged:
				c.unmanaged++
			case tagDeleted:
				c.deleted++
			}
		}
	}
	return c
}

// inSync tells whether the plan leaves GitLab's tags as they are.
func (s summary) inSync() bool { return len(s.Changes) == 0 && len(s.Loose) == 0 }

// headline is the one-line result of a plan.
func (s summary) headline() string {
	if s.inSync() && len(s.Imports) == 0 {
		return "No changes: every managed tag in GitLab has the digest it has in ECR."
	}
	c := s.counts()
	line := fmt.Sprintf("Plan: %s to add, %d to update, %d to remove",
		plural(c.create, "repository", "repositories"), c.update, c.remove)
	if c.imports > 0 {
		line += fmt.Sprintf(", %d to import", c.imports)
	}
	line += fmt.Sprintf("; %s to add, %d to change, %d to stop managing, %d to delete",
		plural(c.added, "tag", "tags"), c.changed, c.unmanaged, c.deleted)
	if c.overwrites > 0 {
		line += fmt.Sprintf("; %s GitLab holds at another digest will be overwritten", plural(c.overwrites, "tag", "tags"))
	}
	return line + "."
}

// maxVerdictTags bounds the tags one drift line names; the Markdown names all.
const maxVerdictTags = 20

// verdict is the drift check's one line: which repositories and tags differ.
func (s summary) verdict() string {
	if s.inSync() {
		v := "No drift: every managed tag in GitLab has the digest it has in ECR."
		if len(s.Imports) > 0 {
			v += fmt.Sprintf(" (%s to import into this state.)", plural(len(s.Imports), "repository is", "repositories are"))
		}
		return v
	}
	var items []string
	tags := 0
	for _, r := range s.Changes {
		if len(r.Tags) == 0 {
			items = append(items, fmt.Sprintf("%s (%s)", r.Repository, r.Action))
		}
		for _, t := range r.Tags {
			tags++
			items = append(items, r.Repository+":"+t.Tag+" ("+driftReason(t)+")")
		}
	}
	for _, w := range s.Loose {
		tags++
		items = append(items, fmt.Sprintf("%s:%s (GitLab %s, ECR %s)", w.Target, w.Tag, short(w.GitLab), short(w.ECR)))
	}
	more := ""
	if len(items) > maxVerdictTags {
		more = fmt.Sprintf(", and %d more (see the summary artifact)", len(items)-maxVerdictTags)
		items = items[:maxVerdictTags]
	}
	return fmt.Sprintf("Drift: %s in %s %s between ECR and GitLab: %s%s.", plural(tags, "tag", "tags"),
		plural(len(s.Changes), "repository", "repositories"), noun(tags, "differs", "differ"), strings.Join(items, ", "), more)
}

func driftReason(t tagChange) string {
	switch t.Kind {
	case tagAdded:
		return "not in GitLab"
	case tagChanged:
		return fmt.Sprintf("GitLab %s, ECR %s", short(t.From), short(t.To))
	default:
		return "no longer in ECR"
	}
}

// markdown renders the summary for the job artifact and the merge request note.
func (s summary) markdown() string {
	var b strings.Builder
	title := "imagesync plan"
	if s.Title != "" {
		title += ": " + s.Title
	}
	fmt.Fprintf(&b, "### %s\n\n%s\n", title, s.headline())
	if len(s.Imports) > 0 {
		fmt.Fprintf(&b, "\nImported into this state, every tag as in ECR: `%s`.\n", strings.Join(s.Imports, "`, `"))
	}
	if !s.inSync() {
		b.WriteString("\n| repository | tag | change | GitLab now | after apply |\n| --- | --- | --- | --- | --- |\n")
		for _, r := range s.Changes {
			writeRows(&b, r)
		}
		writeOverwrites(&b, s)
		writeEgress(&b, s.Changes, s.PricePerGB)
		b.WriteString("\nDigests are shortened to 12 hex digits; the job log has them in full.\n")
	}
	writeStillPulled(&b, s.Evidence)
	fmt.Fprintf(&b, "\nMerge request widget: %d to add, %d to change, %d to destroy.\n", s.Widget.Create, s.Widget.Update, s.Widget.Delete)
	return b.String()
}

func writeRows(b *strings.Builder, r repoChange) {
	repo := "`" + r.Repository + "`"
	if r.Imported {
		repo += " (imported)"
	}
	switch {
	case r.TagsLater:
		fmt.Fprintf(b, "| %s | | %s, tags known after apply | | |\n", repo, r.Action)
	case len(r.Tags) == 0:
		fmt.Fprintf(b, "| %s | | %s | | |\n", repo, r.Action)
	}
	for _, t := range r.Tags {
		kind, now := t.Kind, t.From
		for _, w := range r.Overwrites {
			if w.Tag == t.Tag {
				kind, now = t.Kind+", overwrites GitLab's", w.GitLab
			}
		}
		fmt.Fprintf(b, "| %s | `%s` | %s | %s | %s |\n", repo, t.Tag, kind, code(short(now)), code(short(t.To)))
	}
}

func writeOverwrites(b *strings.Builder, s summary) {
	var all []overwrite
	for _, r := range s.Changes {
		all = append(all, r.Overwrites...)
	}
	all = append(all, s.Loose...)
	if len(all) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**GitLab holds %s at another digest; this apply overwrites %s:**\n\n",
		plural(len(all), "tag", "tags"), noun(len(all), "it", "them"))
	for _, w := range all {
		fmt.Fprintf(b, "- `%s:%s` holds `%s`, replaced by `%s` from ECR\n", w.Target, w.Tag, w.GitLab, w.ECR)
	}
}

// short is a digest cut to 12 hex digits, as container tools print them.
func short(digest string) string {
	if algo, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return digest
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func plural(n int, one, many string) string { return fmt.Sprintf("%d %s", n, noun(n, one, many)) }

func noun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// writeStillPulled lists the migrated repositories ECR recorded a pull of
// after the cut-over: something still reads them from ECR.
func writeStillPulled(b *strings.Builder, ev evidence) {
	pulled := ev.stillPulled()
	if len(pulled) == 0 {
		return
	}
	fmt.Fprintf(b, "\n#### Still pulled from ECR\n\nECR recorded these pulls after the cut-over (%s); ECR records pull times "+
		"with a delay of up to a day. Move their clients to GitLab before deleting the ECR repositories.\n\n"+
		"| repository | tag | last pull |\n| --- | --- | --- |\n", ev.CutoverAt.UTC().Format(time.RFC3339))
	for _, p := range pulled {
		tag := "(an image no listed tag names)"
		if p.Tag != "" {
			tag = "`" + p.Tag + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", p.Repository, tag, p.LastPull)
	}
}

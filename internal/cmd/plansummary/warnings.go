package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// overwriteSummary is the summary of the resource's warning that GitLab holds
// a managed tag at another digest than the one the apply copies from ECR.
const overwriteSummary = "GitLab Tag Will Be Overwritten"

// overwriteDetail matches the first sentence of that warning's detail:
// "GitLab holds <target_reference>:<tag> at <digest>; this apply replaces it
// with <digest> from ECR." A target reference may hold a port's colon, a tag
// never holds one, so the tag is what follows the last colon.
var overwriteDetail = regexp.MustCompile(`^GitLab holds (\S+):([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) at (sha256:[0-9a-f]{64}); ` +
	`this apply replaces it with (sha256:[0-9a-f]{64}) from ECR\.`)

// overwrite is one parsed overwrite warning.
type overwrite struct {
	Address string // resource instance address, from the diagnostic
	Target  string // target_reference
	Tag     string
	GitLab  string // digest GitLab holds now
	ECR     string // digest the apply copies
}

// logLine is the part of a `terraform plan -json` line the summary reads.
type logLine struct {
	Type       string `json:"type"`
	Diagnostic *struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
		Address  string `json:"address"`
	} `json:"diagnostic"`
}

// readOverwrites collects the overwrite warnings of a `terraform plan -json`
// log. Lines that are not JSON (a wrapper's own output) are skipped; a
// warning whose detail does not parse is an error, so a changed wording
// fails loudly rather than vanishing from the summary.
func readOverwrites(r io.Reader) ([]overwrite, error) {
	var out []overwrite
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Type != "diagnostic" || l.Diagnostic == nil {
			continue
		}
		d := l.Diagnostic
		if d.Severity != "warning" || d.Summary != overwriteSummary {
			continue
		}
		m := overwriteDetail.FindStringSubmatch(strings.TrimSpace(d.Detail))
		if m == nil {
			return nil, fmt.Errorf("line %d: a %q warning whose detail does not read \"GitLab holds <reference>:<tag> at <digest>; "+
				"this apply replaces it with <digest> from ECR.\": %q", n, overwriteSummary, d.Detail)
		}
		out = append(out, overwrite{Address: d.Address, Target: m[1], Tag: m[2], GitLab: m[3], ECR: m[4]})
	}
	return out, sc.Err()
}

// writeDiagnostics prints the errors and warnings of a `terraform plan -json`
// log the way Terraform prints them, for a failed plan whose human output
// went into that log.
func writeDiagnostics(r io.Reader, w io.Writer) error {
	var b strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Type != "diagnostic" || l.Diagnostic == nil {
			continue
		}
		d := l.Diagnostic
		severity := "Error"
		if d.Severity == "warning" {
			severity = "Warning"
		}
		fmt.Fprintf(&b, "%s: %s\n", severity, d.Summary)
		if d.Address != "" {
			fmt.Fprintf(&b, "  with %s\n", d.Address)
		}
		if d.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(d.Detail, "\n", "\n  "))
		}
		b.WriteString("\n")
	}
	if err := sc.Err(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// attachOverwrites marks the tags the warnings name, finding each warning's
// repository by address, else by target reference. It returns the warnings
// that match no planned change.
func attachOverwrites(changes []repoChange, warnings []overwrite) []overwrite {
	var loose []overwrite
	for _, w := range warnings {
		i := findRepo(changes, w)
		if i < 0 {
			loose = append(loose, w)
			continue
		}
		changes[i].Overwrites = append(changes[i].Overwrites, w)
	}
	return loose
}

func findRepo(changes []repoChange, w overwrite) int {
	for i, c := range changes {
		if w.Address != "" && c.Address == w.Address {
			return i
		}
	}
	for i, c := range changes {
		if w.Address == "" && c.Target != "" && c.Target == w.Target {
			return i
		}
	}
	return -1
}

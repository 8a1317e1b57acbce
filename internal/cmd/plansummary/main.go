// Command plansummary turns a saved Terraform plan of imagesync resources into
// what a GitLab pipeline shows: the merge request widget's JSON
// ({"create": N, "update": N, "delete": N}), a Markdown summary per tag
// (added, changed from one digest to another, GitLab tags that the apply
// overwrites), a one-line drift verdict, and optionally a merge request note.
//
//	terraform plan -json -out=plan.tfplan > plan.log.jsonl
//	terraform show -json plan.tfplan > plan.show.json
//	plansummary -show plan.show.json -log plan.log.jsonl \
//	    -report plan.json -markdown summary.md [-title T] [-drift] [-note]
//	    [-verification verification.json]
//	plansummary -diagnostics -log plan.log.jsonl
//
// The overwrite warnings exist only in the plan's diagnostics, not in the
// plan file: -log reads them from the `terraform plan -json` log.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

type options struct {
	show, log, report, markdown, title string
	verification                       string
	drift, note, diagnostics           bool
	pricePerGB                         float64
}

func main() {
	var o options
	flag.StringVar(&o.show, "show", "", "`file` with the output of terraform show -json <planfile> (- for stdin); required")
	flag.StringVar(&o.log, "log", "", "`file` with the output of terraform plan -json, for the overwrite warnings")
	flag.StringVar(&o.report, "report", "", "write the merge request widget's JSON to `file`")
	flag.StringVar(&o.markdown, "markdown", "", "write the Markdown summary to `file`")
	flag.StringVar(&o.verification, "verification", "", "write the verification report (JSON: every repository and tag, both digests, referrers, last ECR pull) to `file`")
	flag.Float64Var(&o.pricePerGB, "price-per-gb", envFloat("IMAGESYNC_ECR_PRICE_PER_GB"),
		"the team's price of ECR data transfer per GB (10^9 bytes), to show the apply's cost; default $IMAGESYNC_ECR_PRICE_PER_GB")
	flag.StringVar(&o.title, "title", "", "heading of the summary, e.g. the shard and state name")
	flag.BoolVar(&o.drift, "drift", false, "print the drift verdict instead of the plan's headline")
	flag.BoolVar(&o.diagnostics, "diagnostics", false, "only print the errors and warnings of the -log, for a plan that failed")
	flag.BoolVar(&o.note, "note", false, "post the summary as a note on CI_MERGE_REQUEST_IID with "+noteTokenVar)
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "plansummary:", err)
		os.Exit(1)
	}
}

func run(o options, stdout io.Writer) error {
	if o.diagnostics {
		lf, err := os.Open(o.log)
		if err != nil {
			return err
		}
		defer func() { _ = lf.Close() }()
		return writeDiagnostics(lf, stdout)
	}
	if o.show == "" {
		return fmt.Errorf("-show is required")
	}
	s, err := summarize(o)
	if err != nil {
		return err
	}
	if o.report != "" {
		if err := writeJSON(o.report, s.Widget); err != nil {
			return err
		}
	}
	if o.verification != "" {
		if err := writeVerification(o.verification, verification(s.Evidence)); err != nil {
			return err
		}
	}
	md := s.markdown()
	if o.markdown != "" {
		if err := os.WriteFile(o.markdown, []byte(md), 0o600); err != nil {
			return err
		}
	}
	line := s.headline()
	if o.drift {
		line = s.verdict()
	}
	if _, err := fmt.Fprintln(stdout, line); err != nil {
		return err
	}
	if !o.note {
		return nil
	}
	if s.inSync() && len(s.Imports) == 0 {
		_, err := fmt.Fprintln(stdout, "merge request note skipped: this shard has no changes")
		return err
	}
	return postNote(md, stdout)
}

func summarize(o options) (summary, error) {
	s := summary{Title: o.title, PricePerGB: o.pricePerGB}
	in, err := open(o.show)
	if err != nil {
		return s, err
	}
	defer func() { _ = in.Close() }()
	raw, err := io.ReadAll(in)
	if err != nil {
		return s, err
	}
	p, err := readPlan(bytes.NewReader(raw))
	if err != nil {
		return s, err
	}
	if s.Evidence, err = readEvidence(raw, p); err != nil {
		return s, err
	}
	s.Widget = widgetCounts(p)
	if s.Changes, s.Imports, err = repoChanges(p); err != nil {
		return s, err
	}
	if o.log == "" {
		return s, nil
	}
	lf, err := os.Open(o.log)
	if err != nil {
		return s, err
	}
	defer func() { _ = lf.Close() }()
	warnings, err := readOverwrites(lf)
	if err != nil {
		return s, fmt.Errorf("%s: %w", o.log, err)
	}
	s.Loose = attachOverwrites(s.Changes, warnings)
	return s, nil
}

func postNote(md string, stdout io.Writer) error {
	target := noteTargetFromEnv(os.Getenv)
	if reason := target.skipReason(); reason != "" {
		_, err := fmt.Fprintln(stdout, reason)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A GitLab with its own CA: the runner names its certificate in
	// CI_SERVER_TLS_CA_FILE, trusted beside the system's, as the provider does.
	settings, err := network.NewSettings(network.DefaultIdleTimeout,
		network.CAFile{Path: os.Getenv("CI_SERVER_TLS_CA_FILE"), From: "CI_SERVER_TLS_CA_FILE"})
	if err != nil {
		return err
	}
	if err := target.post(ctx, &http.Client{Transport: settings.NewTransport()}, md); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "posted the summary on merge request !%s\n", target.MRIID)
	return err
}

func open(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(name)
}

func writeJSON(name string, w widget) error {
	return os.WriteFile(name, fmt.Appendf(nil, `{"create": %d, "update": %d, "delete": %d}`+"\n", w.Create, w.Update, w.Delete), 0o600)
}

// envFloat is the number in an environment variable, 0 when unset or not a number.
func envFloat(name string) float64 {
	f, _ := strconv.ParseFloat(os.Getenv(name), 64)
	return f
}

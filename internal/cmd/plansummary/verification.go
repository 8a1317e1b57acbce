package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"
)

// verificationReport is the file a team attaches to the change that deletes
// the ECR repositories: per repository and tag, the digest in ECR and in
// GitLab, the referrers GitLab holds, and the last pull ECR recorded.
type verificationReport struct {
	VerifiedAt string `json:"verified_at"`
	CutoverAt  string `json:"cutover_at,omitempty"`
	// InSync: every managed tag in GitLab has the digest it has in ECR.
	InSync bool `json:"in_sync"`
	// Quiet: no migrated repository was pulled from ECR after the cut-over.
	// Null when it cannot be told (no cut-over time, or no pull times).
	Quiet        *bool                `json:"quiet"`
	Verdict      string               `json:"verdict"`
	Repositories []verifiedRepository `json:"repositories"`
}

type verifiedRepository struct {
	Repository         string              `json:"repository"`
	GitLabImage        string              `json:"gitlab_image"`
	InSync             bool                `json:"in_sync"`
	LastECRPull        string              `json:"last_ecr_pull"`
	PulledAfterCutover bool                `json:"pulled_after_cutover"`
	Tags               []verifiedTag       `json:"tags"`
	Referrers          map[string][]string `json:"referrers"`
}

type verifiedTag struct {
	Tag          string   `json:"tag"`
	ECRDigest    string   `json:"ecr_digest"`
	GitLabDigest string   `json:"gitlab_digest"`
	Referrers    []string `json:"referrers"`
	LastECRPull  string   `json:"last_ecr_pull"`
}

// verification builds the report from the plan's evidence.
func verification(ev evidence) verificationReport {
	r := verificationReport{VerifiedAt: ev.VerifiedAt, InSync: true, Repositories: []verifiedRepository{}}
	if !ev.CutoverAt.IsZero() {
		r.CutoverAt = ev.CutoverAt.UTC().Format(time.RFC3339)
	}
	pullsKnown := false
	for _, m := range ev.Mirrors {
		listed, ok := ev.Listed[m.SourceRepository]
		pullsKnown = pullsKnown || (ok && listed.ImageDetails != nil)
		repo := verifiedRepository{
			Repository: m.SourceRepository, GitLabImage: m.TargetReference, InSync: true,
			LastECRPull: listed.LastPulledAt, PulledAfterCutover: ev.pulledAfter(listed.LastPulledAt),
			Referrers: m.Referrers, Tags: []verifiedTag{},
		}
		planned := ev.Planned[m.Address]
		if planned == nil {
			planned = m.Images // no change planned: ECR as state knows it
		}
		for _, tag := range slices.Sorted(maps.Keys(mergeKeys(planned, m.Images))) {
			t := verifiedTag{Tag: tag, ECRDigest: planned[tag], GitLabDigest: m.Images[tag],
				Referrers: append([]string{}, m.Referrers[m.Images[tag]]...), LastECRPull: listed.ImageDetails[tag].LastPulledAt}
			if ev.Unknown[m.Address] {
				t.ECRDigest = "(not read: ECR did not answer at plan)"
			}
			repo.InSync = repo.InSync && t.ECRDigest == t.GitLabDigest
			repo.Tags = append(repo.Tags, t)
		}
		r.InSync = r.InSync && repo.InSync
		r.Repositories = append(r.Repositories, repo)
	}
	r.Quiet, r.Verdict = quietVerdict(ev, pullsKnown, r.InSync)
	return r
}

// quietVerdict says whether ECR is still read, in a sentence for people.
func quietVerdict(ev evidence, pullsKnown, inSync bool) (*bool, string) {
	sync := "every managed tag in GitLab has the digest it has in ECR"
	if !inSync {
		sync = "some managed tags differ between ECR and GitLab (see in_sync per repository)"
	}
	switch {
	case ev.CutoverAt.IsZero():
		return nil, fmt.Sprintf("Pulls not judged: no cut-over time (variable %s); %s.", cutoverVariable, sync)
	case !pullsKnown:
		return nil, fmt.Sprintf("Pulls not judged: the plan has no ECR pull times (include_details of %s); %s.", dataSourceType, sync)
	}
	pulled := map[string]bool{}
	for _, p := range ev.stillPulled() {
		pulled[p.Repository] = true
	}
	quiet := len(pulled) == 0
	if quiet {
		return &quiet, fmt.Sprintf("Every repository is quiet: ECR recorded no pull of a migrated repository after %s; %s.",
			ev.CutoverAt.UTC().Format(time.RFC3339), sync)
	}
	return &quiet, fmt.Sprintf("Still pulled from ECR: %s pulled after %s; %s.",
		plural(len(pulled), "repository was", "repositories were"), ev.CutoverAt.UTC().Format(time.RFC3339), sync)
}

func mergeKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func writeVerification(name string, r verificationReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o600)
}

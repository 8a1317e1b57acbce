package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// The evidence before ECR is switched off: for every migrated repository and
// tag, the digest in ECR and in GitLab, the referrers GitLab holds, and the
// last pull ECR recorded, judged against the cut-over time.

// dataSourceType is the data source whose image details carry ECR's pull times.
const dataSourceType = "imagesync_ecr_repositories"

// cutoverVariable is the configuration's variable holding the cut-over time
// (RFC 3339): a pull ECR recorded after it means something still reads from ECR.
const cutoverVariable = "cutover_at"

// evidencePlan is the part of `terraform show -json <planfile>` the evidence
// reads besides the resource changes.
type evidencePlan struct {
	Timestamp string `json:"timestamp"`
	Variables map[string]struct {
		Value json.RawMessage `json:"value"`
	} `json:"variables"`
	PriorState struct {
		Values struct {
			RootModule stateModule `json:"root_module"`
		} `json:"values"`
	} `json:"prior_state"`
}

type stateModule struct {
	Resources []struct {
		Address string          `json:"address"`
		Mode    string          `json:"mode"`
		Type    string          `json:"type"`
		Values  json.RawMessage `json:"values"`
	} `json:"resources"`
	ChildModules []stateModule `json:"child_modules"`
}

// listedRepository is a repository of the data source, with its pull times.
type listedRepository struct {
	Name         string                 `json:"name"`
	LastPulledAt string                 `json:"last_pulled_at"`
	ImageDetails map[string]imageDetail `json:"image_details"`
}

type imageDetail struct {
	Digest       string `json:"digest"`
	LastPulledAt string `json:"last_pulled_at"`
}

// mirrorState is a mirrored image as the refreshed state holds it: what GitLab has.
type mirrorState struct {
	Address          string
	SourceRepository string              `json:"source_repository"`
	TargetReference  string              `json:"target_reference"`
	Images           map[string]string   `json:"images"`
	Referrers        map[string][]string `json:"referrers"`
}

// evidence is what the plan tells about the switch-off.
type evidence struct {
	VerifiedAt string
	CutoverAt  time.Time // zero: not set
	Listed     map[string]listedRepository
	Mirrors    []mirrorState
	// Planned is ECR's tag -> digest per resource address, from the plan;
	// Unknown the addresses whose tags the plan knows only at apply.
	Planned map[string]map[string]string
	Unknown map[string]bool
}

func readEvidence(raw []byte, p showPlan) (evidence, error) {
	var ep evidencePlan
	if err := json.Unmarshal(raw, &ep); err != nil {
		return evidence{}, fmt.Errorf("reading terraform show -json output: %w", err)
	}
	ev := evidence{VerifiedAt: ep.Timestamp, Listed: map[string]listedRepository{}, Planned: map[string]map[string]string{},
		Unknown: map[string]bool{}}
	if ev.VerifiedAt == "" {
		ev.VerifiedAt = time.Now().UTC().Format(time.RFC3339)
	}
	if v, ok := ep.Variables[cutoverVariable]; ok {
		var s string
		if json.Unmarshal(v.Value, &s) == nil && s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return ev, fmt.Errorf("variable %s = %q is not an RFC 3339 timestamp: %w", cutoverVariable, s, err)
			}
			ev.CutoverAt = t
		}
	}
	if err := ev.readState(ep.PriorState.Values.RootModule); err != nil {
		return ev, err
	}
	for _, rc := range p.ResourceChanges {
		var after mirroredImage
		if rc.Type == mirroredImageType && rc.Mode == "managed" && len(rc.Change.After) > 0 && json.Unmarshal(rc.Change.After, &after) == nil {
			ev.Planned[rc.Address] = after.Images
			ev.Unknown[rc.Address] = imagesUnknown(rc.Change.AfterUnknown)
		}
	}
	return ev, nil
}

// readState collects the data source's repositories and the mirrors.
func (ev *evidence) readState(m stateModule) error {
	for _, r := range m.Resources {
		switch {
		case r.Mode == "data" && r.Type == dataSourceType:
			var v struct {
				Repositories []listedRepository `json:"repositories"`
			}
			if err := json.Unmarshal(r.Values, &v); err != nil {
				return fmt.Errorf("reading %s: %w", r.Address, err)
			}
			for _, repo := range v.Repositories {
				if _, seen := ev.Listed[repo.Name]; !seen || repo.ImageDetails != nil {
					ev.Listed[repo.Name] = repo
				}
			}
		case r.Mode == "managed" && r.Type == mirroredImageType:
			ms := mirrorState{Address: r.Address}
			if err := json.Unmarshal(r.Values, &ms); err != nil {
				return fmt.Errorf("reading %s: %w", r.Address, err)
			}
			ev.Mirrors = append(ev.Mirrors, ms)
		}
	}
	for _, child := range m.ChildModules {
		if err := ev.readState(child); err != nil {
			return err
		}
	}
	sort.Slice(ev.Mirrors, func(i, j int) bool { return ev.Mirrors[i].SourceRepository < ev.Mirrors[j].SourceRepository })
	return nil
}

// pulledAfter tells whether an RFC 3339 pull time is after the cut-over.
func (ev evidence) pulledAfter(at string) bool {
	if ev.CutoverAt.IsZero() || at == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, at)
	return err == nil && t.After(ev.CutoverAt)
}

// stillPulled is one pull ECR recorded after the cut-over of a migrated repository.
type stillPulled struct {
	Repository, Tag, LastPull string // Tag "" for an image no managed tag names
}

// stillPulled lists the pulls after the cut-over, by repository and tag.
func (ev evidence) stillPulled() []stillPulled {
	var out []stillPulled
	for _, m := range ev.Mirrors {
		listed := ev.Listed[m.SourceRepository]
		if !ev.pulledAfter(listed.LastPulledAt) {
			continue
		}
		n := len(out)
		for _, tag := range slices.Sorted(maps.Keys(listed.ImageDetails)) {
			if at := listed.ImageDetails[tag].LastPulledAt; ev.pulledAfter(at) {
				out = append(out, stillPulled{Repository: m.SourceRepository, Tag: tag, LastPull: at})
			}
		}
		if len(out) == n { // the pull was of an image the listed tags do not name
			out = append(out, stillPulled{Repository: m.SourceRepository, LastPull: listed.LastPulledAt})
		}
	}
	return out
}

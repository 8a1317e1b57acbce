package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
)

// mirroredImageType is the resource whose images map the summary reads per tag.
const mirroredImageType = "imagesync_gitlab_mirrored_image"

// showPlan is the part of `terraform show -json <planfile>` the summary reads.
type showPlan struct {
	FormatVersion   string           `json:"format_version"`
	ResourceChanges []resourceChange `json:"resource_changes"`
}

type resourceChange struct {
	Address string `json:"address"`
	Mode    string `json:"mode"`
	Type    string `json:"type"`
	Change  struct {
		Actions      []string        `json:"actions"`
		Importing    json.RawMessage `json:"importing"`
		Before       json.RawMessage `json:"before"`
		After        json.RawMessage `json:"after"`
		AfterUnknown json.RawMessage `json:"after_unknown"`
	} `json:"change"`
}

// mirroredImage is the part of the resource's values the summary reads.
type mirroredImage struct {
	SourceRepository string            `json:"source_repository"`
	TargetReference  string            `json:"target_reference"`
	Images           map[string]string `json:"images"`
	DeleteOnDestroy  bool              `json:"delete_on_destroy"`
	CopyBytes        *int64            `json:"copy_bytes,string"` // decimal digits in a string
}

// Kinds of tag change.
const (
	tagAdded     = "added"     // GitLab lacks the tag (as far as state knows)
	tagChanged   = "changed"   // GitLab holds the tag at another digest
	tagUnmanaged = "unmanaged" // the tag leaves the configuration; GitLab keeps it
	tagDeleted   = "deleted"   // destroy with delete_on_destroy removes it from GitLab
)

// tagChange is one tag of one repository that the plan changes.
type tagChange struct {
	Tag, Kind string
	From, To  string // digests; "" when absent
}

// repoChange is one resource instance with something to do.
type repoChange struct {
	Address    string
	Repository string // the ECR repository, else the address
	Target     string // target_reference, when known
	Action     string // create, update, delete, replace
	Tags       []tagChange
	Imported   bool // the plan imports it into this state
	TagsLater  bool // images known only at apply
	// CopyBytes is the most the apply reads from ECR for this repository,
	// nil when the plan does not know it.
	CopyBytes  *int64
	Overwrites []overwrite // tags GitLab holds at another digest, from the warnings
}

// widget is the JSON the merge request widget reads from artifacts:reports:terraform.
type widget struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Delete int `json:"delete"`
}

func readPlan(r io.Reader) (showPlan, error) {
	var p showPlan
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return p, fmt.Errorf("reading terraform show -json output: %w", err)
	}
	if p.FormatVersion == "" {
		return p, fmt.Errorf("reading terraform show -json output: no format_version; is this the JSON of a plan file?")
	}
	return p, nil
}

// widgetCounts counts actions the way GitLab's Terraform templates did: a
// replace counts once as create and once as delete; data sources not at all.
func widgetCounts(p showPlan) widget {
	var w widget
	for _, rc := range p.ResourceChanges {
		if rc.Mode == "data" {
			continue
		}
		for _, a := range rc.Change.Actions {
			switch a {
			case "create":
				w.Create++
			case "update":
				w.Update++
			case "delete":
				w.Delete++
			}
		}
	}
	return w
}

// repoChanges lists the managed resources the plan changes, sorted by
// repository, and the names of those it only imports.
func repoChanges(p showPlan) (changes []repoChange, imports []string, err error) {
	for _, rc := range p.ResourceChanges {
		action := actionOf(rc.Change.Actions)
		importing := len(rc.Change.Importing) > 0 && string(rc.Change.Importing) != "null"
		if rc.Mode == "data" || action == "" && !importing {
			continue
		}
		c, err := describe(rc, firstOf(action, "import"))
		if err != nil {
			return nil, nil, err
		}
		if action == "" {
			imports = append(imports, c.Repository)
			continue
		}
		c.Imported = importing
		changes = append(changes, c)
	}
	sort.Strings(imports)
	out := changes
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return out[i].Address < out[j].Address
	})
	return out, imports, nil
}

func actionOf(actions []string) string {
	switch strings.Join(actions, ",") {
	case "create":
		return "create"
	case "update":
		return "update"
	case "delete":
		return "delete"
	case "delete,create", "create,delete":
		return "replace"
	}
	return "" // no-op, read, forget
}

func describe(rc resourceChange, action string) (repoChange, error) {
	c := repoChange{Address: rc.Address, Repository: rc.Address, Action: action}
	if rc.Type != mirroredImageType {
		return c, nil
	}
	var before, after mirroredImage
	for _, v := range []struct {
		raw json.RawMessage
		dst *mirroredImage
	}{{rc.Change.Before, &before}, {rc.Change.After, &after}} {
		if len(v.raw) > 0 && string(v.raw) != "null" {
			if err := json.Unmarshal(v.raw, v.dst); err != nil {
				return c, fmt.Errorf("reading the change of %s: %w", rc.Address, err)
			}
		}
	}
	c.Repository = firstOf(after.SourceRepository, before.SourceRepository, rc.Address)
	c.Target = firstOf(after.TargetReference, before.TargetReference)
	c.TagsLater = imagesUnknown(rc.Change.AfterUnknown)
	c.Tags = tagChanges(action, before, after, c.TagsLater)
	if copies(c.Tags) {
		c.CopyBytes = after.CopyBytes
	}
	return c, nil
}

// tagChanges compares what GitLab holds (before: the refreshed state) with
// what the plan wants (after).
func tagChanges(action string, before, after mirroredImage, afterUnknown bool) []tagChange {
	var out []tagChange
	if action == "delete" {
		kind := tagUnmanaged
		if before.DeleteOnDestroy {
			kind = tagDeleted
		}
		for _, tag := range slices.Sorted(maps.Keys(before.Images)) {
			out = append(out, tagChange{Tag: tag, Kind: kind, From: before.Images[tag]})
		}
		return out
	}
	if action == "replace" {
		before.Images = nil // a new resource: nothing is known to be in GitLab
	}
	for _, tag := range slices.Sorted(maps.Keys(after.Images)) {
		from, held := before.Images[tag]
		switch {
		case !held:
			out = append(out, tagChange{Tag: tag, Kind: tagAdded, To: after.Images[tag]})
		case from != after.Images[tag]:
			out = append(out, tagChange{Tag: tag, Kind: tagChanged, From: from, To: after.Images[tag]})
		}
	}
	if afterUnknown {
		return out
	}
	for _, tag := range slices.Sorted(maps.Keys(before.Images)) {
		if _, kept := after.Images[tag]; !kept {
			out = append(out, tagChange{Tag: tag, Kind: tagUnmanaged, From: before.Images[tag]})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// imagesUnknown tells whether after_unknown marks the whole images map unknown.
func imagesUnknown(raw json.RawMessage) bool {
	var u map[string]json.RawMessage
	if json.Unmarshal(raw, &u) != nil {
		return false
	}
	return string(u["images"]) == "true"
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// copies tells whether a change copies anything from ECR.
func copies(tags []tagChange) bool {
	for _, t := range tags {
		if t.Kind == tagAdded || t.Kind == tagChanged {
			return true
		}
	}
	return false
}

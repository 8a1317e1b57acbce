package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// terraformAloneTF is the bench's configuration with the provider taken
// out: Terraform's built-in terraform_data, for_each over the same list of
// repositories, each instance holding the same tag -> digest map. No
// provider process, no registry; its time is what Terraform itself costs
// at that number of instances.
const terraformAloneTF = `variable "repositories" {
  type = list(object({ name = string, images = map(string) }))
}

resource "terraform_data" "mirror" {
  for_each = { for r in var.repositories : r.name => r }

  input = each.value.images
}
`

// aloneResult is Terraform alone on one stage's workload.
type aloneResult struct {
	plan, apply, noop float64 // seconds: cold plan -out, apply of it, no-op plan
	coldUse, noopUse  map[string]usage
}

func (a *aloneResult) cold() float64 { return a.plan + a.apply }

// terraformAlone runs the cold plan, its apply and the no-op plan of
// terraformAloneTF over w's repositories, with the same steps, flags and
// sampling as the provider's.
func (b *bench) terraformAlone(ctx context.Context, name string, w *workload) (*aloneResult, error) {
	dir := filepath.Join(b.work, "runs", name+"-terraform-alone")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeAloneDir(dir, w); err != nil {
		return nil, err
	}
	if err := b.tfInit(ctx, dir); err != nil {
		return nil, err
	}
	plan, apply, rerun := b.tfSteps(dir)
	res := &aloneResult{}
	_, steps, use, err := b.sampled(ctx, name+" terraform alone cold", false, nil, func(ctx context.Context) (sample, []sample, error) {
		return b.measureSteps(ctx, []step{plan, apply})
	})
	if err != nil {
		return nil, fmt.Errorf("terraform alone, cold: %w", err)
	}
	res.plan, res.apply, res.coldUse = steps[0].secs, steps[1].secs, use
	noop, _, use, err := b.sampled(ctx, name+" terraform alone no-op", false, nil, b.measured(rerun.run))
	if err != nil {
		return nil, fmt.Errorf("terraform alone, no-op plan: %w", err)
	}
	res.noop, res.noopUse = noop.secs, use
	return res, nil
}

// writeAloneDir writes terraformAloneTF and w's repositories as its variable.
func writeAloneDir(dir string, w *workload) error {
	type repo struct {
		Name   string            `json:"name"`
		Images map[string]string `json:"images"`
	}
	repos := make([]repo, 0, len(w.repos))
	for _, r := range w.repos {
		repos = append(repos, repo{Name: r.name, Images: r.dig})
	}
	vars, err := json.Marshal(map[string]any{"repositories": repos})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vars, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.tf"), []byte(terraformAloneTF), 0o600)
}

// aloneReport compares each stage with Terraform alone at its size: the
// share of the provider's wall time that Terraform costs with no provider.
func (b *bench) aloneReport(p func(string, ...any)) {
	p("\nTerraform alone: the same for_each over the same repositories and tag maps with Terraform's built-in " +
		"`terraform_data` instead of the provider (no provider process, no registry), the same steps and flags " +
		"(`bench/alone.go`). Its time is Terraform's own cost at that number of instances; the share is of the provider's time at the same step:\n\n")
	p("| one state | instances | cold plan s | apply s | cold s | share of the provider's cold | no-op plan s | share of the provider's no-op | terraform peak RSS, cold |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, st := range b.scale.stages {
		a := st.alone
		if a == nil {
			continue
		}
		p("| %s | %d | %.2f | %.2f | %.2f | %.0f%% | %.2f | %.0f%% | %.0f MB |\n", st.name, st.repos, a.plan, a.apply, a.cold(),
			100*a.cold()/st.cold.secs, a.noop, 100*a.noop/st.noop.secs, float64(a.coldUse[kindTerraform].peakKB)/1024)
	}
}

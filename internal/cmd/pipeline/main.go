// Command pipeline is `make pipeline`: the GitLab CI pipeline of
// examples/gitlab-ci, run by gitlab-ci-local against the local environment
// through a migration's life: a merge request, the default branch with its
// manual apply, a tag moved in ECR that the scheduled drift check catches,
// and the apply that repairs it. It stops everything it started.
//
//	go run ./internal/cmd/pipeline [repository root]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/imagesync/terraform-provider-imagesync/internal/pipeline"
)

// shards is how many shards the tour splits the sample repositories into.
const shards = 2

func main() {
	if err := tour(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

func tour(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if len(args) > 0 {
		root = args[0]
	}
	if _, err := os.Stat(filepath.Join(root, "examples", "gitlab-ci", "imagesync.gitlab-ci.yml")); err != nil {
		return fmt.Errorf("run it from the repository root: %w", err)
	}
	work, err := os.MkdirTemp("", "imagesync-pipeline-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	step("starting the local environment: moto (ECR API), docker-registry x2, fake GitLab")
	env, err := localenv.Start(ctx, localenv.Options{Seed: true, Logf: func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the local environment")
		_ = env.Close()
	}()
	step("building the provider and plansummary")
	r, err := pipeline.NewRunner(ctx, env, root, work)
	if err != nil {
		return err
	}
	r.Output = os.Stdout
	// Two more services, so that every shard has repositories to mirror.
	for _, name := range []string{"svc/alpha", "svc/beta"} {
		if _, err := env.PushECRImage(ctx, name, "v1", localenv.ImageSpec{}); err != nil {
			return err
		}
	}
	repo, err := r.NewRepo("migration", "migration/images", func(s string) string {
		return strings.Replace(s, "shard_count: 1", fmt.Sprintf("shard_count: %d", shards), 1)
	})
	if err != nil {
		return err
	}
	return runLoop(ctx, env, repo)
}

// runLoop is the users' loop, each pipeline checked for the outcome it should have.
func runLoop(ctx context.Context, env *localenv.Env, repo *pipeline.Repo) error {
	vars := map[string]string{"GITLAB_TOKEN": env.GitLabToken, "IMAGESYNC_NOTE_TOKEN": env.GitLabToken}
	iid := env.GitLab.OpenMergeRequest(repo.Project.Path)
	step(fmt.Sprintf("merge request !%d: validate, then plan each of %d shards (Developer job token, -lock=false); "+
		"each summary becomes a merge request note", iid, shards))
	if err := expect(ctx, repo, pipeline.Pipeline{Source: "merge_request_event", MRIID: iid, Role: fakegitlab.RoleDeveloper, Variables: vars}, 0); err != nil {
		return err
	}
	for _, n := range env.GitLab.Notes(repo.Project.Path, iid) {
		fmt.Printf("\n--- note by %s on !%d ---\n%s", n.Author, iid, n.Body)
	}
	step("default branch: plan again, then the manual apply jobs apply the saved plans into GitLab-managed state")
	apply := pipeline.Pipeline{Source: "push", Manual: pipeline.ApplyJobs(shards), Variables: vars}
	if err := expect(ctx, repo, apply, 0); err != nil {
		return err
	}
	step("moving tag web:latest in ECR to a new image")
	img, err := env.PushECRImage(ctx, "web", "latest", localenv.ImageSpec{})
	if err != nil {
		return err
	}
	fmt.Printf("    web:latest is now %s\n", img.Digest)
	step("scheduled pipeline: the drift check fails (exit code 2) and names the tag")
	if err := expect(ctx, repo, pipeline.Pipeline{Source: "schedule", Variables: vars}, 1); err != nil {
		return err
	}
	step("default branch: the apply copies the moved tag")
	if err := expect(ctx, repo, apply, 0); err != nil {
		return err
	}
	step("scheduled pipeline: no drift")
	if err := expect(ctx, repo, pipeline.Pipeline{Source: "schedule", Variables: vars}, 0); err != nil {
		return err
	}
	step("pipeline tour finished: planned in a merge request, applied, drift caught and repaired")
	return nil
}

func expect(ctx context.Context, repo *pipeline.Repo, p pipeline.Pipeline, wantExit int) error {
	res, err := repo.Run(ctx, p)
	if err != nil {
		return err
	}
	if (res.ExitCode == 0) != (wantExit == 0) {
		return fmt.Errorf("the %s pipeline exited %d, want %d", p.Source, res.ExitCode, wantExit)
	}
	fmt.Printf("    %s pipeline finished in %.1fs (exit %d)\n", p.Source, res.Duration.Seconds(), res.ExitCode)
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// demo is `make demo`: the users' loop end to end on the local environment.
// It builds the provider, runs terraform init/plan/apply on examples/demo with
// a dev_overrides CLI config, proves the rerun is empty, moves one tag in ECR
// and shows the one-tag plan; then it stops everything it started.
// -terraform tofu (`TF=tofu make demo`) runs it with OpenTofu.
func demo(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	tfPath := fs.String("terraform", "terraform", "the terraform or tofu command (name or path)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cli, err := localenv.NewCLI(ctx, *tfPath)
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		root = fs.Arg(0)
	}
	example := filepath.Join(root, "examples", "demo")
	if _, err := os.Stat(filepath.Join(example, "main.tf")); err != nil {
		return fmt.Errorf("run the demo from the repository root: %w", err)
	}
	work, err := os.MkdirTemp("", "imagesync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("starting the local environment: moto (ECR API), docker-registry x2, fake GitLab")
	env, err := localenv.Start(ctx, localenv.Options{Seed: true, Logf: func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the local environment")
		_ = env.Close()
	}()

	step("building the provider")
	cliConfig, err := localenv.BuildProvider(ctx, root, work)
	if err != nil {
		return err
	}
	tfDir := filepath.Join(work, "demo")
	if err := os.MkdirAll(tfDir, 0o755); err != nil {
		return err
	}
	src, err := os.ReadFile(filepath.Join(example, "main.tf"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tfDir, "main.tf"), src, 0o600); err != nil {
		return err
	}

	environ := append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	for k, v := range env.EnvVars() {
		environ = append(environ, k+"="+v)
	}
	// examples/demo configures nothing in HCL: the CA comes from variables too.
	for k, v := range env.CAEnvVars() {
		environ = append(environ, k+"="+v)
	}
	tf := func(args ...string) (int, error) {
		fmt.Printf("\n$ %s %s\n", cli.Name(), joinArgs(args))
		cmd := exec.CommandContext(ctx, cli.Path, args...)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = tfDir, environ, os.Stdout, os.Stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), nil
		}
		return 0, err
	}
	mustTF := func(want int, args ...string) error {
		code, err := tf(args...)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("%s %s exited %d, want %d", cli.Name(), joinArgs(args), code, want)
		}
		return nil
	}

	step(cli.Name() + " init, then the migration plan: every repository, every tag and digest")
	if err := mustTF(0, "init", "-input=false", "-no-color"); err != nil {
		return err
	}
	if err := mustTF(0, "plan", "-input=false", "-out=migration.tfplan"); err != nil {
		return err
	}
	step(cli.Name() + " apply: copy exactly what the plan says, registry to registry")
	start := time.Now()
	if err := mustTF(0, "apply", "-input=false", "migration.tfplan"); err != nil {
		return err
	}
	fmt.Printf("    apply took %.1fs\n", time.Since(start).Seconds())

	step("rerun: GitLab holds every tag at ECR's digest, so the plan is empty")
	if err := mustTF(0, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		return err
	}

	step("moving tag web:latest in ECR to a new image")
	img, err := env.PushECRImage(ctx, "web", "latest", localenv.ImageSpec{})
	if err != nil {
		return err
	}
	fmt.Printf("    web:latest is now %s\n", img.Digest)
	step("the next plan shows exactly that one tag")
	if err := mustTF(2, "plan", "-input=false", "-detailed-exitcode", "-out=moved.tfplan"); err != nil {
		return err
	}
	if err := mustTF(0, "apply", "-input=false", "moved.tfplan"); err != nil {
		return err
	}
	if err := mustTF(0, "plan", "-input=false", "-detailed-exitcode"); err != nil {
		return err
	}
	if n := env.ECRWriteAttempts(); n > 0 {
		return fmt.Errorf("%d write requests reached the ECR registry with the provider's token", n)
	}
	step("demo finished: migrated, verified, drift detected and repaired")
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

func joinArgs(args []string) string {
	out := ""
	for i, a := range args {
		if i > 0 {
			out += " "
		}
		out += a
	}
	return out
}

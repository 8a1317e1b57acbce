// Command localenv runs the local ECR + GitLab stand-ins (see package
// internal/localenv) for the demo and manual testing.
//
//	go run ./internal/cmd/localenv [-dir .localenv] [-seed=true] [-http] [-wan 40ms,200Mbit]
//	    start everything (HTTPS with a CA made at start; -http: plain HTTP, for
//	    debugging), write <dir>/env, <dir>/provider.tf, <dir>/state.json,
//	    run until SIGINT/SIGTERM; -wan puts a WAN in front of every endpoint
//	go run ./internal/cmd/localenv push -dir .localenv -repo web -tag latest [-oci] [-platforms N] [-size BYTES]
//	    push a new random image to a running environment's ECR repo:tag and
//	    print its digest
//	go run ./internal/cmd/localenv pull -dir .localenv -repo web -tag latest
//	    pull repo:tag from a running environment's ECR as a client would, so
//	    that ECR records the pull (DescribeImages' lastRecordedPullTime)
//	go run ./internal/cmd/localenv demo [-terraform tofu]
//	    the README's demo: start, terraform init/plan/apply on examples/demo,
//	    an empty rerun, one tag moved in ECR and its plan; then stop
//	    (-terraform names the CLI: terraform, tofu or a path)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		if err := demo(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "pull" {
		if err := pull(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "localenv pull:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "push" {
		if err := push(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "localenv push:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localenv:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("localenv", flag.ExitOnError)
	dir := fs.String("dir", ".localenv", "directory for env, provider.tf and state.json")
	seed := fs.Bool("seed", true, "push the sample images to ECR")
	ttl := fs.Duration("token-ttl", 300*time.Second, "GitLab registry token lifetime")
	wanFlag := fs.String("wan", "off", "WAN profile in front of every endpoint: same-region, cross-region, gitlab-com, or ROUNDTRIP,RATE[,HOSTRATE] such as 40ms,200Mbit (the sample images are pushed before, at loopback speed)")
	plain := fs.Bool("http", false, "serve plain HTTP instead of HTTPS (debugging)")
	_ = fs.Parse(args)
	profile, err := wan.Parse(*wanFlag)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := localenv.Start(ctx, localenv.Options{
		Seed:           *seed,
		GitLabTokenTTL: *ttl,
		PlainHTTP:      *plain,
		Logf:           func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer env.Close()
	env.SetWAN(profile)

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	state, err := env.MarshalState()
	if err != nil {
		return err
	}
	// The provider built from this checkout, and a CLI config that runs it,
	// so `terraform plan` works against the environment with no download.
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(absDir, "plugins"))
	_ = os.RemoveAll(filepath.Join(absDir, "mirror"))
	cliConfig, err := localenv.BuildProvider(ctx, ".", absDir)
	if err != nil {
		return err
	}
	exports := env.ShellExports() + fmt.Sprintf("export TF_CLI_CONFIG_FILE='%s'\n", cliConfig)
	for name, content := range map[string][]byte{
		"env":         []byte(exports),
		"provider.tf": []byte(env.ProviderHCL()),
		"state.json":  state,
	} {
		// 0600: the files hold the keys and the token.
		if err := os.WriteFile(filepath.Join(*dir, name), content, 0o600); err != nil {
			return err
		}
	}

	fmt.Printf(`
local environment ready
  ECR API (moto)        %s  region %s  account %s
  ECR registry          %s  (as %s, user AWS)
  ECR layer storage     %s  (S3 stand-in: layer GETs are redirected here)
  GitLab API            %s  token %s
  GitLab registry       %s
  CA certificate        %s
  read-only AWS key     %s
  admin AWS key         %s
  work dir              %s
  network               WAN profile %s
files: %s/env (source it: it also sets TF_CLI_CONFIG_FILE to run this checkout's provider), %s/provider.tf, %s/state.json
`, env.ECRAPIEndpoint, env.Region, env.AccountID, env.ECRRegistryEndpoint, env.ECRRegistryName, env.S3.URL,
		env.GitLabURL, env.GitLabToken, env.GitLabRegistryURL, orNone(env.CAFile), env.AccessKeyID, env.AdminAccessKeyID, env.WorkDir,
		env.WAN(), *dir, *dir, *dir)
	for _, img := range env.Seeded {
		fmt.Printf("  seeded %-12s %-8s %s %s\n", img.Repository, img.Tag, img.Digest, img.MediaType)
	}
	fmt.Println("Ctrl-C stops everything.")
	<-ctx.Done()
	fmt.Println("stopping")
	_ = os.Remove(filepath.Join(*dir, "state.json")) // it describes nothing once stopped
	return env.Close()
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	dir := fs.String("dir", ".localenv", "directory with state.json of a running environment")
	repo := fs.String("repo", "web", "ECR repository")
	tag := fs.String("tag", "latest", "tag to (re)point at the new image")
	oci := fs.Bool("oci", false, "OCI media types instead of Docker v2")
	platforms := fs.Int("platforms", 1, "1 = single image, 2+ = index")
	size := fs.Int64("size", 64<<10, "size of the image's own random layer in bytes")
	_ = fs.Parse(args)

	st, err := readState(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := localenv.Connect(st)
	if err != nil {
		return err
	}
	img, err := env.PushECRImage(ctx, *repo, *tag, localenv.ImageSpec{
		OCI: *oci, Platforms: *platforms, OwnLayerSize: *size,
	})
	if err != nil {
		return err
	}
	fmt.Println(img.Digest)
	return nil
}

// pull reads repo:tag from the running environment's ECR as a client that
// still uses ECR would, so that ECR records the pull.
func pull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	dir := fs.String("dir", ".localenv", "directory with state.json of a running environment")
	repo := fs.String("repo", "web", "ECR repository")
	tag := fs.String("tag", "latest", "tag to pull")
	_ = fs.Parse(args)
	st, err := readState(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := localenv.Connect(st)
	if err != nil {
		return err
	}
	dig, err := env.PullECRImage(ctx, *repo, *tag)
	if err != nil {
		return err
	}
	fmt.Println(dig)
	return nil
}

// readState reads the state.json a running environment wrote into dir.
func readState(dir string) (localenv.State, error) {
	var st localenv.State
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, fmt.Errorf("reading state (is `go run ./internal/cmd/localenv` running?): %w", err)
	}
	return st, json.Unmarshal(b, &st)
}

// orNone is s, or a note that plain HTTP needs no CA.
func orNone(s string) string {
	if s == "" {
		return "none (plain HTTP)"
	}
	return s
}

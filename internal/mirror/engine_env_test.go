package mirror

import (
	"context"
	"os"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// envEngine starts the local environment with opts and an engine that
// trusts its CA. Like the other tests on real registries, it runs with
// TF_ACC set.
func envEngine(t testing.TB, opts localenv.Options) (*localenv.Env, *Engine) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("starts the local registries; set TF_ACC=1")
	}
	env := localenv.New(t, opts)
	t.Setenv("AWS_ACCESS_KEY_ID", env.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", env.SecretAccessKey)
	nets, err := network.NewSettings(0, network.CAFile{Path: env.CAFile, From: "the test"})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ecr.New(t.Context(), ecr.Config{Region: env.Region, Endpoint: env.ECRAPIEndpoint, RegistryEndpoint: env.ECRRegistryEndpoint, Network: nets})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{ECR: client, ECREndpoint: env.ECRRegistryEndpoint, ECRNetwork: nets, GitLabNetwork: nets, GitLabToken: env.GitLabToken})
	e.AddGitLabRegistry(env.GitLabRegistryHost, false)
	return env, e
}

// copyAsApplied reads the target's tags and copies, as the resource's create
// does, and fails the test on any tag that did not land.
func copyAsApplied(t *testing.T, env *localenv.Env, e *Engine, repo, target string, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	tags := make([]string, 0, len(want))
	for tag := range want {
		tags = append(tags, tag)
	}
	current, err := e.ReadTags(ctx, target, tags)
	if err != nil {
		t.Fatal(err)
	}
	res := e.Mirror(ctx, Request{Source: env.ECRRegistryName + "/" + repo, Target: target, Want: want, Current: current})
	for tag, err := range res.Failed {
		t.Errorf("%s: %v", tag, err)
	}
	got, err := e.ReadTags(ctx, target, tags)
	if err != nil {
		t.Fatal(err)
	}
	for tag, dig := range want {
		if got[tag] != dig {
			t.Errorf("%s:%s holds %q, want %s", target, tag, got[tag], dig)
		}
	}
}

// Into a repository GitLab's listing does not know, the copy asks GitLab
// only for each tagged digest, not for its platforms or blobs; blob bytes go over
// HTTP/1.1 connections of their own, and manifests read from ECR once are
// not read again for the next repository.
func TestMirrorIntoNewRepository(t *testing.T) {
	env, e := envEngine(t, localenv.Options{})
	ctx := context.Background()
	index, err := env.PushECRImage(ctx, "newrepo/app", "v1", localenv.ImageSpec{Platforms: 2, OCI: true})
	if err != nil {
		t.Fatal(err)
	}
	single, err := env.PushECRImage(ctx, "newrepo/app", "v2", localenv.ImageSpec{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"v1": index.Digest, "v1-again": index.Digest, "v2": single.Digest}
	project := env.GitLab.AddProject("newrepo/first")
	// The registry's challenge and its API probe, once per host, come first.
	if _, err := e.ReadTags(ctx, project.ImagePrefix+"/warm-up", []string{"v1"}); err != nil {
		t.Fatal(err)
	}

	env.GitLabProxy.ResetStats()
	copyAsApplied(t, env, e, "newrepo/app", project.ImagePrefix+"/app", want)
	st := env.GitLabProxy.Stats()
	// The two listings, before and after, and one manifest GET per digest.
	if st.ByMethod["HEAD"] != 0 || st.ByMethod["GET"] != 4 {
		t.Errorf("GitLab was asked what it holds while copying into a new repository: %v", st.ByMethod)
	}
	if st.ByProto["HTTP/1.1"] == 0 || st.ByProto["HTTP/2.0"] == 0 {
		t.Errorf("want blob uploads over HTTP/1.1 and the rest over HTTP/2: %v", st.ByProto)
	}

	env.ECRProxy.ResetStats()
	copyAsApplied(t, env, e, "newrepo/app", env.GitLab.AddProject("newrepo/second").ImagePrefix+"/app", want)
	if st := env.ECRProxy.Stats(); st.Requests != 0 {
		t.Errorf("the second repository read ECR again (%v); its manifests were known and its blobs mountable", st.ByMethod)
	}
}

package mirror

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// benchEngine starts the local environment, seeded, and an engine on it.
func benchEngine(b *testing.B) (*localenv.Env, *Engine) {
	b.Helper()
	return envEngine(b, localenv.Options{Seed: true})
}

func seededRepos(env *localenv.Env) map[string]map[string]string {
	repos := map[string]map[string]string{}
	for _, img := range env.Seeded {
		if repos[img.Repository] == nil {
			repos[img.Repository] = map[string]string{}
		}
		repos[img.Repository][img.Tag] = img.Digest
	}
	return repos
}

// BenchmarkCopyRepositories is a cold migration of the seeded repositories
// (shared base layers) into a fresh project per iteration, all repositories at
// once as terraform applies them. It reports the bytes read from ECR per copy.
func BenchmarkCopyRepositories(b *testing.B) {
	env, e := benchEngine(b)
	repos := seededRepos(env)
	names := make([]string, 0, len(repos))
	for n := range repos {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx := context.Background()
	var ecrBytes int64
	i := 0
	for b.Loop() {
		// A fresh engine per iteration: the blob index lives for one apply.
		e = New(e.cfg)
		e.AddGitLabRegistry(env.GitLabRegistryHost, false)
		project := env.GitLab.AddProject(fmt.Sprintf("bench/copy-%d", i))
		i++
		env.ECRProxy.ResetStats()
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := e.Mirror(ctx, Request{
					Source: env.ECRRegistryName + "/" + name, Target: project.ImagePrefix + "/" + name,
					Want: repos[name],
				})
				for tag, err := range res.Failed {
					b.Errorf("%s:%s: %v", name, tag, err)
				}
			}()
		}
		wg.Wait()
		ecrBytes += env.ECRProxy.Stats().BytesToClient
	}
	b.ReportMetric(float64(ecrBytes)/float64(b.N), "ecr-bytes/op")
}

// BenchmarkReadTags is the rerun with nothing to copy: one HEAD per managed tag.
// It reports registry requests per tag.
func BenchmarkReadTags(b *testing.B) {
	env, e := benchEngine(b)
	repos := seededRepos(env)
	project := env.GitLab.AddProject("bench/digests")
	ctx := context.Background()
	tags := 0
	for name, want := range repos {
		tags += len(want)
		res := e.Mirror(ctx, Request{Source: env.ECRRegistryName + "/" + name, Target: project.ImagePrefix + "/" + name, Want: want})
		if len(res.Failed) > 0 {
			b.Fatal(res.Failed)
		}
	}
	env.GitLabProxy.ResetStats()
	for b.Loop() {
		for name, want := range repos {
			keys := make([]string, 0, len(want))
			for t := range want {
				keys = append(keys, t)
			}
			got, err := e.ReadTags(ctx, project.ImagePrefix+"/"+name, keys)
			if err != nil || len(got) != len(want) {
				b.Fatalf("%s: %v %v", name, got, err)
			}
		}
	}
	b.ReportMetric(float64(env.GitLabProxy.Stats().Requests)/float64(b.N*tags), "requests/tag")
}

package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/ref"
)

// Fixed seeds: the base layers have the same digests in every repository and
// on every run of the bench.
var baseSeeds = []int64{501, 502, 503}

type repoW struct {
	name string
	tags []string          // t1..tN in order
	dig  map[string]string // tag -> digest
}

type workload struct {
	repos    []repoW
	images   []localenv.Image // one per distinct (repository, digest)
	baseSize int64
	unique   int64 // base once + every image's own layers, configs and manifests
}

func (w *workload) tagCount() int {
	n := 0
	for _, r := range w.repos {
		n += len(r.tags)
	}
	return n
}

// repoPrefix starts every workload repository's name: the provider's
// configuration selects the workload by it, as a user selects a registry's
// repositories.
const repoPrefix = "svc-"

func repoName(i int) string { return fmt.Sprintf("%s%04d", repoPrefix, i) }

func (b *bench) baseLayers() []localenv.Layer {
	ls := make([]localenv.Layer, len(baseSeeds))
	for i, s := range baseSeeds {
		ls[i] = localenv.Layer{Size: b.o.baseLayerSize, Seed: s}
	}
	return ls
}

// generate pushes repositories svc-<from> .. svc-<to-1> to ECR: -tags tags
// each, the first half of the tags on image A and the rest on image B, every
// fourth repository a two-platform index, every other one OCI.
func (b *bench) generate(ctx context.Context, from, to int) (*workload, error) {
	base := b.baseLayers()
	w := &workload{}
	for _, l := range base {
		w.baseSize += l.Size
	}
	pushRepo := func(i int) (repoW, []localenv.Image, error) {
		name := repoName(i)
		r := repoW{name: name, dig: map[string]string{}}
		nimg := min(2, b.o.tags)
		var imgs []localenv.Image
		first := make([]string, nimg) // first tag of each image
		for t := range b.o.tags {
			tag := fmt.Sprintf("t%d", t+1)
			k := t * nimg / b.o.tags
			var img localenv.Image
			var err error
			if first[k] == "" {
				spec := localenv.ImageSpec{
					OCI:          i%2 == 1,
					BaseLayers:   base,
					OwnLayerSize: b.o.ownLayerSize,
					Seed:         1_000_000 + int64(i)*4 + int64(k),
				}
				if i%4 == 3 {
					spec.Platforms = 2
				}
				img, err = b.env.PushECRImage(ctx, name, tag, spec)
				if err == nil {
					first[k] = tag
					imgs = append(imgs, img)
				}
			} else {
				img, err = b.env.TagECRImage(ctx, name, first[k], tag)
			}
			if err != nil {
				return r, nil, err
			}
			r.tags = append(r.tags, tag)
			r.dig[tag] = img.Digest
		}
		return r, imgs, nil
	}

	// The base layers go to ECR once (with the first repository); the others
	// get them by cross-repository mount, so the push of a big workload
	// does not upload the same 45 MB hundreds of times. The localenv pusher
	// then finds them present and skips them.
	start := from
	var baseDescs []descriptor.Descriptor
	if from == 0 {
		r, imgs, err := pushRepo(0)
		if err != nil {
			return nil, err
		}
		w.repos = append(w.repos, r)
		w.images = append(w.images, imgs...)
		start = 1
	}
	baseDescs, err := b.baseDescriptors(ctx)
	if err != nil {
		return nil, err
	}

	type res struct {
		r    repoW
		imgs []localenv.Image
		err  error
	}
	results := make([]res, to-start)
	var wg sync.WaitGroup
	sem := make(chan struct{}, b.o.seedParallel)
	every := max(50, (to-start)/10)
	var done sync.Mutex
	count := 0
	for i := start; i < to; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.mountBase(ctx, repoName(i), baseDescs); err != nil {
				results[i-start].err = err
				return
			}
			r, imgs, err := pushRepo(i)
			results[i-start] = res{r, imgs, err}
			done.Lock()
			count++
			if count%every == 0 {
				logf("  pushed %d/%d repositories", count, to-start)
			}
			done.Unlock()
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		w.repos = append(w.repos, r.r)
		w.images = append(w.images, r.imgs...)
	}
	w.computeUnique()
	return w, nil
}

func (w *workload) computeUnique() {
	w.unique = w.baseSize
	for _, img := range w.images {
		w.unique += img.Bytes - int64(max(img.Platforms, 1))*w.baseSize
	}
}

// baseDescriptors reads the base layers' descriptors from svc-000:t1.
func (b *bench) baseDescriptors(ctx context.Context) ([]descriptor.Descriptor, error) {
	rc := b.env.RegistryClient()
	r, err := b.env.ECRRef(repoName(0), "t1")
	if err != nil {
		return nil, err
	}
	m, err := rc.ManifestGet(ctx, r)
	if err != nil {
		return nil, err
	}
	if idx, ok := m.(manifest.Indexer); ok {
		list, err := idx.GetManifestList()
		if err != nil || len(list) == 0 {
			return nil, fmt.Errorf("index of %s without children", r.CommonName())
		}
		if m, err = rc.ManifestGet(ctx, r.SetDigest(list[0].Digest.String())); err != nil {
			return nil, err
		}
	}
	img, ok := m.(manifest.Imager)
	if !ok {
		return nil, fmt.Errorf("%s is not an image", r.CommonName())
	}
	layers, err := img.GetLayers()
	if err != nil {
		return nil, err
	}
	if len(layers) < len(baseSeeds) {
		return nil, fmt.Errorf("%s has %d layers", r.CommonName(), len(layers))
	}
	return layers[:len(baseSeeds)], nil
}

func (b *bench) mountBase(ctx context.Context, repo string, descs []descriptor.Descriptor) error {
	rc := b.env.RegistryClient()
	src, err := b.env.ECRRef(repoName(0), "t1")
	if err != nil {
		return err
	}
	dst, err := b.env.ECRRef(repo, "t1")
	if err != nil {
		return err
	}
	for _, d := range descs {
		if err := rc.BlobMount(ctx, src, dst, d); err != nil {
			return fmt.Errorf("mount base layer into %s: %w", repo, err)
		}
	}
	return nil
}

type blobAt struct {
	repo string
	desc descriptor.Descriptor
}

// uniqueBlobs walks every distinct image of w in ECR and returns each config
// and layer once, with a repository that holds it.
func (b *bench) uniqueBlobs(ctx context.Context, w *workload) ([]blobAt, error) {
	rc := b.env.RegistryClient()
	seen := map[string]bool{}
	var out []blobAt
	var walk func(r ref.Ref, repo string) error
	walk = func(r ref.Ref, repo string) error {
		m, err := rc.ManifestGet(ctx, r)
		if err != nil {
			return err
		}
		if idx, ok := m.(manifest.Indexer); ok {
			list, err := idx.GetManifestList()
			if err != nil {
				return err
			}
			for _, c := range list {
				if err := walk(r.SetDigest(c.Digest.String()), repo); err != nil {
					return err
				}
			}
			return nil
		}
		img, ok := m.(manifest.Imager)
		if !ok {
			return nil
		}
		cfg, err := img.GetConfig()
		if err != nil {
			return err
		}
		layers, err := img.GetLayers()
		if err != nil {
			return err
		}
		for _, d := range append([]descriptor.Descriptor{cfg}, layers...) {
			if !seen[d.Digest.String()] {
				seen[d.Digest.String()] = true
				out = append(out, blobAt{repo: repo, desc: d})
			}
		}
		return nil
	}
	for _, img := range w.images {
		r, err := b.env.ECRRef(img.Repository, "x")
		if err != nil {
			return nil, err
		}
		if err := walk(r.SetDigest(img.Digest), img.Repository); err != nil {
			return nil, fmt.Errorf("walk %s@%s: %w", img.Repository, img.Digest, err)
		}
	}
	return out, nil
}

type wireResult struct {
	blobs    int
	bytes    int64
	secs     float64
	ecrBytes int64
}

func (w *wireResult) rate() float64 {
	if w == nil || w.secs <= 0 {
		return 0
	}
	return float64(w.bytes) / w.secs
}

// wireLimit copies the unique blobs one after the other, streaming, from ECR
// into a scratch repository of a fresh GitLab project.
func (b *bench) wireLimit(ctx context.Context) (*wireResult, error) {
	blobs, err := b.uniqueBlobs(ctx, b.w)
	if err != nil {
		return nil, err
	}
	p := b.env.GitLab.AddProject("bench/wire")
	tgt, err := ref.New(p.ImagePrefix + "/scratch:latest")
	if err != nil {
		return nil, err
	}
	rc := b.env.RegistryClient()
	res := &wireResult{blobs: len(blobs)}
	b.env.ECRProxy.ResetStats()
	t0 := time.Now()
	for _, bl := range blobs {
		src, err := b.env.ECRRef(bl.repo, "x")
		if err != nil {
			return nil, err
		}
		if err := rc.BlobCopy(ctx, src, tgt, bl.desc); err != nil {
			return nil, fmt.Errorf("blob copy %s: %w", bl.desc.Digest, err)
		}
		res.bytes += bl.desc.Size
	}
	res.secs = time.Since(t0).Seconds()
	res.ecrBytes = b.env.ECRProxy.Stats().BytesToClient
	logf("wire limit: %d blobs, %s in %.2fs = %s/s", res.blobs, mb(res.bytes), res.secs, mb(int64(res.rate())))
	return res, nil
}

// verify checks that GitLab holds every tag of w under prefix (the
// project's image prefix) at ECR's digest; it returns the problems.
func (b *bench) verify(ctx context.Context, w *workload, prefix string) []string {
	rc := b.env.RegistryClient()
	var (
		mu       sync.Mutex
		problems []string
		jobs     []func(context.Context) error
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for _, r := range w.repos {
		jobs = append(jobs, func(ctx context.Context) error {
			// A deadline per repository: a 100x verification once hung for
			// good in the shared client's per-host request queue; it now
			// fails instead.
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			for _, tag := range r.tags {
				rr, err := ref.New(prefix + "/" + r.name + ":" + tag)
				if err != nil {
					problem("%v", err)
					continue
				}
				m, err := rc.ManifestHead(ctx, rr)
				if err != nil {
					problem("%s:%s missing (%v)", r.name, tag, err)
					continue
				}
				if got := m.GetDescriptor().Digest.String(); got != r.dig[tag] {
					problem("%s:%s is %s, want %s", r.name, tag, got, r.dig[tag])
				}
			}
			return nil
		})
	}
	_ = inPool(ctx, 16, jobs)
	sort.Strings(problems)
	return problems
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

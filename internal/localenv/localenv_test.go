package localenv

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/errs"
	"github.com/regclient/regclient/types/manifest"

	"github.com/imagesync/terraform-provider-imagesync/internal/fakegitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"
)

func TestLocalEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto and two docker-registry processes")
	}
	t0 := time.Now()
	env, err := Start(t.Context(), Options{Seed: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = env.Close()
		}
	})
	t.Logf("Start with seed took %s", time.Since(t0).Round(time.Millisecond))
	ctx := t.Context()
	rc := env.RegistryClient()

	t.Run("SeededDigestsMatchMoto", func(t *testing.T) {
		if len(env.Seeded) != 8 {
			t.Fatalf("seeded %d images, want 8", len(env.Seeded))
		}
		ro := env.ECRClient(ctx, false)
		for _, img := range env.Seeded {
			out, err := ro.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(img.Repository)})
			if err != nil {
				t.Fatalf("DescribeImages %s with read-only key: %v", img.Repository, err)
			}
			var motoDigest string
			for _, d := range out.ImageDetails {
				for _, tag := range d.ImageTags {
					if tag == img.Tag {
						motoDigest = aws.ToString(d.ImageDigest)
					}
				}
			}
			r, _ := env.ECRRef(img.Repository, img.Tag)
			m, err := rc.ManifestHead(ctx, r)
			if err != nil {
				t.Fatalf("ManifestHead %s: %v", r.CommonName(), err)
			}
			regDigest := m.GetDescriptor().Digest.String()
			if motoDigest != regDigest || regDigest != img.Digest {
				t.Errorf("%s:%s moto %q registry %q pushed %q", img.Repository, img.Tag, motoDigest, regDigest, img.Digest)
			}
		}
		byTag := map[string]Image{}
		for _, img := range env.Seeded {
			byTag[img.Repository+":"+img.Tag] = img
		}
		if byTag["web:latest"].Digest != byTag["web:v1.1"].Digest || byTag["web:v1.0"].Digest == byTag["web:v1.1"].Digest {
			t.Errorf("web tags: %+v", byTag)
		}
		if w := byTag["team/worker:1.0"]; w.Platforms != 2 || w.MediaType != "application/vnd.docker.distribution.manifest.list.v2+json" {
			t.Errorf("worker 1.0: %+v", w)
		}
		if w := byTag["team/worker:1.0-oci"]; w.MediaType != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("worker 1.0-oci: %+v", w)
		}
		s := byTag["signed/app:v1"]
		if s.ReferrerDigest == "" {
			t.Fatalf("signed/app has no referrer")
		}
		r, _ := env.ECRRef("signed/app", "v1")
		rl, err := rc.ReferrerList(ctx, r)
		if err != nil || len(rl.Descriptors) != 1 || rl.Descriptors[0].Digest.String() != s.ReferrerDigest {
			t.Errorf("referrers of signed/app:v1: %+v %v", rl.Descriptors, err)
		}
	})

	// ECR lists what was pushed by digest (the platforms of an index, a
	// referrer) as untagged images, whoever pushed it.
	t.Run("DigestPushesListedUntagged", func(t *testing.T) {
		untagged := func(repo string) map[string]bool {
			out, err := env.ECRClient(ctx, false).ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo)})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, id := range out.ImageIds {
				if id.ImageTag == nil {
					got[aws.ToString(id.ImageDigest)] = true
				}
			}
			return got
		}
		r, _ := env.ECRRef("team/worker", "1.0")
		m, err := rc.ManifestGet(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := m.RawBody()
		var index struct{ Manifests []struct{ Digest string } }
		_ = json.Unmarshal(raw, &index)
		listed := untagged("team/worker")
		for _, p := range index.Manifests {
			if !listed[p.Digest] {
				t.Errorf("platform %s of team/worker:1.0 is not listed untagged in ECR (listed: %v)", p.Digest, listed)
			}
		}
		for _, img := range env.Seeded {
			if img.Repository == "signed/app" && !untagged("signed/app")[img.ReferrerDigest] {
				t.Errorf("the referrer %s of signed/app is not listed untagged in ECR", img.ReferrerDigest)
			}
		}
	})

	// SetWAN puts every endpoint behind the profile: a request on a new
	// connection takes at least two round trips (TCP's handshake, then the
	// request itself).
	t.Run("WANInFrontOfEveryEndpoint", func(t *testing.T) {
		const rtt = 300 * time.Millisecond
		env.SetWAN(wan.Profile{RoundTrip: rtt})
		defer env.SetWAN(wan.Profile{})
		for name, u := range map[string]string{
			"ECR API": env.ECRAPIEndpoint, "ECR registry": env.ECRRegistryEndpoint, "S3": env.S3.URL,
			"GitLab API": env.GitLabURL, "GitLab registry": env.GitLabRegistryURL,
		} {
			tr := env.HTTPClient().Transport.(*http.Transport).Clone() //nolint:forcetypeassert // HTTPClient builds an *http.Transport; it trusts the environment's CA
			tr.DisableKeepAlives = true
			client := &http.Client{Transport: tr}
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u+"/", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			resp.Body.Close()
			if took := time.Since(t0); took < 2*rtt {
				t.Errorf("%s answered a new connection in %s, want at least two round trips of %s", name, took, rtt)
			}
		}
	})

	t.Run("ReadOnlyKeyIsReadOnly", func(t *testing.T) {
		ro := env.ECRClient(ctx, false)
		if _, err := ro.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
			t.Fatalf("DescribeRepositories: %v", err)
		}
		_, err := ro.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("not-allowed")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || !strings.Contains(ae.ErrorCode(), "AccessDenied") {
			t.Fatalf("CreateRepository with read-only key: want AccessDenied, got %v", err)
		}
		if _, err := env.ECRClient(ctx, true).DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
			t.Fatalf("admin DescribeRepositories: %v", err)
		}
		bad, err := Connect(env.State())
		if err != nil {
			t.Fatal(err)
		}
		bad.AccessKeyID, bad.SecretAccessKey = "AKIAUNKNOWN000000000", "nope"
		_, err = bad.ECRClient(ctx, false).DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
		if !errors.As(err, &ae) || ae.ErrorCode() != "UnrecognizedClientException" {
			t.Fatalf("unknown key: want UnrecognizedClientException, got %v", err)
		}
	})

	t.Run("GitLabJWT", func(t *testing.T) {
		u := env.GitLabURL + "/jwt/auth?service=container_registry&scope=" + url.QueryEscape("repository:migration/images/a:pull,push") +
			"&scope=" + url.QueryEscape("repository:migration/images/b:pull") + "&scope=" + url.QueryEscape("repository:other/x:pull")
		for _, c := range []struct {
			user, pass string
			want       int
		}{{"", "", 401}, {"root", "wrong", 401}, {"root", env.GitLabToken, 200}, {"gitlab-ci-token", env.GitLabToken, 200}} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := env.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Token       string `json:"token"`
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("%s/%s: status %d want %d", c.user, c.pass, resp.StatusCode, c.want)
			}
			if c.want != 200 {
				continue
			}
			if body.Token == "" || body.Token != body.AccessToken || body.ExpiresIn != 300 {
				t.Fatalf("token response %+v", body)
			}
			parts := strings.Split(body.Token, ".")
			claimsRaw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Sub    string              `json:"sub"`
				Aud    string              `json:"aud"`
				Access []fakegitlab.Access `json:"access"`
			}
			if err := json.Unmarshal(claimsRaw, &claims); err != nil {
				t.Fatal(err)
			}
			if claims.Sub != c.user || claims.Aud != "container_registry" || len(claims.Access) != 2 ||
				claims.Access[0].Name != "migration/images/a" || strings.Join(claims.Access[0].Actions, ",") != "pull,push" {
				t.Fatalf("claims %s", claimsRaw)
			}
		}
	})

	t.Run("TokenTTL", func(t *testing.T) {
		env.GitLab.SetTokenTTL(2 * time.Second)
		defer env.GitLab.SetTokenTTL(300 * time.Second)
		tok, err := env.GitLab.MintToken("root", []fakegitlab.Access{{Type: "repository", Name: "migration/images/ttl", Actions: []string{"pull", "push"}}})
		if err != nil {
			t.Fatal(err)
		}
		get := func() int {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.GitLabRegistryURL+"/v2/migration/images/ttl/tags/list", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := env.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// 404 NAME_UNKNOWN means the token was accepted.
		if s := get(); s != http.StatusNotFound {
			t.Fatalf("fresh token: %d", s)
		}
		time.Sleep(3 * time.Second)
		if s := get(); s != http.StatusUnauthorized {
			t.Fatalf("expired token: %d, want 401", s)
		}
	})

	var gl Image
	t.Run("GitLabRegistryPushAndMount", func(t *testing.T) {
		before := env.GitLab.TokenRequests()
		var err error
		gl, err = env.PushGitLabImage(ctx, "migration/images/a", "v1", ImageSpec{BaseLayers: sampleBase, Seed: 99})
		if err != nil {
			t.Fatal(err)
		}
		if env.GitLab.TokenRequests() <= before {
			t.Errorf("no token requests counted")
		}
		ra, _ := env.GitLabRef("migration/images/a", "v1")
		rb, _ := env.GitLabRef("migration/images/b", "v1")
		d := descriptor.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: mustDigest(t, env, sampleBase[0]), Size: sampleBase[0].Size}
		if err := rc.BlobMount(ctx, ra, rb, d); err != nil {
			t.Fatalf("cross-repo mount a -> b: %v", err)
		}
		if br, err := rc.BlobHead(ctx, rb, d); err != nil {
			t.Fatalf("blob not in b after mount: %v", err)
		} else {
			br.Close()
		}
		// Outside any project: no grant, so the push must fail.
		if _, err := env.PushGitLabImage(ctx, "nobody/else", "v1", ImageSpec{}); err == nil {
			t.Fatalf("push outside a known project succeeded")
		}
	})

	t.Run("GitLabAPI", func(t *testing.T) {
		api := func(method, path string, token string) (int, http.Header, []byte) {
			req, _ := http.NewRequestWithContext(ctx, method, env.GitLabURL+"/api/v4"+path, nil)
			if token != "" {
				req.Header.Set("PRIVATE-TOKEN", token)
			}
			resp, err := env.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header, b
		}
		tok := env.GitLabToken
		if s, _, b := api("GET", "/user", ""); s != 401 || !strings.Contains(string(b), "401 Unauthorized") {
			t.Fatalf("no token: %d %s", s, b)
		}
		if s, _, _ := api("GET", "/user", "wrong"); s != 401 {
			t.Fatalf("wrong token: %d", s)
		}
		for _, p := range []string{"/projects/migration%2Fimages", "/projects/1"} {
			s, _, b := api("GET", p, tok)
			var pj struct {
				ID     int    `json:"id"`
				PWN    string `json:"path_with_namespace"`
				Prefix string `json:"container_registry_image_prefix"`
				On     bool   `json:"container_registry_enabled"`
			}
			_ = json.Unmarshal(b, &pj)
			if s != 200 || pj.ID != 1 || pj.PWN != "migration/images" || pj.Prefix != env.GitLabRegistryHost+"/migration/images" || !pj.On {
				t.Fatalf("%s: %d %s", p, s, b)
			}
		}
		if s, _, b := api("GET", "/projects/nope%2Fnope", tok); s != 404 || !strings.Contains(string(b), "404 Project Not Found") {
			t.Fatalf("unknown project: %d %s", s, b)
		}
		type repo struct {
			ID        int    `json:"id"`
			Name      string `json:"name"`
			Path      string `json:"path"`
			ProjectID int    `json:"project_id"`
			Location  string `json:"location"`
			TagsCount int    `json:"tags_count"`
		}
		s, h, b := api("GET", "/projects/1/registry/repositories?tags_count=true", tok)
		var repos []repo
		_ = json.Unmarshal(b, &repos)
		// b only has a mounted blob, no manifest: GitLab would not list it either.
		if s != 200 || len(repos) != 1 || repos[0].Name != "a" || repos[0].Path != "migration/images/a" || repos[0].TagsCount != 1 || h.Get("X-Total") != "1" {
			t.Fatalf("repositories: %d %s %v", s, b, h)
		}
		// A second repository, the project root image, and pagination.
		if _, err := env.PushGitLabImage(ctx, "migration/images", "root", ImageSpec{Seed: 5}); err != nil {
			t.Fatal(err)
		}
		s, h, b = api("GET", "/projects/migration%2Fimages/registry/repositories?per_page=1&page=1", tok)
		repos = nil
		_ = json.Unmarshal(b, &repos)
		if s != 200 || len(repos) != 1 || repos[0].Name != "" || h.Get("X-Next-Page") != "2" || h.Get("X-Total") != "2" {
			t.Fatalf("page 1: %d %s %v", s, b, h)
		}
		_, h, _ = api("GET", "/projects/1/registry/repositories?per_page=1&page=2", tok)
		if h.Get("X-Next-Page") != "" {
			t.Fatalf("page 2 has next page %q", h.Get("X-Next-Page"))
		}
		_, _, b = api("GET", "/projects/1/registry/repositories", tok)
		repos = nil
		_ = json.Unmarshal(b, &repos)
		var aID int
		for _, r := range repos {
			if r.Name == "a" {
				aID = r.ID
			}
		}
		if aID == 0 {
			t.Fatalf("repository a missing: %s", b)
		}

		// Second tag on the same manifest, then delete only that tag.
		ra, _ := env.GitLabRef("migration/images/a", "v1")
		m, err := rc.ManifestGet(ctx, ra)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := m.RawBody()
		m2, _ := manifest.New(manifest.WithRaw(raw), manifest.WithDesc(m.GetDescriptor()))
		if err := rc.ManifestPut(ctx, ra.SetTag("alias"), m2); err != nil {
			t.Fatal(err)
		}
		tagsPath := "/projects/1/registry/repositories/" + itoa(aID) + "/tags"
		s, _, b = api("GET", tagsPath, tok)
		if s != 200 || !strings.Contains(string(b), `"alias"`) || !strings.Contains(string(b), `"v1"`) {
			t.Fatalf("tags: %d %s", s, b)
		}
		s, _, b = api("GET", tagsPath+"/v1", tok)
		var td struct {
			Digest    string `json:"digest"`
			TotalSize int64  `json:"total_size"`
		}
		_ = json.Unmarshal(b, &td)
		if s != 200 || td.Digest != gl.Digest || td.TotalSize <= 1<<20 {
			t.Fatalf("tag detail: %d %s (want digest %s)", s, b, gl.Digest)
		}
		if s, _, b := api("DELETE", tagsPath+"/alias", tok); s != 200 {
			t.Fatalf("delete tag: %d %s", s, b)
		}
		if s, _, _ := api("GET", tagsPath+"/alias", tok); s != 404 {
			t.Fatalf("deleted tag still there: %d", s)
		}
		if s, _, _ := api("DELETE", tagsPath+"/alias", tok); s != 404 {
			t.Fatalf("deleting unknown tag: %d", s)
		}
		if _, err := rc.ManifestHead(ctx, ra.SetTag("alias")); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("registry still serves deleted tag: %v", err)
		}
		if mh, err := rc.ManifestHead(ctx, ra); err != nil || mh.GetDescriptor().Digest.String() != gl.Digest {
			t.Fatalf("other tag on the same digest lost: %v", err)
		}
		if s, _, _ := api("GET", "/projects/1/registry/repositories/9999/tags", tok); s != 404 {
			t.Fatalf("unknown repository: %d", s)
		}
		if s, _, _ := api("GET", "/nothing/here", tok); s != 404 {
			t.Fatalf("unknown route: %d", s)
		}
	})

	t.Run("Proxy", func(t *testing.T) {
		p := env.ECRProxy
		p.ResetStats()
		r, _ := env.ECRRef("web", "v1.0")
		if _, err := rc.ManifestGet(ctx, r); err != nil {
			t.Fatal(err)
		}
		st := p.Stats()
		if st.Requests == 0 || st.ByMethod["GET"] == 0 || st.BytesToClient == 0 {
			t.Fatalf("stats %+v", st)
		}
		p.SetFault(func(r *http.Request) (int, string, bool) {
			return http.StatusTooManyRequests, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}`, strings.Contains(r.URL.Path, "/manifests/")
		})
		get := func() (*http.Response, error) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.ECRRegistryEndpoint+"/v2/web/manifests/v1.0", nil)
			return env.HTTPClient().Do(req)
		}
		resp, err := get()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || !strings.Contains(string(b), "injected") {
			t.Fatalf("fault: %d %s", resp.StatusCode, b)
		}
		p.SetFault(nil)
		resp, err = get()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("after clearing the fault: %d (want the registry's 401)", resp.StatusCode)
		}
		p.ResetStats()
		if st := p.Stats(); st.Requests != 0 || len(st.ByMethod) != 0 {
			t.Fatalf("after reset %+v", st)
		}
	})

	t.Run("ECRAPIProxyCountsActions", func(t *testing.T) {
		env.ECRAPIProxy.ResetStats()
		c := env.ECRClient(ctx, false)
		if _, err := c.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String("web")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{}); err != nil {
			t.Fatal(err)
		}
		st := env.ECRAPIProxy.Stats()
		if st.ByAction["ListImages"] != 1 || st.ByAction["DescribeRepositories"] != 1 || st.Requests != 2 {
			t.Fatalf("ECR API proxy counted %+v, want one ListImages and one DescribeRepositories", st)
		}
	})

	t.Run("ConnectPushMovesTag", func(t *testing.T) {
		c, err := Connect(env.State())
		if err != nil {
			t.Fatal(err)
		}
		env.ECRProxy.ResetStats()
		img, err := c.PushECRImage(ctx, "web", "latest", ImageSpec{})
		if err != nil {
			t.Fatal(err)
		}
		// Uploads follow distribution's Location headers: they must come back
		// through the proxy, so the proxy sees the layer bytes.
		if st := env.ECRProxy.Stats(); st.BytesFromClient < 64<<10 || st.ByMethod["PUT"] == 0 {
			t.Fatalf("push bypassed the proxy: %+v", st)
		}
		out, err := env.ECRClient(ctx, false).DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String("web")})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range out.ImageDetails {
			for _, tag := range d.ImageTags {
				if tag == "latest" {
					found = aws.ToString(d.ImageDigest) == img.Digest
				}
			}
		}
		if !found {
			t.Fatalf("moto does not show latest at %s", img.Digest)
		}
		if c.Close() != nil {
			t.Fatal("Close of a connected env")
		}
	})

	t.Run("ECRRegistry", func(t *testing.T) { testECRRegistry(t, env) })
	t.Run("GitLabRegistry", func(t *testing.T) { testGitLabRegistry(t, env) })

	t.Run("CloseLeavesNothing", func(t *testing.T) {
		var pgids []int
		for _, p := range env.procs {
			pgids = append(pgids, p.cmd.Process.Pid)
		}
		if err := env.Close(); err != nil {
			t.Fatal(err)
		}
		closed = true
		for _, pg := range pgids {
			if err := syscall.Kill(-pg, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process group %d still alive (%v)", pg, err)
			}
		}
		for _, u := range []string{env.ECRAPIEndpoint, env.ECRRegistryEndpoint, env.S3.URL, env.GitLabURL, env.GitLabRegistryURL} {
			c := http.Client{Timeout: time.Second, Transport: env.HTTPClient().Transport}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u+"/", nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
				t.Errorf("%s still answers", u)
			}
		}
	})
}

func mustDigest(t *testing.T, env *Env, l Layer) digest.Digest {
	t.Helper()
	d, err := env.layerDigest(l)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

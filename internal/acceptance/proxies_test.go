package acceptance

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// proxiedHosts are the five endpoints' test names, which only the forward
// proxy resolves.
var proxiedHosts = []string{"ecr-api.test", "ecr.test", "s3.test", "gitlab.test", "registry.test"}

// TestProxyTable sends the provider through a forward proxy, as company
// networks do: every endpoint by a name only the proxy resolves, so a
// connection that bypassed it could not be made. The rows share the proxy's
// counters, so they run one after the other; each ends with every digest
// checked by skopeo and an empty plan through the proxy.
func TestProxyTable(t *testing.T) {
	skipWithoutEnv(t)
	fp, err := localenv.StartForwardProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fp.Close() })
	through := func(noProxy string) []string {
		return []string{"HTTPS_PROXY=" + fp.URL, "HTTP_PROXY=" + fp.URL, "NO_PROXY=" + noProxy}
	}
	// proxied is a fixture whose provider reaches every endpoint by its
	// test name, through the proxy except for noProxy.
	proxied := func(t *testing.T, noProxy string) *faultFixture {
		f := newFaultFixture(t, standardImages(256<<10))
		f.w.useProvider(env.ProviderHCLFor(env.TestNamed(), true), through(noProxy)...)
		fp.ResetTunnels()
		return f
	}

	t.Run("every_endpoint_through_the_proxy", func(t *testing.T) {
		f := proxied(t, "")
		code, diags := f.applyJSON()
		f.expectApplied("apply through the proxy", code, diags)
		tunnels := fp.Tunnels()
		for _, host := range proxiedHosts {
			if tunnels[host] == 0 {
				t.Errorf("no tunnel to %s; the proxy saw %v", host, tunnels)
			}
		}
		if extra := slices.DeleteFunc(slices.Collect(maps.Keys(tunnels)), func(h string) bool { return slices.Contains(proxiedHosts, h) }); len(extra) > 0 {
			t.Errorf("tunnels to hosts other than the five endpoints: %v", extra)
		}
		t.Logf("tunnels per host: %v", tunnels)
		f.expectConverged()
	})

	t.Run("NO_PROXY_excludes_S3", func(t *testing.T) {
		// s3.test resolves only through the proxy: sent direct, the layer
		// downloads fail on DNS, and the diagnostics say which host.
		f := proxied(t, "s3.test")
		code, diags := f.applyJSON()
		tunnels := fp.Tunnels()
		if tunnels["s3.test"] != 0 {
			t.Errorf("%d tunnels to s3.test, which NO_PROXY excludes", tunnels["s3.test"])
		}
		for _, host := range []string{"ecr-api.test", "ecr.test", "gitlab.test"} {
			if tunnels[host] == 0 {
				t.Errorf("no tunnel to %s; the proxy saw %v", host, tunnels)
			}
		}
		errs := errorsOf(diags)
		if code == 0 || len(errs) == 0 {
			t.Fatalf("apply with S3 sent direct to a name only the proxy resolves exited %d, want DNS failures", code)
		}
		expectTagErrorsQuote(t, errs, "ECR", "s3.test", "could not be resolved")
		f.w.useProvider(env.ProviderHCLFor(env.TestNamed(), true), through("")...)
		f.reapplyConverges("apply with S3 through the proxy again")
	})

	t.Run("proxy_answers_407", func(t *testing.T) {
		f := proxied(t, "")
		f.w.apply()
		before := f.w.state()
		fp.Refuse(407)
		t.Cleanup(func() { fp.Refuse(0) })
		out, code := f.w.run("plan", "-input=false", "-json")
		expectNoSecrets(t, "terraform plan output", out)
		errs := errorsOf(diagnosticsOf(out))
		if code == 0 || len(errs) == 0 {
			t.Fatalf("plan through a proxy that answers 407 exited %d, want an error:\n%s", code, out)
		}
		for _, want := range []string{"proxy", "407", "HTTPS_PROXY=http://user:password@"} {
			if !strings.Contains(errs[0].Detail, want) {
				t.Errorf("the diagnostic lacks %q:\n%s", want, errs[0])
			}
		}
		if after := f.w.state(); !bytes.Equal(before, after) {
			t.Error("the refused plan changed the state file")
		}
		fp.Refuse(0)
		f.expectConverged()
		t.Logf("407 diagnostic: %s", errs[0])
	})
}

package acceptance

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

// TestTLSTable: every endpoint of the local environment speaks HTTPS with a
// certificate from the environment's own CA, as a self-managed GitLab with a
// company CA does. The CA trusted each documented way mirrors and converges;
// a certificate that cannot be trusted fails the plan with a message naming
// the side, the host, what failed and what fixes it, and leaves the state
// file as it was.
func TestTLSTable(t *testing.T) {
	skipWithoutEnv(t)
	if env.CAFile == "" {
		t.Skip("the local environment serves plain HTTP")
	}
	trusted := []struct {
		name     string
		provider string
		vars     []string
	}{
		{"cacert_file_and_custom_ca_bundle", env.ProviderHCL(), nil},
		{"SSL_CERT_FILE", env.ProviderHCLFor(env.Endpoints(), false), []string{"SSL_CERT_FILE=" + env.CAFile}},
		{"CI_SERVER_TLS_CA_FILE_and_AWS_CA_BUNDLE", env.ProviderHCLFor(env.Endpoints(), false), varsOf(env.CAEnvVars())},
	}
	for _, row := range trusted {
		t.Run("trusted_through_"+row.name, func(t *testing.T) {
			f := newFaultFixture(t, standardImages(64<<10))
			f.w.useProvider(row.provider, row.vars...)
			code, diags := f.applyJSON()
			f.expectApplied("apply trusting the CA through "+row.name, code, diags)
			f.expectConverged()
		})
	}

	ecrAPI := func(ep *localenv.Endpoints) *string { return &ep.ECRAPI }
	gitlabAPI := func(ep *localenv.Endpoints) *string { return &ep.GitLabAPI }
	refused := []refusedCertRow{
		// ECR listed by the data source, as the examples do.
		{"unknown_CA", localenv.CertUnknownCA, ecrAPI, true, "ECR", "signed by an unknown authority", "ecr.custom_ca_bundle", "AWS_CA_BUNDLE"},
		{"wrong_host_name", localenv.CertWrongName, gitlabAPI, true, "GitLab", "is not valid for the name", "gitlab.base_url", "wrong-host.example.com"},
		{"expired_certificate", localenv.CertExpired, ecrAPI, true, "ECR", "expired on", "renewed", "clock"},
		// The resource alone reads ECR at plan itself, where ECR being
		// away only warns for a resource in state: a certificate is no
		// outage, and fails the plan all the same.
		{"unknown_CA_resource_alone", localenv.CertUnknownCA, ecrAPI, false, "ECR", "signed by an unknown authority", "ecr.custom_ca_bundle", "AWS_CA_BUNDLE"},
		{"wrong_host_name_resource_alone", localenv.CertWrongName, ecrAPI, false, "ECR", "is not valid for the name", "ecr.endpoint", "wrong-host.example.com"},
		{"expired_certificate_resource_alone", localenv.CertExpired, ecrAPI, false, "ECR", "expired on", "renewed", "clock"},
		{"GitLab_unknown_CA_resource_alone", localenv.CertUnknownCA, gitlabAPI, false, "GitLab", "signed by an unknown authority", "gitlab.cacert_file", "CI_SERVER_TLS_CA_FILE"},
	}
	for _, row := range refused {
		t.Run("refused_"+row.name, row.run)
	}
}

// refusedCertRow is an endpoint serving a certificate that cannot be
// trusted, and what the plan's error must say.
type refusedCertRow struct {
	name     string
	bad      localenv.BadCert
	endpoint func(ep *localenv.Endpoints) *string
	// dataSource lists the repository with the data source; else the
	// resource reads ECR at plan itself.
	dataSource             bool
	side, what, fix, fixed string
}

// run applies with trusted certificates, then plans against the bad one:
// the plan fails with the message and the state file stays as it was.
func (row refusedCertRow) run(t *testing.T) {
	f := newFaultFixture(t, standardImages(64<<10))
	if row.dataSource {
		f.w.write(f.w.hcl + fmt.Sprintf(`
data "imagesync_ecr_repositories" "source" {
  names = [%q]
}
`, f.repo))
	}
	f.w.apply()
	before := f.w.state()
	ep := env.Endpoints()
	target := row.endpoint(&ep)
	bad, err := env.ServeBadCert(*target, row.bad)
	if err != nil {
		t.Fatal(err)
	}
	*target = bad
	f.w.useProvider(env.ProviderHCLFor(ep, true))
	out, code := f.w.run("plan", "-input=false", "-json")
	expectNoSecrets(t, "terraform plan output", out)
	errs := errorsOf(diagnosticsOf(out))
	if code == 0 || len(errs) == 0 {
		t.Fatalf("plan against a certificate that cannot be trusted (%s) exited %d, want an error:\n%s", row.name, code, out)
	}
	host := strings.TrimPrefix(bad, "https://")
	for _, want := range []string{row.side, host, row.what, row.fix, row.fixed} {
		if !strings.Contains(errs[0].Detail, want) {
			t.Errorf("the diagnostic lacks %q:\n%s", want, errs[0])
		}
	}
	if after := f.w.state(); !bytes.Equal(before, after) {
		t.Errorf("the refused plan changed the state file")
	}
	f.w.useProvider(env.ProviderHCL())
	f.expectConverged()
}

// varsOf renders variables as K=V.
func varsOf(vars map[string]string) []string {
	var out []string
	for k, v := range vars {
		out = append(out, fmt.Sprintf("%s=%s", k, v))
	}
	return out
}

package provider

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
	"github.com/imagesync/terraform-provider-imagesync/internal/network"
	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

// viaURL is err as an HTTP client returns it for a request to rawURL.
func viaURL(rawURL string, err error) error { return &url.Error{Op: "Get", URL: rawURL, Err: err} }

func TestNetworkFailureDiagnostics(t *testing.T) {
	s3URL := "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/x/y?X-Amz-Signature=0123456789abcdef0123"
	s3Host := "prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com"
	gitlabURL := "https://gitlab.corp.example/api/v4/projects/1"
	cert := &x509.Certificate{DNSNames: []string{"other.example"}, NotAfter: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name string
		side mirror.Side
		err  error
		want []string
	}{
		{"unknown CA on GitLab", mirror.SideGitLab, viaURL(gitlabURL, x509.UnknownAuthorityError{}),
			[]string{"GitLab", "gitlab.corp.example", "unknown authority", "gitlab.cacert_file", "CI_SERVER_TLS_CA_FILE"}},
		{"unknown CA on ECR", mirror.SideECR, viaURL(s3URL, x509.UnknownAuthorityError{}),
			[]string{"ECR", s3Host, "unknown authority", "ecr.custom_ca_bundle", "AWS_CA_BUNDLE"}},
		{"name mismatch", mirror.SideGitLab, viaURL(gitlabURL, x509.HostnameError{Certificate: cert, Host: "gitlab.corp.example"}),
			[]string{"not valid for the name gitlab.corp.example", "other.example", "gitlab.base_url"}},
		{"expired", mirror.SideECR, viaURL(s3URL, x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}),
			[]string{"expired on 2025-01-02", "renewed"}},
		{"DNS", mirror.SideECR, viaURL(s3URL, &net.OpError{Op: "dial", Err: &net.DNSError{Name: s3Host, Err: "no such host"}}),
			[]string{s3Host, "could not be resolved", "prod-<region>-starport-layer-bucket"}},
		{"refused", mirror.SideGitLab, viaURL(gitlabURL, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			[]string{"gitlab.corp.example refused the connection", "gitlab.base_url"}},
		{"proxy 407", mirror.SideECR, viaURL(s3URL, &network.ProxyError{Proxy: "proxy:3128", Target: s3Host + ":443", Status: 407}),
			[]string{"proxy proxy:3128 refused", s3Host, "(407)", "HTTPS_PROXY=http://user:password@proxy:port"}},
		{"proxy 403", mirror.SideGitLab, viaURL(gitlabURL, &network.ProxyError{Proxy: "proxy:3128", Target: "gitlab.corp.example:443", Status: 403}),
			[]string{"(403)", "NO_PROXY"}},
		{"stall", mirror.SideECR, &mirror.ConnectionError{Side: mirror.SideECR, Failures: 3, ResumedFrom: []int64{100},
			Cause: &network.StallError{Host: s3Host, Phase: "reading the response body", Idle: time.Minute}},
			[]string{"no progress with " + s3Host + " for 1m0s", "idle_timeout", "resumed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := error(&mirror.SideError{Side: tt.side, Err: fmt.Errorf("copying sha256:abc: %w", tt.err)})
			detail := failureDetail("copying", err, redact.New())
			for _, want := range tt.want {
				if !strings.Contains(detail, want) {
					t.Errorf("detail does not say %q:\n%s", want, detail)
				}
			}
			if strings.Contains(detail, "0123456789abcdef0123") || strings.Contains(detail, "context deadline exceeded") {
				t.Errorf("detail leaks a signature or says only that time ran out:\n%s", detail)
			}
		})
	}
	if _, ok := networkHint(mirror.SideECR, fmt.Errorf("manifest unknown")); ok {
		t.Error("networkHint explained an error that is no connection failure")
	}
}

func TestECRAndGitLabAPIFailuresNameTheConnection(t *testing.T) {
	dns := viaURL("https://api.ecr.eu-west-1.amazonaws.com/", &net.DNSError{Name: "api.ecr.eu-west-1.amazonaws.com", Err: "no such host"})
	if d := ecrErrorDetail("listing repositories", dns); !strings.Contains(d, "api.ecr.eu-west-1.amazonaws.com could not be resolved") {
		t.Errorf("ECR API detail: %s", d)
	}
	refused := viaURL("https://gitlab.corp.example/api/v4/projects/x", x509.UnknownAuthorityError{})
	if d := projectDiag("group/x", refused, redact.New()); d.Summary() != "Cannot Reach GitLab" || !strings.Contains(d.Detail(), "gitlab.cacert_file") {
		t.Errorf("GitLab API diagnostic: %s: %s", d.Summary(), d.Detail())
	}
}

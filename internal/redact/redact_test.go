package redact

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	presigned := "https://prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com/a/b?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=ASIAEXAMPLE%2F20261128%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261128T000000Z" +
		"&X-Amz-Expires=3600&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef"
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb290In0.c2lnbmF0dXJl"
	tests := []struct {
		in        string
		forbidden []string
		kept      []string
	}{
		{`Get "` + presigned + `": connection reset`, []string{"0123456789abcdef", "IQoJb3JpZ2luX2VjEXAMPLE", "ASIAEXAMPLE"}, []string{"X-Amz-Signature=REDACTED", "X-Amz-Date=20261128T000000Z", "connection reset"}},
		{`{"Location":["` + strings.ReplaceAll(presigned, "&", `\u0026`) + `"]}`, []string{"0123456789abcdef", "IQoJb3JpZ2luX2VjEXAMPLE"}, []string{"starport-layer-bucket"}},
		{"X-Amz-Signature%3D0123456789abcdef%26", []string{"0123456789abcdef"}, []string{"X-Amz-Signature%3DREDACTED"}},
		{"token " + jwt + " issued", []string{jwt, "c2lnbmF0dXJl"}, []string{"token REDACTED issued"}},
		{"Authorization: Bearer abcdefghijklmnop", []string{"abcdefghijklmnop"}, []string{"Bearer REDACTED"}},
		{"Authorization: Basic QVdTOnNlY3JldA==", []string{"QVdTOnNlY3JldA=="}, []string{"Basic REDACTED"}},
	}
	for _, tt := range tests {
		got := Text(tt.in)
		// tflog's masks apply Patterns again after the redactor: what it
		// left must not match, or the log says "***" instead of what it removed.
		for _, p := range Patterns {
			if m := p.FindString(got); m != "" {
				t.Errorf("Text(%q) = %q, which pattern %s matches again at %q", tt.in, got, p, m)
			}
		}
		for _, f := range tt.forbidden {
			if strings.Contains(got, f) {
				t.Errorf("Text(%q) = %q still holds %q", tt.in, got, f)
			}
		}
		for _, k := range tt.kept {
			if !strings.Contains(got, k) {
				t.Errorf("Text(%q) = %q lost %q", tt.in, got, k)
			}
		}
	}
}

func TestRedactorSecretsAndTheirBase64(t *testing.T) {
	r := New("glpat-abcdef")
	r.Add("AWS:ecr-password-1", "ecr-password-1", "", "ab")
	in := "token glpat-abcdef, password ecr-password-1, basic " + base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password-1"))
	got := r.String(in)
	for _, secret := range []string{"glpat-abcdef", "ecr-password-1", base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password-1"))} {
		if strings.Contains(got, secret) {
			t.Errorf("%q still holds %q", got, secret)
		}
	}
	if strings.Contains(r.String("about"), Mask) {
		t.Error("short secrets must be ignored, not mask every 'ab'")
	}
}

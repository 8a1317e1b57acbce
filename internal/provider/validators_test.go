package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	resourceschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestTargetImageProblem(t *testing.T) {
	tests := []struct {
		name        string
		wantProblem string // substring; "" means valid
		wantSuggest string
	}{
		{"web", "", ""},
		{"team/api", "", ""},
		{"a.b_c-d", "", ""},
		{"a__b", "", ""},
		{"a--b", "", ""},
		{"v2/x9", "", ""},
		{"", "is empty", "image"},
		{"Web", `"Web"`, "web"},
		{"a/b/c", "has 3 path segments", "a-b/c"},
		{"org/team/svc/api", "has 4 path segments", "org-team-svc/api"},
		{"-lead", `"-lead"`, "lead"},
		{"trail-", `"trail-"`, "trail"},
		{"a//b", `""`, "a/b"},
		{"UPPER/Case", `"UPPER", "Case"`, "upper/case"},
		{"team/my app", `"my app"`, "team/my-app"},
		{"/web", `""`, "web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problem, suggestion := targetImageProblem(tt.name)
			if tt.wantProblem == "" {
				if problem != "" || suggestion != "" {
					t.Errorf("targetImageProblem(%q) = %q, %q; want valid", tt.name, problem, suggestion)
				}
				return
			}
			if !strings.Contains(problem, tt.wantProblem) {
				t.Errorf("problem = %q, want it to contain %q", problem, tt.wantProblem)
			}
			if suggestion != tt.wantSuggest {
				t.Errorf("suggestion = %q, want %q", suggestion, tt.wantSuggest)
			}
		})
	}
}

func TestSuggestImageName(t *testing.T) {
	tests := map[string]string{
		"web":              "web",
		"Team/API":         "team/api",
		"a/b/c/d":          "a-b-c/d",
		"org/team/svc/api": "org-team-svc/api",
		"":                 "image",
		"///":              "image",
		"--":               "image",
		"_x_/y.":           "x/y",
		"café/ü":           "caf",
		"my app:1.0":       "my-app-1.0",
	}
	for in, want := range tests {
		if got := suggestImageName(in, defaultImageSeparator); got != want {
			t.Errorf("suggestImageName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The suggestion is offered as a fix, so GitLab must accept it.
func TestSuggestImageNameIsValid(t *testing.T) {
	for _, in := range []string{
		"", "Web", "a/b/c", "org/team/svc/api", "-lead", "trail-", "a//b", "UPPER/Case",
		"My Team/My App/v2", "x/@@/y", "team/api:latest", "a/b/c/d/e/f",
	} {
		s := suggestImageName(in, defaultImageSeparator)
		if problem, _ := targetImageProblem(s); problem != "" {
			t.Errorf("suggestImageName(%q) = %q, which itself %s", in, s, problem)
		}
	}
}

// Inner runs of separators that the grammar refuses are collapsed, so the
// suggestion is itself a valid name.
func TestSuggestImageNameRepeatedSeparators(t *testing.T) {
	for _, in := range []string{"a..b", "a._b", "a___b", "a-.b", "my--.app"} {
		s := suggestImageName(in, defaultImageSeparator)
		if problem, _ := targetImageProblem(s); problem != "" {
			t.Errorf("suggestImageName(%q) = %q, which itself %s", in, s, problem)
		}
	}
}

// validate runs v on value at path "x".
func validate(v validator.String, value types.String) diag.Diagnostics {
	req := validator.StringRequest{Path: path.Root("x"), ConfigValue: value}
	resp := &validator.StringResponse{}
	v.ValidateString(context.Background(), req, resp)
	return resp.Diagnostics
}

func TestValidators(t *testing.T) {
	type tcase struct {
		value string
		ok    bool
	}
	tests := []struct {
		name      string
		v         validator.String
		wantTitle string
		cases     []tcase
	}{
		{"targetImage", targetImageValidator{}, "Invalid Target Image Name", []tcase{
			{"web", true}, {"team/api", true}, {"a__b", true},
			{"", false}, {"Web", false}, {"a/b/c", false}, {"a//b", false}, {"-lead", false},
		}},
		{"regex", regexValidator{}, "Invalid Regular Expression", []tcase{
			{`^v\d+\.\d+$`, true}, {"", true}, {"team/.*", true},
			{"(", false}, {"[a-", false}, {`(?=x)`, false}, {`(a)\1`, false}, {"*", false},
		}},
		{"url", urlValidator{}, "Invalid URL", []tcase{
			{"https://gitlab.example.com", true}, {"http://127.0.0.1:8080", true}, {"https://gitlab.example.com/sub/", true},
			{"gitlab.example.com", false}, {"ftp://gitlab.example.com", false}, {"https://", false},
			{"", false}, {"/api/v4", false}, {"http://[::1", false},
		}},
		{"gitlabProject", gitlabProjectValidator{}, "Invalid GitLab Project", []tcase{
			{"group/project", true}, {"Group/Sub.Group/my_project-1", true}, {"42", true}, {"1234567", true},
			{"project", false}, {"0", false}, {"007", false}, {"-1", false}, {"group/project/", false},
			{"/group/project", false}, {"group//project", false}, {"https://gitlab.com/group/project", false},
			{"group/-project", false}, {"", false}, {"group/my project", false},
		}},
		{"ecrRepository", ecrRepositoryValidator{}, "Invalid ECR Repository Name", []tcase{
			{"team/api", true}, {"ab", true}, {"a.b_c-d/e", true}, {strings.Repeat("a", 256), true},
			{"a", false}, {strings.Repeat("a", 257), false}, {"Team/api", false}, {"team/", false},
			{"/team", false}, {"team//api", false}, {"a..b", false}, {"-ab", false},
			{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api", false}, // a URI, not a name
			{"arn:aws:ecr:eu-west-1:123456789012:repository/team", false}, {"", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.v.Description(ctx) == "" || tt.v.MarkdownDescription(ctx) != tt.v.Description(ctx) {
				t.Errorf("descriptions = %q, %q", tt.v.Description(ctx), tt.v.MarkdownDescription(ctx))
			}
			for _, c := range tt.cases {
				diags := validate(tt.v, types.StringValue(c.value))
				if c.ok {
					if len(diags) != 0 {
						t.Errorf("%q: unexpected diagnostics %v", c.value, diags)
					}
					continue
				}
				if !diags.HasError() || diags.ErrorsCount() != 1 || len(diags) != 1 {
					t.Errorf("%q: diagnostics = %v, want exactly one error", c.value, diags)
					continue
				}
				d := diags[0]
				wp, ok := d.(diag.DiagnosticWithPath)
				if !ok || !wp.Path().Equal(path.Root("x")) {
					t.Errorf("%q: error not attached to path x: %v", c.value, d)
				}
				if d.Summary() != tt.wantTitle {
					t.Errorf("%q: summary = %q, want %q", c.value, d.Summary(), tt.wantTitle)
				}
				if q := fmt.Sprintf("%q", c.value); !strings.Contains(d.Detail(), q) {
					t.Errorf("%q: detail does not mention %s: %s", c.value, q, d.Detail())
				}
			}
			for _, v := range []types.String{types.StringNull(), types.StringUnknown()} {
				if diags := validate(tt.v, v); len(diags) != 0 {
					t.Errorf("%v: unexpected diagnostics %v", v, diags)
				}
			}
		})
	}
}

// The target image error gives the suggestion as a ready-to-paste setting.
func TestTargetImageValidatorSuggestion(t *testing.T) {
	diags := validate(targetImageValidator{}, types.StringValue("org/team/svc/api"))
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", diags)
	}
	if d := diags[0].Detail(); !strings.Contains(d, `target_image = "org-team-svc/api"`) || !strings.Contains(d, "4 path segments") {
		t.Errorf("detail = %s", d)
	}
}

func TestTagAndDigestPatterns(t *testing.T) {
	hex64 := strings.Repeat("a1", 32)
	hex128 := strings.Repeat("0f", 64)
	tests := []struct {
		name  string
		re    interface{ MatchString(string) bool }
		value string
		want  bool
	}{
		{"tag", tagPattern, "latest", true},
		{"tag", tagPattern, "v1.2.3-rc.1", true},
		{"tag", tagPattern, "_internal", true},
		{"tag", tagPattern, "V1_A", true},
		{"tag", tagPattern, strings.Repeat("a", 128), true},
		{"tag", tagPattern, strings.Repeat("a", 129), false},
		{"tag", tagPattern, "", false},
		{"tag", tagPattern, ".hidden", false},
		{"tag", tagPattern, "-dash", false},
		{"tag", tagPattern, "has space", false},
		{"tag", tagPattern, "a/b", false},
		{"tag", tagPattern, "v1:2", false},
		{"tag", tagPattern, "v1\n", false},
		{"digest", digestPattern, "sha256:" + hex64, true},
		{"digest", digestPattern, "sha512:" + hex128, true},
		{"digest", digestPattern, "sha256:" + hex64[:63], false},
		{"digest", digestPattern, "sha256:" + hex64 + "a", false},
		{"digest", digestPattern, "sha256:" + strings.ToUpper(hex64), false},
		{"digest", digestPattern, "sha512:" + hex64, false},
		{"digest", digestPattern, "sha256:" + hex128, false},
		{"digest", digestPattern, "md5:" + hex64, false},
		{"digest", digestPattern, hex64, false},
		{"digest", digestPattern, "", false},
		{"media type", mediaTypePattern, "application/spdx+json", true},
		{"media type", mediaTypePattern, "application/vnd.dev.sigstore.bundle.v0.3+json", true},
		{"media type", mediaTypePattern, "application/vnd.in-toto+json", true},
		{"media type", mediaTypePattern, "spdx", false},
		{"media type", mediaTypePattern, "application/", false},
		{"media type", mediaTypePattern, "application/spdx+json; charset=utf-8", false},
		{"media type", mediaTypePattern, "application/spdx json", false},
		{"media type", mediaTypePattern, "", false},
	}
	for _, tt := range tests {
		if got := tt.re.MatchString(tt.value); got != tt.want {
			t.Errorf("%s %q: match = %v, want %v", tt.name, tt.value, got, tt.want)
		}
	}
}

// A URL with another scheme is refused as not http(s), with the attribute's
// own example.
func TestURLValidatorMessage(t *testing.T) {
	diags := validate(urlValidator{example: "https://registry.example.com"}, types.StringValue("ftp://x"))
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", diags)
	}
	want := `The value "ftp://x" is not an absolute http:// or https:// URL. Use the form https://host[:port], e.g. https://registry.example.com.`
	if d := diags[0].Detail(); d != want {
		t.Errorf("detail = %s\nwant     %s", d, want)
	}
}

func TestPositiveTimeoutsValidator(t *testing.T) {
	attrTypes := map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType}
	tests := []struct {
		create, update, delete types.String
		wantBad                []string
	}{
		{types.StringValue("10m"), types.StringValue("1h30m"), types.StringNull(), nil},
		{types.StringValue("0s"), types.StringValue("10m"), types.StringValue("-5m"), []string{"create", "delete"}},
		{types.StringValue("10 parsecs"), types.StringUnknown(), types.StringValue("0"), []string{"delete"}},
	}
	for _, tt := range tests {
		obj := types.ObjectValueMust(attrTypes, map[string]attr.Value{"create": tt.create, "update": tt.update, "delete": tt.delete})
		resp := &validator.ObjectResponse{}
		positiveTimeoutsValidator{}.ValidateObject(t.Context(), validator.ObjectRequest{Path: path.Root("timeouts"), ConfigValue: obj}, resp)
		var bad []string
		for _, d := range resp.Diagnostics {
			wp, ok := d.(diag.DiagnosticWithPath)
			if !ok || d.Summary() != "Invalid Timeout" {
				t.Errorf("%v: unexpected diagnostic %v", obj, d)
				continue
			}
			bad = append(bad, strings.TrimPrefix(wp.Path().String(), "timeouts."))
		}
		if !slices.Equal(bad, tt.wantBad) {
			t.Errorf("%v: refused %v, want %v", obj, bad, tt.wantBad)
		}
	}
	for _, obj := range []types.Object{types.ObjectNull(attrTypes), types.ObjectUnknown(attrTypes)} {
		resp := &validator.ObjectResponse{}
		positiveTimeoutsValidator{}.ValidateObject(t.Context(), validator.ObjectRequest{Path: path.Root("timeouts"), ConfigValue: obj}, resp)
		if len(resp.Diagnostics) != 0 {
			t.Errorf("%v: unexpected diagnostics %v", obj, resp.Diagnostics)
		}
	}
}

// The resource's timeouts block carries the positive-duration check.
func TestTimeoutsBlockValidates(t *testing.T) {
	block, ok := timeoutsBlock(t.Context(), timeouts.Opts{Create: true}).(resourceschema.SingleNestedBlock)
	if !ok || !slices.ContainsFunc(block.Validators, func(v validator.Object) bool { _, is := v.(positiveTimeoutsValidator); return is }) {
		t.Errorf("timeoutsBlock = %#v, want a SingleNestedBlock with positiveTimeoutsValidator", block)
	}
}

func TestDurationValidator(t *testing.T) {
	v := durationValidator{min: minIdleTimeout}
	for value, wantDetail := range map[string]string{
		"60s": "", "2m": "", "1s": "", "1h30m": "",
		"soon": `"soon" is not a duration`, "60": `"60" is not a duration`,
		"10ms": `"10ms" is shorter than 1s`, "-5s": `"-5s" is shorter than 1s`,
	} {
		diags := validate(v, types.StringValue(value))
		if wantDetail == "" {
			if diags.HasError() {
				t.Errorf("%q: unexpected %v", value, diags)
			}
			continue
		}
		if len(diags) != 1 || !strings.Contains(diags[0].Detail(), wantDetail) || diags[0].Summary() != "Invalid Duration" {
			t.Errorf("%q: diagnostics = %v; want Invalid Duration with %q", value, diags, wantDetail)
			continue
		}
		if d, ok := diags[0].(diag.DiagnosticWithPath); !ok || !d.Path().Equal(path.Root("x")) {
			t.Errorf("%q: diagnostic not pinned to the attribute's path: %v", value, diags[0])
		}
	}
}

func TestImageSeparatorValidator(t *testing.T) {
	for sep, ok := range map[string]bool{"-": true, "--": true, ".": true, "_": true, "__": true,
		"/": false, "": false, "___": false, "._": false, "x": false, " ": false, "-.": false} {
		diags := validate(imageSeparatorValidator{}, types.StringValue(sep))
		if diags.HasError() == ok {
			t.Errorf("separator %q: error %v, want ok %v", sep, diags, ok)
		}
	}
}

func TestRFC3339Validator(t *testing.T) {
	for v, ok := range map[string]bool{"2025-01-01T00:00:00Z": true, "2025-01-01T01:00:00+01:00": true,
		"2025-01-01": false, "yesterday": false, "2025-01-01 00:00:00": false} {
		diags := validate(rfc3339Validator{}, types.StringValue(v))
		if diags.HasError() == ok {
			t.Errorf("%q: error %v, want ok %v", v, diags, ok)
		}
	}
}

package provider

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	accountIDPattern = regexp.MustCompile(`^\d{12}$`)
	roleARNPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/.+$`)
	// ecrNamePattern is ECR's repository name grammar.
	ecrNamePattern = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	// pathComponentPattern is the OCI distribution grammar of one path component,
	// which GitLab applies to image names.
	pathComponentPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// tagPattern is the OCI distribution tag grammar.
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$`)
	// mediaTypePattern is RFC 6838's type/subtype, as the OCI image spec's
	// artifactType takes it (parameters are not part of an artifact type).
	mediaTypePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)
	// projectPathPattern is a GitLab project path: namespace segments and the project.
	projectPathPattern = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$`)
	numericIDPattern   = regexp.MustCompile(`^[1-9][0-9]*$`)
	separatorRun       = regexp.MustCompile(`[._-]+`)
)

// maxImageSegments is how deep an image may sit below its GitLab project.
const maxImageSegments = 2

// defaultImageSeparator joins the path levels of a name deeper than GitLab
// allows, e.g. "a/b/c/d" -> "a-b-c/d".
const defaultImageSeparator = "-"

// targetImageProblem explains why GitLab would refuse an image name below a
// project, and suggests a name it accepts; "" when the name is fine.
func targetImageProblem(name string) (problem, suggestion string) {
	segments := strings.Split(name, "/")
	var bad []string
	for _, s := range segments {
		if !pathComponentPattern.MatchString(s) {
			bad = append(bad, fmt.Sprintf("%q", s))
		}
	}
	suggestion = suggestImageName(name, defaultImageSeparator)
	switch {
	case name == "":
		return "is empty", suggestion
	case len(bad) > 0:
		return fmt.Sprintf("has path segments that are not lowercase letters and digits separated by '.', '_', '__' or '-': %s", strings.Join(bad, ", ")), suggestion
	case len(segments) > maxImageSegments:
		return fmt.Sprintf("has %d path segments, but GitLab allows at most %d below the project", len(segments), maxImageSegments), suggestion
	}
	return "", ""
}

// suggestImageName lowercases, replaces characters GitLab refuses, and folds
// extra leading segments into the first, joined by sep, e.g. "a/b/c/d" ->
// "a-b-c/d". An ECR name needs only the folding: ECR's grammar is stricter
// than GitLab's within a segment.
func suggestImageName(name, sep string) string {
	segments := strings.Split(strings.ToLower(name), "/")
	clean := segments[:0]
	for _, s := range segments {
		s = strings.Map(func(r rune) rune {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '_' || r == '-' {
				return r
			}
			return '-'
		}, s)
		s = separatorRun.ReplaceAllStringFunc(s, func(run string) string {
			if run == "." || run == "_" || run == "__" || strings.Trim(run, "-") == "" {
				return run
			}
			return "-"
		})
		s = strings.Trim(s, "._-")
		if s != "" {
			clean = append(clean, s)
		}
	}
	if len(clean) == 0 {
		return "image"
	}
	if len(clean) > maxImageSegments {
		head := strings.Join(clean[:len(clean)-maxImageSegments+1], sep)
		clean = append([]string{head}, clean[len(clean)-maxImageSegments+1:]...)
	}
	return strings.Join(clean, "/")
}

// targetImageValidator applies GitLab's image naming rules at plan time.
type targetImageValidator struct{}

func (targetImageValidator) Description(context.Context) string {
	return "a lowercase image name with at most two path segments below the GitLab project"
}

func (v targetImageValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (targetImageValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	name := req.ConfigValue.ValueString()
	if problem, suggestion := targetImageProblem(name); problem != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Target Image Name",
			fmt.Sprintf("The target_image %q %s. GitLab image names are lowercase path segments of letters and digits "+
				"separated by '.', '_', '__' or '-', at most %d deep below the project. For example: target_image = %q.",
				name, problem, maxImageSegments, suggestion))
	}
}

// imageSeparatorValidator accepts a separator that keeps the segments it
// joins one GitLab path segment: '.', '_', '__' or a run of '-'.
type imageSeparatorValidator struct{}

func (imageSeparatorValidator) Description(context.Context) string {
	return "one of \".\", \"_\", \"__\" or one or more \"-\""
}

func (v imageSeparatorValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (imageSeparatorValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	sep := req.ConfigValue.ValueString()
	if sep != "" && strings.Trim(sep, "._-") == "" && pathComponentPattern.MatchString("a"+sep+"b") {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid GitLab Image Separator",
		fmt.Sprintf("The separator %q would not give image names GitLab accepts: it joins path segments into one, so it "+
			"must be a separator GitLab allows inside a segment: \".\", \"_\", \"__\" or one or more \"-\", e.g. \"--\".", sep))
}

// rfc3339Validator requires a timestamp in RFC 3339, the form Terraform's
// timestamp() and timeadd() return.
type rfc3339Validator struct{}

func (rfc3339Validator) Description(context.Context) string {
	return "an RFC 3339 timestamp such as 2025-01-01T00:00:00Z"
}

func (v rfc3339Validator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (rfc3339Validator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := time.Parse(time.RFC3339, req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Timestamp",
			fmt.Sprintf("The value %q is not an RFC 3339 timestamp. Use the form 2025-01-01T00:00:00Z (UTC) or "+
				"2025-01-01T01:00:00+01:00, as Terraform's timestamp() returns.\n\nOriginal Error: %s", req.ConfigValue.ValueString(), err))
	}
}

// regexValidator checks a Go (RE2) regular expression at plan time.
type regexValidator struct{}

func (regexValidator) Description(context.Context) string {
	return "a regular expression in Go's RE2 syntax"
}

func (v regexValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (regexValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := regexp.Compile(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Regular Expression",
			fmt.Sprintf("The value %q is not a valid regular expression in Go's RE2 syntax (no look-around or "+
				"backreferences). Escape literal dots as \\\\. in HCL strings.\n\nOriginal Error: %s", req.ConfigValue.ValueString(), err))
	}
}

// urlValidator requires an absolute http(s) URL; example is one the
// attribute takes, for the error message.
type urlValidator struct{ example string }

func (urlValidator) Description(context.Context) string { return "an absolute http:// or https:// URL" }

func (v urlValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v urlValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		example := v.example
		if example == "" {
			example = "https://host.example.com"
		}
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid URL",
			fmt.Sprintf("The value %q is not an absolute http:// or https:// URL. Use the form https://host[:port], e.g. %s.", s, example))
	}
}

// gitlabProjectValidator accepts a numeric project ID or a full project path.
type gitlabProjectValidator struct{}

func (gitlabProjectValidator) Description(context.Context) string {
	return "a GitLab project path such as group/project, or a numeric project ID"
}

func (v gitlabProjectValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (gitlabProjectValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if numericIDPattern.MatchString(s) || projectPathPattern.MatchString(s) {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid GitLab Project",
		fmt.Sprintf("The value %q is neither a numeric project ID nor a full project path. Use the path as it appears "+
			"in the project's URL, without the host or a trailing slash, e.g. \"my-group/my-project\", or the numeric ID "+
			"from the project's overview page.", s))
}

// ecrRepositoryValidator applies ECR's repository name grammar.
type ecrRepositoryValidator struct{}

func (ecrRepositoryValidator) Description(context.Context) string {
	return "an ECR repository name such as team/api"
}

func (v ecrRepositoryValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (ecrRepositoryValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	looksLikeURI := strings.Contains(s, ".dkr.ecr.") || strings.Contains(s, ".amazonaws.com/")
	if len(s) >= 2 && len(s) <= 256 && ecrNamePattern.MatchString(s) && !looksLikeURI {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid ECR Repository Name",
		fmt.Sprintf("The value %q is not an ECR repository name: 2 to 256 lowercase letters, digits and '.', '_', '-', "+
			"with '/' between path segments, e.g. \"team/api\". Give the repository's name, not its URI.", s))
}

// timeoutsBlock is the timeouts block whose durations must also be positive.
func timeoutsBlock(ctx context.Context, opts timeouts.Opts) schema.Block {
	block := timeouts.Block(ctx, opts)
	if b, ok := block.(schema.SingleNestedBlock); ok {
		b.Validators = append(b.Validators, positiveTimeoutsValidator{})
		return b
	}
	return block
}

// positiveTimeoutsValidator refuses a timeout of zero or less, which would
// cancel the operation as soon as it starts, after the plan was approved.
// What does not parse is left to the timeouts block's own validator.
type positiveTimeoutsValidator struct{}

func (positiveTimeoutsValidator) Description(context.Context) string {
	return "every timeout is a positive duration"
}

func (v positiveTimeoutsValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (positiveTimeoutsValidator) ValidateObject(_ context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	attrs := req.ConfigValue.Attributes()
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		s, ok := attrs[name].(types.String)
		if !ok || s.IsNull() || s.IsUnknown() {
			continue
		}
		if d, err := time.ParseDuration(s.ValueString()); err == nil && d <= 0 {
			resp.Diagnostics.AddAttributeError(req.Path.AtName(name), "Invalid Timeout",
				fmt.Sprintf("The timeouts.%s %q is not a positive duration: the operation would be cancelled as soon as "+
					"it starts. Set a duration such as \"30m\" or \"2h\", or leave it out for the default.", name, s.ValueString()))
		}
	}
}

// durationValidator accepts a Go duration string (such as 60s or 2m) of at
// least min.
type durationValidator struct{ min time.Duration }

func (v durationValidator) Description(context.Context) string {
	return fmt.Sprintf("a duration such as 60s or 2m, at least %s", v.min)
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("The value %q is not a duration. Use a number with a unit, such as 60s, 90s or 2m.", s))
	case d < v.min:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("The value %q is shorter than %s. Use %s or more, such as 60s or 2m.", s, v.min, v.min))
	}
}

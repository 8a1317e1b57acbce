package provider

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
)

// maxTagLength is what OCI registries and GitLab accept; ECR allows 300.
const maxTagLength = 128

// fallbackTagPattern is the referrers fallback tag, sha256-<hex>, which
// GitLab's registry reads as the digest sha256:<hex>.
var fallbackTagPattern = regexp.MustCompile(`^sha256-([a-f0-9]{64})$`)

// unmirrorableTag says why GitLab cannot hold tag at digest, or "".
func unmirrorableTag(tag, digest string) string {
	switch {
	case len(tag) > maxTagLength:
		return fmt.Sprintf("is %d characters long: ECR allows 300, OCI registries and GitLab at most %d", len(tag), maxTagLength)
	case !tagPattern.MatchString(tag):
		return "is not a valid OCI tag (letters, digits, '_', '.' and '-', not starting with '.' or '-')"
	}
	if m := fallbackTagPattern.FindStringSubmatch(tag); m != nil && digest != "sha256:"+m[1] {
		return fmt.Sprintf("has the form sha256-<hex>, which GitLab reads as the digest sha256:%s, but it points at %s "+
			"(a referrers fallback tag: copy_referrers copies its artifacts by digest instead)", shortHex(m[1]), digest)
	}
	return ""
}

func shortHex(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// mirrorableTags keeps the tags GitLab can hold and explains the others,
// sorted, as "tag: why".
func mirrorableTags(images map[string]string) (map[string]string, []string) {
	keep := make(map[string]string, len(images))
	var leftOut []string
	for tag, dig := range images {
		if why := unmirrorableTag(tag, dig); why != "" {
			leftOut = append(leftOut, fmt.Sprintf("%q %s", tag, why))
			continue
		}
		keep[tag] = dig
	}
	sort.Strings(leftOut)
	return keep, leftOut
}

// leftOutWarning names the tags of one repository that are not mirrored.
func leftOutWarning(at path.Path, repository string, leftOut []string) diag.Diagnostic {
	return diag.NewAttributeWarningDiagnostic(at, "Tags Left Out",
		fmt.Sprintf("%d tag(s) of the ECR repository %q cannot be held by GitLab and are left out; the other tags are "+
			"mirrored:\n- %s\n\nRename them in ECR (or push them under another tag) if they must move to GitLab.",
			len(leftOut), repository, strings.Join(leftOut, "\n- ")))
}

package mirror

import "slices"

// A referrer is a manifest of the subject's repository like any other: ECR
// lists it among the repository's images (untagged, unless someone tagged
// it). So where every manifest ECR lists is a subject already asked about (a
// tagged digest, a platform inside one), nothing in the repository can refer
// to them, and no referrers list needs asking for. This reads ECR's own
// listing, which the plan made anyway, and never a manifest.

// MayHaveReferrers tells whether some manifest of the repository is none of
// the subjects; manifests nil (unknown) always may. Asked with the tagged
// digests alone, false also means no index has a platform to read.
func MayHaveReferrers(manifests, subjects []string) bool {
	if manifests == nil {
		return true
	}
	known := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		known[s] = true
	}
	for _, m := range manifests {
		if !known[m] {
			return true
		}
	}
	return false
}

// Subjects are the tagged digests and the platform manifests known inside
// them: what referrers can refer to before referrers themselves.
func Subjects(tagged []string, platforms map[string][]string) []string {
	subjects := slices.Clone(tagged)
	for _, dig := range tagged {
		subjects = append(subjects, platforms[dig]...)
	}
	return subjects
}

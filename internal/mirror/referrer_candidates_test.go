package mirror

import "testing"

func TestMayHaveReferrers(t *testing.T) {
	for _, tc := range []struct {
		name                string
		manifests, subjects []string
		want                bool
	}{
		{"unknown listing", nil, []string{"sha256:a"}, true},
		{"only the subjects", []string{"sha256:a", "sha256:b"}, []string{"sha256:b", "sha256:a", "sha256:c"}, false},
		{"empty repository", []string{}, []string{"sha256:a"}, false},
		{"one more manifest", []string{"sha256:a", "sha256:sig"}, []string{"sha256:a"}, true},
	} {
		if got := MayHaveReferrers(tc.manifests, tc.subjects); got != tc.want {
			t.Errorf("%s: MayHaveReferrers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

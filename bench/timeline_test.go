package main

import (
	"strings"
	"testing"
	"time"

	"github.com/imagesync/terraform-provider-imagesync/internal/localenv"
)

func TestTimeline(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	entries := []localenv.LoggedRequest{
		{Start: ms(0), End: ms(40), Endpoint: "GitLab registry", Method: "GET", Path: "/gitlab/v1/repositories/g/p/svc-1/tags/list/"},
		{Start: ms(50), End: ms(250), Endpoint: "GitLab registry", Method: "PUT", Path: "/v2/g/p/svc-1/blobs/uploads/a"},
		{Start: ms(150), End: ms(250), Endpoint: "GitLab registry", Method: "PUT", Path: "/v2/g/p/svc-2/blobs/uploads/b"},
		{Start: ms(300), End: ms(310), Endpoint: "GitLab registry", Method: "PUT", Path: "/v2/g/p/svc-1/manifests/v1"},
		{Start: ms(100), End: ms(120), Endpoint: "ECR registry", Method: "GET", Path: "/v2/svc-2/blobs/sha256:aa"},
		{Start: ms(5), End: ms(6), Endpoint: "GitLab API", Method: "GET", Path: "/jwt/auth"},
	}
	tl := newTimeline(entries)
	if tl.repos != 2 || tl.spanMax != 0.31 {
		t.Errorf("repos %d, longest span %.3f s; want 2 and 0.310", tl.repos, tl.spanMax)
	}
	// 50-150 one body, 150-250 two: 1.5 on average over 200 ms, 2 at most.
	if tl.bodiesAvg != 1.5 || tl.bodiesMax != 2 {
		t.Errorf("upload bodies in flight: %.2f on average, %d at most; want 1.5 and 2", tl.bodiesAvg, tl.bodiesMax)
	}
	want := map[string]int{"GitLab blob upload body (PUT)": 2, "GitLab tag listing (/gitlab/v1/)": 1, "GitLab registry manifest PUT": 1, "ECR registry blob GET": 1, "GitLab registry token (/jwt/auth)": 1}
	for k, n := range want {
		if tl.kinds[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, tl.kinds[k], n, tl.kinds)
		}
	}
	b := &bench{timeline: tl}
	var sb strings.Builder
	b.timelineSection(func(f string, a ...any) { sb.WriteString(strings.TrimSpace(f) + "\n") })
	if !strings.Contains(sb.String(), "The median repository") {
		t.Errorf("no median repository in the section:\n%s", sb.String())
	}
}

package localenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The ECR API proxy counts AWS JSON-protocol calls by the action their
// X-Amz-Target names; requests without the header count only by method, a
// refused (faulted) call still counts, and ResetStats starts over.
func TestProxyCountsAWSActions(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{}"))
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetFault(func(r *http.Request) (int, string, bool) {
		return http.StatusBadRequest, `{"__type":"ThrottlingException"}`, r.Header.Get("X-Amz-Target") == "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
	})

	send := func(target string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, target := range []string{
		"AmazonEC2ContainerRegistry_V20150921.ListImages",
		"AmazonEC2ContainerRegistry_V20150921.ListImages",
		"AmazonEC2ContainerRegistry_V20150921.DescribeImages",
		"GetAuthorizationToken",
		"",
	} {
		send(target)
	}

	st := p.Stats()
	want := map[string]int64{"ListImages": 2, "DescribeImages": 1, "GetAuthorizationToken": 1}
	if len(st.ByAction) != len(want) {
		t.Errorf("ByAction = %v, want %v", st.ByAction, want)
	}
	for action, n := range want {
		if st.ByAction[action] != n {
			t.Errorf("ByAction[%q] = %d, want %d (all: %v)", action, st.ByAction[action], n, st.ByAction)
		}
	}
	if st.Requests != 5 || st.ByMethod[http.MethodPost] != 5 {
		t.Errorf("Requests = %d, ByMethod = %v, want 5 POSTs", st.Requests, st.ByMethod)
	}

	p.ResetStats()
	if st := p.Stats(); st.Requests != 0 || len(st.ByAction) != 0 || len(st.ByMethod) != 0 {
		t.Errorf("after ResetStats: %+v, want nothing counted", st)
	}
}

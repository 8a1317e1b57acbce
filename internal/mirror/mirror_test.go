package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/regclient/regclient/types/errs"
)

func TestClientPoolBoundsRepositoriesPerClient(t *testing.T) {
	ctx := context.Background()
	e := New(Config{GitLabToken: "t", GitLabUser: func(context.Context) string { return "u" }})
	e.AddGitLabRegistry("registry.example.com", false)
	clients := map[any]int{}
	first := map[string]any{}
	for i := range 3*reposPerClient + 1 {
		repo := fmt.Sprintf("registry.example.com/group/project/r%d", i)
		rc, err := e.client(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		clients[rc]++
		first[repo] = rc
	}
	if len(clients) != 4 {
		t.Fatalf("%d clients for %d repositories, want 4", len(clients), 3*reposPerClient+1)
	}
	for rc, n := range clients {
		if n > reposPerClient {
			t.Errorf("client %p serves %d repositories, more than %d", rc, n, reposPerClient)
		}
	}
	// A repository keeps its client; renew replaces it for that repository.
	repo := "registry.example.com/group/project/r0"
	again, _ := e.client(ctx, repo)
	if again != first[repo] {
		t.Fatal("a repository must keep its client")
	}
	renewed, err := e.renew(ctx, repo, again)
	if err != nil || renewed == again {
		t.Fatalf("renew returned the refused client (err %v)", err)
	}
	if now, _ := e.client(ctx, repo); now != renewed {
		t.Fatal("after renew the repository must use the new client")
	}
	// A new GitLab host starts over.
	e.AddGitLabRegistry("other.example.com", false)
	if now, _ := e.client(ctx, repo); now == renewed {
		t.Fatal("a new registry host must rebuild the clients")
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name             string
		err              error
		refused, transit bool
	}{
		{"401", fmt.Errorf("put: %w [http 401]", errs.ErrHTTPUnauthorized), true, false},
		{"403 is final", fmt.Errorf("put: %w [http 403]", errs.ErrHTTPUnauthorized), false, false},
		{"404", fmt.Errorf("get: %w [http 404]", errs.ErrNotFound), false, false},
		{"500 after retries", fmt.Errorf("put: %w: Internal Server Error [http 500]", errs.ErrHTTPStatus), false, true},
		{"400", fmt.Errorf("put: %w: Bad Request [http 400]", errs.ErrHTTPStatus), false, false},
		{"connection reset", fmt.Errorf("put: %w", syscall.ECONNRESET), false, true},
		{"short read", fmt.Errorf("get: %w", io.ErrUnexpectedEOF), false, true},
		{"stream not replayable", fmt.Errorf("blob source is not a seeker%.0w", errs.ErrNotRetryable), false, true},
		{"other", errors.New("manifest invalid"), false, false},
		{"blob stream broke, then 404", transferError{fmt.Errorf("writing blob: %w [http 404]", errs.ErrNotFound)}, false, true},
		{"blob upload denied", transferError{fmt.Errorf("writing blob: %w [http 403]", errs.ErrHTTPUnauthorized)}, false, false},
	}
	for _, tt := range tests {
		if got := tokenRefused(tt.err); got != tt.refused {
			t.Errorf("%s: tokenRefused = %v, want %v", tt.name, got, tt.refused)
		}
		if got := isTransient(tt.err); got != tt.transit {
			t.Errorf("%s: isTransient = %v, want %v", tt.name, got, tt.transit)
		}
	}
}

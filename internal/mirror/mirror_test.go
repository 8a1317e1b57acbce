package mirror

import (
	"context"
	"fmt"
	"testing"
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

package mirror

import (
	"testing"

	"github.com/regclient/regclient/types/ref"
)

func mustRef(t *testing.T, s string) ref.Ref {
	t.Helper()
	r, err := ref.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBlobIndexClaim(t *testing.T) {
	const dig = "sha256:aaaa"
	a := mustRef(t, "registry.example.com/group/project/a")
	b := mustRef(t, "registry.example.com/group/project/b")
	other := mustRef(t, "other.example.com/group/project/c")
	idx := newBlobIndex()

	// Nobody has it: the first claimant copies, a second one waits for it.
	present, from, wait, done := idx.claim(dig, a, false)
	if present || from != nil || wait != nil || done == nil {
		t.Fatalf("first claim: present=%v from=%v wait=%v done=%v; want a copy", present, from, wait, done != nil)
	}
	_, _, wait2, done2 := idx.claim(dig, b, false)
	if wait2 == nil || done2 != nil {
		t.Fatal("second claim while the copy is in flight should wait")
	}
	done(true)
	select {
	case <-wait2:
	default:
		t.Fatal("waiters are not released when the copy ends")
	}

	// Now a holds it: b mounts from a, a itself has it, another registry copies.
	if _, from, _, _ := idx.claim(dig, b, false); from == nil || !ref.EqualRepository(*from, a) {
		t.Fatalf("claim for b: mount from %v, want %s", from, a.CommonName())
	}
	if present, _, _, _ := idx.claim(dig, a, false); !present {
		t.Fatal("claim for a: the blob is there already")
	}
	if _, from, wait, done := idx.claim(dig, other, false); from != nil || wait != nil || done == nil {
		t.Fatal("no mount across registries: the other registry must copy")
	} else {
		done(false)
	}

	// A refused mount copies instead of mounting again.
	if _, from, wait, done := idx.claim(dig, b, true); from != nil || wait != nil || done == nil {
		t.Fatal("after a refused mount the claim must be a copy")
	} else {
		done(true)
	}
	if present, _, _, _ := idx.claim(dig, b, false); !present {
		t.Fatal("a finished copy is remembered for its repository")
	}
}

func TestBlobIndexFailedCopyIsForgotten(t *testing.T) {
	const dig = "sha256:bbbb"
	a := mustRef(t, "registry.example.com/p/a")
	idx := newBlobIndex()
	_, _, _, done := idx.claim(dig, a, false)
	done(false)
	if present, from, wait, done := idx.claim(dig, a, false); present || from != nil || wait != nil || done == nil {
		t.Fatal("a failed copy must leave the blob unclaimed for a retry")
	}
}

func TestBlobIndexEnterOneWorkerPerRepository(t *testing.T) {
	idx := newBlobIndex()
	a := mustRef(t, "registry.example.com/p/a")
	b := mustRef(t, "registry.example.com/p/b")
	wait, leave := idx.enter(a, "sha256:cc")
	if wait != nil || leave == nil {
		t.Fatal("the first worker must enter")
	}
	if w, l := idx.enter(a.SetTag("v1"), "sha256:cc"); w == nil || l != nil {
		t.Fatal("a second worker for the same blob and repository must wait")
	}
	if w, l := idx.enter(b, "sha256:cc"); w != nil || l == nil {
		t.Fatal("another repository is not blocked")
	} else {
		l()
	}
	w2, _ := idx.enter(a, "sha256:cc")
	leave()
	select {
	case <-w2:
	default:
		t.Fatal("waiters are not released when the worker leaves")
	}
	if w, l := idx.enter(a, "sha256:cc"); w != nil || l == nil {
		t.Fatal("after the worker left, the next one enters")
	}
}

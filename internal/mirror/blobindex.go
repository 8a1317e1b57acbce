package mirror

import (
	"slices"
	"sync"

	"github.com/regclient/regclient/types/ref"
)

// blobIndex is the provider-wide map of blob digest -> GitLab repository that
// holds it, and the copies in flight, so each blob leaves ECR once per apply.
type blobIndex struct {
	mu       sync.Mutex
	holders  map[string][]ref.Ref
	inflight map[string]chan struct{} // digest -> stream from the source in flight
	working  map[string]chan struct{} // repository@digest -> a worker placing it there
}

func newBlobIndex() *blobIndex {
	return &blobIndex{holders: map[string][]ref.Ref{}, inflight: map[string]chan struct{}{}, working: map[string]chan struct{}{}}
}

// enter makes the caller the one worker placing dig into repo, or returns a
// channel closed when the current worker leaves.
func (b *blobIndex) enter(repo ref.Ref, dig string) (wait <-chan struct{}, leave func()) {
	key := repo.SetTag("").CommonName() + "@" + dig
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch, ok := b.working[key]; ok {
		return ch, nil
	}
	ch := make(chan struct{})
	b.working[key] = ch
	return nil, func() {
		b.mu.Lock()
		delete(b.working, key)
		b.mu.Unlock()
		close(ch)
	}
}

// holds tells whether this apply placed dig in repo (or saw it there).
func (b *blobIndex) holds(dig string, repo ref.Ref) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.heldIn(dig, repo)
}

// heldIn is holds for a caller that has b.mu.
func (b *blobIndex) heldIn(dig string, repo ref.Ref) bool {
	return slices.ContainsFunc(b.holders[dig], func(r ref.Ref) bool { return ref.EqualRepository(r, repo) })
}

func (b *blobIndex) remember(dig string, repo ref.Ref) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.heldIn(dig, repo) {
		b.holders[dig] = append(b.holders[dig], repo)
	}
}

// claim says what to do with a blob the target lacked when it looked: nothing
// (a concurrent copy into the same repository landed it), mount it from a
// repository of the same registry (from), wait for a copy in flight (wait),
// or copy it now and call done with the outcome.
func (b *blobIndex) claim(dig string, tgt ref.Ref, noMount bool) (present bool, from *ref.Ref, wait <-chan struct{}, done func(ok bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.heldIn(dig, tgt) {
		return true, nil, nil, nil
	}
	if !noMount {
		for _, r := range b.holders[dig] {
			if r.Registry == tgt.Registry {
				return false, &r, nil, nil
			}
		}
	}
	if ch, ok := b.inflight[dig]; ok && !noMount {
		return false, nil, ch, nil
	}
	ch := make(chan struct{})
	b.inflight[dig] = ch
	return false, nil, nil, func(ok bool) {
		b.mu.Lock()
		if b.inflight[dig] == ch {
			delete(b.inflight, dig)
		}
		if ok {
			b.holders[dig] = append(b.holders[dig], tgt)
		}
		b.mu.Unlock()
		close(ch)
	}
}

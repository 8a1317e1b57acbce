package fakegitlab

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// GitLab-managed Terraform state, /api/v4/projects/:id/terraform/state/:name,
// after GitLab's lib/api/terraform/state.rb and Terraform::RemoteStateHandler:
//
//   - GET: 404 for a state never created, 204 for one that exists (a lock
//     creates it) but holds no version yet, else 200 and the latest version;
//   - POST: saves a version (Maintainer); ?ID= must name the current lock, and
//     no ID may be given when the state is not locked; a serial that already
//     exists is refused with 422;
//   - POST /lock: JSON lock info (ID, Operation, Info, Who, Version, Created,
//     Path); 409 and the holder's lock when it is taken;
//   - DELETE /lock: unlock with the lock info body; without an ID (what
//     terraform force-unlock sends) it unlocks whoever holds the lock, with a
//     wrong ID it answers 409.
//
// Reading needs the Developer role, everything else Maintainer (403).

type stateStore struct {
	mu     sync.Mutex
	states map[stateKey]*tfState
}

type stateKey struct {
	project int
	name    string
}

type tfState struct {
	versions  []stateVersion
	lockID    string
	lockedBy  string
	lockedAt  time.Time
	conflicts int // lock requests refused because the state was locked
}

type stateVersion struct {
	serial int64
	data   []byte
}

// StateLock is Terraform's lock info (statemgr.LockInfo) as the API carries it.
type StateLock struct {
	ID        string `json:"ID"`
	Operation string `json:"Operation"`
	Info      string `json:"Info"`
	Who       string `json:"Who"`
	Version   string `json:"Version"`
	Created   string `json:"Created"`
	Path      string `json:"Path"`
}

// TerraformState is what the fake GitLab holds for one state, for tests.
type TerraformState struct {
	Data          []byte // the latest version, nil before the first save
	Serial        int64
	Versions      int
	LockedBy      string // user name of the lock holder, "" when unlocked
	LockConflicts int    // lock requests refused with 409 so far
}

// TerraformState returns the state name of project (path or ID); ok is false
// when it does not exist.
func (g *GitLab) TerraformState(project, name string) (TerraformState, bool) {
	p := g.findProject(project)
	if p == nil {
		return TerraformState{}, false
	}
	g.states.mu.Lock()
	defer g.states.mu.Unlock()
	s := g.states.states[stateKey{p.ID, name}]
	if s == nil {
		return TerraformState{}, false
	}
	out := TerraformState{Versions: len(s.versions), LockedBy: s.lockedBy, LockConflicts: s.conflicts}
	if n := len(s.versions); n > 0 {
		out.Data = append([]byte(nil), s.versions[n-1].data...)
		out.Serial = s.versions[n-1].serial
	}
	return out, true
}

// state finds (create false) or finds or creates a state; call with mu held.
func (s *stateStore) state(k stateKey, create bool) *tfState {
	if st := s.states[k]; st != nil || !create {
		return st
	}
	if s.states == nil {
		s.states = map[stateKey]*tfState{}
	}
	st := &tfState{}
	s.states[k] = st
	return st
}

// lockMatches is RemoteStateHandler#lock_matches?: no ID for an unlocked
// state, else exactly the lock's ID.
func (st *tfState) lockMatches(id string, given bool) bool {
	if st.lockID == "" && !given {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(st.lockID), []byte(id)) == 1
}

func (st *tfState) lockInfo(req StateLock) StateLock {
	req.ID, req.Who, req.Created = st.lockID, st.lockedBy, st.lockedAt.Format(time.RFC3339Nano)
	return req
}

func (g *GitLab) serveState(w http.ResponseWriter, r *http.Request, projectID string, rest []string) {
	who, ok := g.authenticate(r)
	if !ok {
		writeMsg(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	p := g.findProject(projectID)
	if p == nil || who.role(*p) == 0 {
		writeMsg(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	key := stateKey{p.ID, rest[0]}
	lockRoute := len(rest) == 2 && rest[1] == "lock"
	switch {
	case len(rest) == 1 && r.Method == http.MethodGet:
		g.getState(w, key)
	case len(rest) > 2 || len(rest) == 2 && !lockRoute:
		writeMsg(w, http.StatusNotFound, "404 Not Found")
	case r.Method != http.MethodPost && r.Method != http.MethodDelete:
		writeMsg(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	case who.role(*p) < RoleMaintainer:
		writeMsg(w, http.StatusForbidden, "403 Forbidden")
	case len(rest) == 1 && r.Method == http.MethodPost:
		g.saveState(w, r, key)
	case lockRoute && r.Method == http.MethodPost:
		g.lockState(w, r, key, who)
	case lockRoute:
		g.unlockState(w, r, key)
	default:
		writeMsg(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
}

func (g *GitLab) getState(w http.ResponseWriter, key stateKey) {
	g.states.mu.Lock()
	st := g.states.state(key, false)
	var data []byte
	if st != nil && len(st.versions) > 0 {
		data = st.versions[len(st.versions)-1].data
	}
	g.states.mu.Unlock()
	switch {
	case st == nil:
		writeMsg(w, http.StatusNotFound, "404 Not found")
	case data == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(data)
	}
}

func (g *GitLab) saveState(w http.ResponseWriter, r *http.Request, key stateKey) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeMsg(w, http.StatusBadRequest, "400 Bad request")
		return
	}
	if len(data) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var head struct {
		Serial *int64 `json:"serial"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		writeMsg(w, http.StatusUnprocessableEntity, "invalid JSON")
		return
	}
	if head.Serial == nil {
		writeMsg(w, http.StatusUnprocessableEntity, "No serial in payload")
		return
	}
	id, given := r.URL.Query()["ID"]
	g.states.mu.Lock()
	defer g.states.mu.Unlock()
	st := g.states.state(key, true)
	if !st.lockMatches(first(id), given) {
		// RemoteStateHandler raises StateLockedError: the save is refused.
		writeJSON(w, http.StatusConflict, st.lockInfo(StateLock{}))
		return
	}
	for _, v := range st.versions {
		if v.serial == *head.Serial {
			writeMsg(w, http.StatusUnprocessableEntity, "Validation failed: Version has already been taken")
			return
		}
	}
	st.versions = append(st.versions, stateVersion{serial: *head.Serial, data: data})
	w.WriteHeader(http.StatusOK)
}

func (g *GitLab) lockState(w http.ResponseWriter, r *http.Request, key stateKey, who principal) {
	var req StateLock
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" {
		writeMsg(w, http.StatusBadRequest, "400 Bad request - ID is missing")
		return
	}
	g.states.mu.Lock()
	defer g.states.mu.Unlock()
	st := g.states.state(key, true)
	status := http.StatusOK
	if st.lockID != "" {
		st.conflicts++
		status = http.StatusConflict
	} else {
		st.lockID, st.lockedBy, st.lockedAt = req.ID, who.username, time.Now().UTC()
	}
	// GitLab answers with the request's Operation, Info, Version and Path
	// and the holder's ID, Who and Created.
	writeJSON(w, status, st.lockInfo(req))
}

func (g *GitLab) unlockState(w http.ResponseWriter, r *http.Request, key stateKey) {
	// The lock info comes as a JSON body; its ID may also be a query parameter.
	var req StateLock
	_ = json.NewDecoder(r.Body).Decode(&req)
	id, given := req.ID, req.ID != ""
	if q, ok := r.URL.Query()["ID"]; ok && !given {
		id, given = first(q), true
	}
	g.states.mu.Lock()
	defer g.states.mu.Unlock()
	st := g.states.state(key, true)
	if given && !st.lockMatches(id, true) {
		writeJSON(w, http.StatusConflict, st.lockInfo(req))
		return
	}
	st.lockID, st.lockedBy, st.lockedAt = "", "", time.Time{}
	w.WriteHeader(http.StatusOK)
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

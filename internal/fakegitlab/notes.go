package fakegitlab

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Merge requests exist in the fake GitLab only to receive notes:
// POST /projects/:id/merge_requests/:iid/notes with a "body" (form or JSON).
// As in GitLab, a CI job token may not use the merge request API (401): a
// pipeline needs an access token that may comment, Reporter role or more.

type mergeRequests struct {
	mu    sync.Mutex
	iids  map[int]int // project ID -> last iid
	notes []Note
}

// Note is a comment on a merge request.
type Note struct {
	ID      int
	Project string // path_with_namespace
	MRIID   int
	Author  string
	Body    string
}

// OpenMergeRequest opens a merge request in project (path, added if new) and
// returns its iid, as CI_MERGE_REQUEST_IID would carry it.
func (g *GitLab) OpenMergeRequest(project string) int {
	p := g.AddProject(project)
	g.mrs.mu.Lock()
	defer g.mrs.mu.Unlock()
	if g.mrs.iids == nil {
		g.mrs.iids = map[int]int{}
	}
	g.mrs.iids[p.ID]++
	return g.mrs.iids[p.ID]
}

// Notes returns the notes posted on merge request iid of project, oldest first.
func (g *GitLab) Notes(project string, iid int) []Note {
	p := g.findProject(project)
	if p == nil {
		return nil
	}
	g.mrs.mu.Lock()
	defer g.mrs.mu.Unlock()
	var out []Note
	for _, n := range g.mrs.notes {
		if n.Project == p.Path && n.MRIID == iid {
			out = append(out, n)
		}
	}
	return out
}

func (g *GitLab) serveNotes(w http.ResponseWriter, r *http.Request, projectID, iidSeg string) {
	if g.jobTokenOf(r) != nil {
		writeMsg(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	who, ok := g.authenticate(r)
	if !ok {
		writeMsg(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	p := g.findProject(projectID)
	iid, err := strconv.Atoi(iidSeg)
	if p == nil || who.role(*p) == 0 || err != nil || !g.mergeRequestExists(p.ID, iid) {
		writeMsg(w, http.StatusNotFound, "404 Not found")
		return
	}
	if r.Method != http.MethodPost {
		writeMsg(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		return
	}
	body := noteBody(r)
	if strings.TrimSpace(body) == "" {
		writeMsg(w, http.StatusBadRequest, "400 Bad request - body is missing")
		return
	}
	g.mrs.mu.Lock()
	n := Note{ID: len(g.mrs.notes) + 1, Project: p.Path, MRIID: iid, Author: who.username, Body: body}
	g.mrs.notes = append(g.mrs.notes, n)
	g.mrs.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": n.ID, "body": n.Body, "noteable_type": "MergeRequest", "noteable_iid": iid, //nolint:misspell // GitLab's API spells it so
		"author": map[string]any{"username": n.Author}, "system": false,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano),
	})
}

func (g *GitLab) mergeRequestExists(project, iid int) bool {
	g.mrs.mu.Lock()
	defer g.mrs.mu.Unlock()
	return iid >= 1 && iid <= g.mrs.iids[project]
}

// noteBody reads "body" from a JSON, form or query request.
func noteBody(r *http.Request) string {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var v struct {
			Body string `json:"body"`
		}
		_ = json.NewDecoder(r.Body).Decode(&v)
		return v.Body
	}
	return r.FormValue("body")
}

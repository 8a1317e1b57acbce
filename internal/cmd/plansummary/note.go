package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// noteTokenVar holds the access token that posts merge request notes. A CI
// job token cannot: GitLab keeps the merge request API out of its reach.
const noteTokenVar = "IMAGESYNC_NOTE_TOKEN" // #nosec G101 -- the variable's name, not a token

// noteTarget is where a note goes, from the merge request pipeline's variables.
type noteTarget struct {
	APIURL  string // CI_API_V4_URL
	Project string // CI_PROJECT_ID
	MRIID   string // CI_MERGE_REQUEST_IID
	Token   string
}

func noteTargetFromEnv(getenv func(string) string) noteTarget {
	return noteTarget{
		APIURL: getenv("CI_API_V4_URL"), Project: getenv("CI_PROJECT_ID"),
		MRIID: getenv("CI_MERGE_REQUEST_IID"), Token: getenv(noteTokenVar),
	}
}

// skipReason says why no note can be posted, "" when one can.
func (n noteTarget) skipReason() string {
	switch {
	case n.MRIID == "":
		return "merge request note skipped: not a merge request pipeline (CI_MERGE_REQUEST_IID is empty)"
	case n.Token == "":
		return "merge request note skipped: set the masked CI/CD variable " + noteTokenVar +
			" to a project access token (Reporter, api scope) to post this summary on the merge request"
	case n.APIURL == "" || n.Project == "":
		return "merge request note skipped: CI_API_V4_URL or CI_PROJECT_ID is empty"
	}
	return ""
}

// post adds body as a note on the merge request.
func (n noteTarget) post(ctx context.Context, client *http.Client, body string) error {
	payload, err := json.Marshal(map[string]string{"body": body})
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s/projects/%s/merge_requests/%s/notes", strings.TrimSuffix(n.APIURL, "/"),
		url.PathEscape(n.Project), url.PathEscape(n.MRIID))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("PRIVATE-TOKEN", n.Token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting the merge request note: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("posting the merge request note: GitLab answered %s: %s (the token in %s needs the api scope "+
			"and at least the Reporter role on the project)", resp.Status, strings.TrimSpace(string(msg)), noteTokenVar)
	}
	return nil
}

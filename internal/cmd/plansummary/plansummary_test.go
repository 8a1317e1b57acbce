package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixture is real Terraform 1.11 output (ports and paths rewritten) of a
// plan after: web:latest moved and web:v2 pushed in ECR, newrepo created in
// ECR, and team/api:v1 overwritten in GitLab by another image. The provider
// that made it warned "GitLab Tag Will Be Overwritten" for web:latest and
// team/api:v1.
const (
	fixtureShow = "testdata/drift.show.json"
	fixtureLog  = "testdata/drift.plan.log.jsonl"
)

func TestRunOnFixture(t *testing.T) {
	dir := t.TempDir()
	report, md := filepath.Join(dir, "plan.json"), filepath.Join(dir, "summary.md")
	var out bytes.Buffer
	err := run(options{show: fixtureShow, log: fixtureLog, report: report, markdown: md, title: "shard 0 of 1", drift: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]int
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &w) != nil {
		t.Fatalf("report %s: %v %s", report, err, b)
	}
	if want := map[string]int{"create": 1, "update": 2, "delete": 0}; !reflect.DeepEqual(w, want) {
		t.Errorf("widget = %v, want %v", w, want)
	}
	verdict := strings.TrimSpace(out.String())
	for _, want := range []string{
		"Drift: 4 tags in 3 repositories differ between ECR and GitLab:",
		"newrepo:v1 (not in GitLab)",
		"team/api:v1 (GitLab sha256:7e4477bf5a9f, ECR sha256:e2f4b30db0b7)",
		"web:latest (GitLab sha256:d5203957936e, ECR sha256:e8350d903d44)",
		"web:v2 (not in GitLab)",
	} {
		if !strings.Contains(verdict, want) {
			t.Errorf("verdict %q lacks %q", verdict, want)
		}
	}
	if strings.Count(verdict, "\n") != 0 {
		t.Errorf("verdict is more than one line: %q", verdict)
	}
	b, _ := os.ReadFile(md)
	for _, want := range []string{
		"### imagesync plan: shard 0 of 1",
		"| `newrepo` | `v1` | added |  | `sha256:0b5c847a7645` |",
		"| `team/api` | `v1` | changed, overwrites GitLab's | `sha256:7e4477bf5a9f` | `sha256:e2f4b30db0b7` |",
		"| `web` | `latest` | changed, overwrites GitLab's | `sha256:d5203957936e` | `sha256:e8350d903d44` |",
		"| `web` | `v2` | added |  | `sha256:c315671394a6` |",
		"`registry.example.com/migration/images/team/api:v1` holds `sha256:7e4477bf5a9fbf1ef5a27c96a1ae5faa484854a63a94515b83752942cec33bcd`",
		"Merge request widget: 1 to add, 2 to change, 0 to destroy.",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary lacks %q:\n%s", want, b)
		}
	}
	// Unchanged repositories are left out.
	for _, quiet := range []string{"signed/app", "team/worker", "v1.0"} {
		if strings.Contains(string(b), quiet) {
			t.Errorf("summary names %q, which the plan leaves alone", quiet)
		}
	}
}

func TestReadOverwrites(t *testing.T) {
	const a, b = "sha256:" + "aa" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	diag := func(summary, detail, address string) string {
		l, _ := json.Marshal(map[string]any{"type": "diagnostic", "@level": "warn", "diagnostic": map[string]string{
			"severity": "warning", "summary": summary, "detail": detail, "address": address}})
		return string(l)
	}
	detail := "GitLab holds registry.example.com:5050/g/p/web:v1.2-rc_1 at " + a + "; this apply replaces it with " + b + " from ECR. More text."
	log := strings.Join([]string{
		`{"type":"version","terraform":"1.11.4"}`,
		"not JSON: a wrapper's line",
		diag("Provider development overrides are in effect", "whatever", ""),
		diag(overwriteSummary, detail, `imagesync_gitlab_mirrored_image.mirror["web"]`),
		diag(overwriteSummary, strings.Replace(detail, "web:v1.2-rc_1", "api:latest", 1), ""),
	}, "\n")
	got, err := readOverwrites(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []overwrite{
		{Address: `imagesync_gitlab_mirrored_image.mirror["web"]`, Target: "registry.example.com:5050/g/p/web", Tag: "v1.2-rc_1", GitLab: a, ECR: b},
		{Target: "registry.example.com:5050/g/p/api", Tag: "latest", GitLab: a, ECR: b},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("overwrites = %+v\nwant %+v", got, want)
	}

	// The second has no address (an older Terraform): it is matched by target.
	changes := []repoChange{
		{Address: `imagesync_gitlab_mirrored_image.mirror["api"]`, Repository: "api", Target: "registry.example.com:5050/g/p/api"},
		{Address: `imagesync_gitlab_mirrored_image.mirror["web"]`, Repository: "web", Target: "registry.example.com:5050/g/p/web"},
	}
	if loose := attachOverwrites(changes, append(got, overwrite{Target: "elsewhere/x", Tag: "t"})); len(loose) != 1 || loose[0].Target != "elsewhere/x" {
		t.Errorf("loose = %+v, want only the unmatched warning", loose)
	}
	if len(changes[0].Overwrites) != 1 || changes[0].Overwrites[0].Tag != "latest" || len(changes[1].Overwrites) != 1 || changes[1].Overwrites[0].Tag != "v1.2-rc_1" {
		t.Errorf("attached: %+v", changes)
	}

	if _, err := readOverwrites(strings.NewReader(diag(overwriteSummary, "GitLab has web:v1 at something else", "x"))); err == nil {
		t.Error("a warning in another wording was accepted silently")
	}
}

func TestTagChanges(t *testing.T) {
	img := func(images map[string]string) mirroredImage { return mirroredImage{Images: images} }
	d1, d2 := "sha256:1111", "sha256:2222"
	for _, tc := range []struct {
		name          string
		action        string
		before, after mirroredImage
		unknown       bool
		want          []tagChange
	}{
		{"create", "create", mirroredImage{}, img(map[string]string{"b": d1, "a": d2}), false,
			[]tagChange{{Tag: "a", Kind: tagAdded, To: d2}, {Tag: "b", Kind: tagAdded, To: d1}}},
		{"update", "update", img(map[string]string{"same": d1, "moved": d1, "gone": d2}), img(map[string]string{"same": d1, "moved": d2, "new": d1}), false,
			[]tagChange{{Tag: "gone", Kind: tagUnmanaged, From: d2}, {Tag: "moved", Kind: tagChanged, From: d1, To: d2}, {Tag: "new", Kind: tagAdded, To: d1}}},
		{"images known at apply", "update", img(map[string]string{"a": d1}), img(nil), true, nil},
		{"replace starts from nothing", "replace", img(map[string]string{"a": d1}), img(map[string]string{"a": d1}), false,
			[]tagChange{{Tag: "a", Kind: tagAdded, To: d1}}},
		{"destroy keeps images", "delete", img(map[string]string{"a": d1}), mirroredImage{}, false,
			[]tagChange{{Tag: "a", Kind: tagUnmanaged, From: d1}}},
		{"destroy deletes", "delete", mirroredImage{Images: map[string]string{"a": d1}, DeleteOnDestroy: true}, mirroredImage{}, false,
			[]tagChange{{Tag: "a", Kind: tagDeleted, From: d1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tagChanges(tc.action, tc.before, tc.after, tc.unknown); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("tagChanges = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// plan builds a show -json document from resource changes.
func plan(changes ...string) string {
	return `{"format_version":"1.2","resource_changes":[` + strings.Join(changes, ",") + `]}`
}

func change(address, typ, mode string, actions string, before, after string) string {
	return `{"address":` + quote(address) + `,"mode":"` + mode + `","type":"` + typ + `","change":{"actions":[` + actions +
		`],"before":` + before + `,"after":` + after + `,"after_unknown":{}}}`
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestWidgetAndNoChanges(t *testing.T) {
	p, err := readPlan(strings.NewReader(plan(
		change(`imagesync_gitlab_mirrored_image.m["a"]`, mirroredImageType, "managed", `"no-op"`, `{"images":{"t":"sha256:1"}}`, `{"images":{"t":"sha256:1"}}`),
		change(`data.imagesync_ecr_repositories.all`, "imagesync_ecr_repositories", "data", `"read"`, `null`, `{}`),
	)))
	if err != nil {
		t.Fatal(err)
	}
	changes, _, err := repoChanges(p)
	if err != nil {
		t.Fatal(err)
	}
	s := summary{Widget: widgetCounts(p), Changes: changes}
	if s.Widget != (widget{}) || !s.inSync() {
		t.Fatalf("no-op plan: widget %+v, changes %+v", s.Widget, changes)
	}
	if !strings.HasPrefix(s.verdict(), "No drift:") || !strings.HasPrefix(s.headline(), "No changes:") {
		t.Errorf("verdict %q, headline %q", s.verdict(), s.headline())
	}

	p, _ = readPlan(strings.NewReader(plan(
		change(`imagesync_gitlab_mirrored_image.m["a"]`, mirroredImageType, "managed", `"delete","create"`,
			`{"source_repository":"a","images":{"t":"sha256:1"}}`, `{"source_repository":"a","images":{"t":"sha256:1"}}`),
		change(`imagesync_gitlab_mirrored_image.m["b"]`, mirroredImageType, "managed", `"delete"`, `{"source_repository":"b","images":{}}`, `null`),
		change(`terraform_data.x`, "terraform_data", "managed", `"update"`, `{}`, `{}`),
	)))
	if got, want := widgetCounts(p), (widget{Create: 1, Update: 1, Delete: 2}); got != want {
		t.Errorf("widget = %+v, want %+v (a replace counts as create and delete)", got, want)
	}
	changes, _, _ = repoChanges(p)
	s = summary{Changes: changes}
	if v := s.verdict(); !strings.Contains(v, "a:t (not in GitLab)") || !strings.Contains(v, "b (delete)") || !strings.Contains(v, "terraform_data.x (update)") {
		t.Errorf("verdict %q names not every change", v)
	}

	// A reshard imports: a no-op import is listed by name, an import with
	// changes as a change.
	imp := func(c string) string { return strings.Replace(c, `"change":{`, `"change":{"importing":{"id":"x"},`, 1) }
	p, _ = readPlan(strings.NewReader(plan(
		imp(change(`imagesync_gitlab_mirrored_image.m["b"]`, mirroredImageType, "managed", `"no-op"`, `{"source_repository":"b","images":{"t":"sha256:1"}}`, `{"source_repository":"b","images":{"t":"sha256:1"}}`)),
		imp(change(`imagesync_gitlab_mirrored_image.m["a"]`, mirroredImageType, "managed", `"update"`, `{"source_repository":"a","images":{"t":"sha256:1"}}`, `{"source_repository":"a","images":{"t":"sha256:2"}}`)),
	)))
	changes, imports, _ := repoChanges(p)
	s = summary{Changes: changes, Imports: imports}
	if len(changes) != 1 || !changes[0].Imported || !reflect.DeepEqual(imports, []string{"b"}) {
		t.Fatalf("changes %+v imports %v", changes, imports)
	}
	if h := s.headline(); !strings.Contains(h, "1 to update, 0 to remove, 2 to import; 0 tags to add, 1 to change") {
		t.Errorf("headline %q", h)
	}
	if md := s.markdown(); !strings.Contains(md, "Imported into this state, every tag as in ECR: `b`.") || !strings.Contains(md, "| `a` (imported) | `t` | changed |") {
		t.Errorf("markdown:\n%s", md)
	}

	if _, err := readPlan(strings.NewReader(`{"resource_changes":[]}`)); err == nil {
		t.Error("a document without format_version was taken for a plan")
	}
}

func TestVerdictIsBounded(t *testing.T) {
	var r repoChange
	r.Repository = "big"
	for i := range 30 {
		r.Tags = append(r.Tags, tagChange{Tag: "t" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Kind: tagAdded})
	}
	v := summary{Changes: []repoChange{r}}.verdict()
	if !strings.Contains(v, "30 tags in 1 repository") || !strings.Contains(v, "and 10 more") || strings.Count(v, "(not in GitLab)") != maxVerdictTags {
		t.Errorf("verdict = %q", v)
	}
}

func TestNote(t *testing.T) {
	var got struct {
		path, token, body string
	}
	status := http.StatusCreated
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]string
		_ = json.NewDecoder(r.Body).Decode(&v)
		got.path, got.token, got.body = r.URL.EscapedPath(), r.Header.Get("PRIVATE-TOKEN"), v["body"]
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"message":"401 Unauthorized"}`)
	}))
	defer srv.Close()
	env := map[string]string{"CI_API_V4_URL": srv.URL + "/api/v4", "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7", noteTokenVar: "glpat-x"}
	target := noteTargetFromEnv(func(k string) string { return env[k] })
	if r := target.skipReason(); r != "" {
		t.Fatalf("skipped: %s", r)
	}
	if err := target.post(t.Context(), srv.Client(), "### summary"); err != nil {
		t.Fatal(err)
	}
	if got.path != "/api/v4/projects/42/merge_requests/7/notes" || got.token != "glpat-x" || got.body != "### summary" {
		t.Errorf("request: %+v", got)
	}
	status = http.StatusUnauthorized
	if err := target.post(t.Context(), srv.Client(), "x"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a refused note: err = %v", err)
	}
	delete(env, noteTokenVar)
	if r := noteTargetFromEnv(func(k string) string { return env[k] }).skipReason(); !strings.Contains(r, noteTokenVar) || strings.Contains(r, "\n") {
		t.Errorf("skip line without a token: %q", r)
	}
}

func TestDiagnostics(t *testing.T) {
	log := `{"type":"version"}
{"type":"diagnostic","diagnostic":{"severity":"error","summary":"Cannot Read Tags From the GitLab Registry","detail":"Refreshing failed.\nCheck the token.","address":"imagesync_gitlab_mirrored_image.mirror[\"web\"]"}}
{"type":"diagnostic","diagnostic":{"severity":"warning","summary":"Deprecated","detail":""}}
`
	var out bytes.Buffer
	if err := writeDiagnostics(strings.NewReader(log), &out); err != nil {
		t.Fatal(err)
	}
	want := "Error: Cannot Read Tags From the GitLab Registry\n  with imagesync_gitlab_mirrored_image.mirror[\"web\"]\n  Refreshing failed.\n  Check the token.\n\nWarning: Deprecated\n\n"
	if out.String() != want {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", out.String(), want)
	}
}

package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// Private state keys.
const (
	// privateCopied holds copiedDigests as JSON.
	privateCopied = "copied_digests"
	// privateAdopt marks a resource just imported: its first refresh adopts
	// the tags GitLab holds as the resource's own.
	privateAdopt = "adopt_on_read"
	// privatePlatforms holds, as JSON, the platform manifests inside each
	// planned digest (see mirror.Referrers.Platforms).
	privatePlatforms = "platforms"
)

// copiedDigests maps each tag to the digest this resource put there (or
// adopted at import), so destroy deletes a tag only while it still holds it.
type copiedDigests map[string]string

type privateGetter interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

type privateState interface {
	privateGetter
	privateSetter
}

// readPlatforms is what earlier plans learnt of the platforms inside each
// digest; nil when nothing usable is recorded (it is only a cache: what is
// missing is read from ECR again).
func readPlatforms(ctx context.Context, p privateGetter) map[string][]string {
	raw, diags := p.GetKey(ctx, privatePlatforms)
	var out map[string][]string
	if len(raw) == 0 || diags.HasError() || json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// recordPlatforms records the platforms of the digests GitLab holds for m,
// as the plan does; manifests the copy just read come from the registry
// client's cache. Failing, it records nothing: the next plan reads them.
func (r *mirroredImageResource) recordPlatforms(ctx context.Context, m mirroredImageModel, p privateSetter) {
	images := map[string]string{}
	if !m.CopyReferrers.ValueBool() || m.Images.ElementsAs(ctx, &images, false).HasError() || len(images) == 0 {
		return
	}
	source, err := r.sourceReference(ctx, m)
	if err == nil {
		var platforms map[string][]string
		if platforms, err = r.data.engine.Platforms(ctx, source, uniqueValues(images), nil); err == nil {
			savePlatforms(ctx, p, platforms)
			return
		}
	}
	tflog.Debug(ctx, "platforms not recorded; the next plan reads them from ECR", map[string]any{"error": r.data.redactor.String(err.Error())})
}

// savePlatforms records the platforms of the planned digests, so a no-op
// plan does not read every manifest from ECR again.
func savePlatforms(ctx context.Context, p privateSetter, platforms map[string][]string) diag.Diagnostics {
	raw, err := json.Marshal(platforms)
	if err != nil {
		return nil // a map of strings always encodes; without the record the next plan reads ECR again
	}
	return p.SetKey(ctx, privatePlatforms, raw)
}

func readCopied(ctx context.Context, p privateGetter) (copiedDigests, diag.Diagnostics) {
	out := copiedDigests{}
	raw, diags := p.GetKey(ctx, privateCopied)
	if len(raw) == 0 || diags.HasError() {
		return out, diags
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		diags.AddWarning("Unreadable Private State", "The record of which digests this resource copied could not be read; "+
			"destroy will keep every tag. Original Error: "+err.Error())
	}
	return out, diags
}

func (c copiedDigests) save(ctx context.Context, p privateSetter) diag.Diagnostics {
	raw, err := json.Marshal(c)
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Cannot Record the Copied Digests", err.Error())
		return diags
	}
	return p.SetKey(ctx, privateCopied, raw)
}

// adoptAfterImport records, on the first refresh after an import, the tags
// GitLab holds as copied by this resource: importing says they are its own.
func adoptAfterImport(ctx context.Context, from privateGetter, to privateSetter, m mirroredImageModel) diag.Diagnostics {
	marker, diags := from.GetKey(ctx, privateAdopt)
	if diags.HasError() || len(marker) == 0 {
		return diags
	}
	held := copiedDigests{}
	diags.Append(m.Images.ElementsAs(ctx, &held, false)...)
	diags.Append(held.save(ctx, to)...)
	diags.Append(to.SetKey(ctx, privateAdopt, nil)...)
	return diags
}

// ImportState takes <source_repository>:<gitlab_project>[:<target_image>],
// optionally prefixed with <source_registry_id>:.
func (r *mirroredImageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	m, problem := parseImportID(req.ID)
	if problem != "" {
		resp.Diagnostics.AddError("Invalid Import ID",
			fmt.Sprintf("The import ID %q %s. Use <source_repository>:<gitlab_project>:<target_image>, e.g. "+
				"\"team/api:platform/images:team/api\" (the target image may be left out when it equals the source), "+
				"prefixed with <source_registry_id>: for a repository of another AWS account.", req.ID, problem))
		return
	}
	// A project that is not there fails the import by name; the refresh that
	// follows could only report the object gone.
	if r.data != nil && r.data.gitlabUsable(nil) {
		ctx = r.data.logContext(ctx)
		if _, err := r.data.gitlab.Project(ctx, m.GitLabProject.ValueString()); err != nil {
			resp.Diagnostics.Append(projectDiag(m.GitLabProject.ValueString(), err, r.data.redactor))
			return
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateAdopt, []byte("true"))...)
}

// parseImportID builds the imported state, or says what is wrong with id.
func parseImportID(id string) (mirroredImageModel, string) {
	if strings.Contains(id, "://") {
		return mirroredImageModel{}, "contains a URL; name the GitLab project by its path (group/project) or numeric ID, not its URL"
	}
	parts := strings.Split(id, importIDSeparator)
	registryID := ""
	if len(parts) == 4 {
		if !accountIDPattern.MatchString(parts[0]) {
			return mirroredImageModel{}, fmt.Sprintf("starts with %q, which is not a 12-digit AWS account ID (the source_registry_id)", parts[0])
		}
		registryID, parts = parts[0], parts[1:]
	}
	if len(parts) == 2 {
		parts = append(parts, parts[0])
	}
	if problem := importPartsProblem(parts); problem != "" {
		return mirroredImageModel{}, problem
	}
	m := mirroredImageModel{
		ID:                    types.StringValue(id),
		SourceRepository:      types.StringValue(parts[0]),
		SourceRegistryID:      types.StringNull(),
		GitLabProject:         types.StringValue(parts[1]),
		TargetImage:           types.StringValue(parts[2]),
		Images:                types.MapNull(types.StringType),
		TagRegex:              types.StringNull(),
		CopyReferrers:         types.BoolValue(true),
		ReferrerArtifactTypes: types.ListNull(types.StringType),
		DeleteOnDestroy:       types.BoolValue(false),
		TargetReference:       types.StringNull(),
		Referrers:             types.MapNull(referrersType.ElemType),
		CopyBytes:             types.StringNull(),
		Timeouts:              timeouts.Value{Object: types.ObjectNull(timeoutAttrTypes())},
	}
	if registryID != "" {
		m.SourceRegistryID = types.StringValue(registryID)
	}
	m.ID = types.StringValue(mirroredImageID(m))
	return m, ""
}

func importPartsProblem(parts []string) string {
	switch {
	case len(parts) != 3:
		return fmt.Sprintf("has %d parts separated by %q, not 2 or 3", len(parts), importIDSeparator)
	case parts[0] == "" || parts[1] == "" || parts[2] == "":
		return "has an empty part"
	case !ecrNamePattern.MatchString(parts[0]):
		return fmt.Sprintf("names the source repository %q, which is not an ECR repository name (lowercase, e.g. team/api)", parts[0])
	case !projectPathPattern.MatchString(parts[1]) && !numericIDPattern.MatchString(parts[1]):
		problem := fmt.Sprintf("names the GitLab project %q, which is neither a project path (group/project) nor a numeric ID", parts[1])
		if accountIDPattern.MatchString(parts[0]) {
			problem += fmt.Sprintf("; if %q is the source_registry_id, the target image cannot be left out: give all four parts", parts[0])
		}
		return problem
	}
	if problem, suggestion := targetImageProblem(parts[2]); problem != "" {
		return fmt.Sprintf("names the target image %q, which %s (e.g. %q)", parts[2], problem, suggestion)
	}
	return ""
}

// mirroredImageID is the resource's ID, the same form import takes.
func mirroredImageID(m mirroredImageModel) string {
	parts := []string{m.SourceRepository.ValueString(), m.GitLabProject.ValueString(), m.TargetImage.ValueString()}
	if id := m.SourceRegistryID.ValueString(); id != "" {
		parts = append([]string{id}, parts...)
	}
	return strings.Join(parts, importIDSeparator)
}

func timeoutAttrTypes() map[string]attr.Type {
	return map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType}
}

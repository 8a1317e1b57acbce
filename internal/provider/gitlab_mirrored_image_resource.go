package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
)

var (
	_ resource.ResourceWithConfigure   = (*mirroredImageResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*mirroredImageResource)(nil)
	_ resource.ResourceWithImportState = (*mirroredImageResource)(nil)
)

const (
	defaultCreateTimeout = 60 * time.Minute
	defaultUpdateTimeout = 60 * time.Minute
	defaultDeleteTimeout = 10 * time.Minute
	// importIDSeparator joins source, project and image in the import ID; none of them can contain it.
	importIDSeparator = ":"
)

func newMirroredImageResource() resource.Resource { return &mirroredImageResource{} }

type mirroredImageResource struct {
	data *providerData
}

type mirroredImageModel struct {
	ID               types.String   `tfsdk:"id"`
	SourceRepository types.String   `tfsdk:"source_repository"`
	GitLabProject    types.String   `tfsdk:"gitlab_project"`
	TargetImage      types.String   `tfsdk:"target_image"`
	Images           types.Map      `tfsdk:"images"`
	TagRegex         types.String   `tfsdk:"tag_regex"`
	CopyReferrers    types.Bool     `tfsdk:"copy_referrers"`
	DeleteOnDestroy  types.Bool     `tfsdk:"delete_on_destroy"`
	TargetReference  types.String   `tfsdk:"target_reference"`
	Timeouts         timeouts.Value `tfsdk:"timeouts"`
}

func (r *mirroredImageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_gitlab_mirrored_image"
}

func (r *mirroredImageResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Mirrors one ECR repository into one image path of a GitLab project's container registry. " +
			"The plan lists, per tag, the digest that will be copied; apply copies only tags whose digest in GitLab " +
			"differs, byte for byte (whole multi-platform indexes, signatures and SBOMs included), so GitLab's digests " +
			"equal ECR's. Refresh reads each managed tag's digest from GitLab, so drift on either side shows as a " +
			"per-tag diff, and a plan with no changes proves the migration complete.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "`<source_repository>:<gitlab_project>:<target_image>`, the same form `terraform import` takes.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_repository": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Name of the ECR repository to mirror, e.g. `team/api` (not its URI). Changing it replaces the resource.",
				Validators:          []validator.String{ecrRepositoryValidator{}},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"gitlab_project": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "GitLab project whose registry receives the images: its full path (`group/subgroup/project`) or numeric ID. Changing it replaces the resource.",
				Validators:          []validator.String{gitlabProjectValidator{}},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"target_image": schema.StringAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "Image name below the project's registry path, e.g. `api` gives `registry.example.com/group/project/api`. " +
					"Default: `source_repository`. GitLab allows at most two path segments below the project, each lowercase " +
					"letters and digits separated by `.`, `_`, `__` or `-`; checked at plan time. Changing it replaces the resource.",
				Validators:    []validator.String{targetImageValidator{}},
				PlanModifiers: []planmodifier.String{defaultTargetImage{}, stringplanmodifier.RequiresReplace()},
			},
			"images": schema.MapAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				MarkdownDescription: "Tag -> digest. In configuration, the tags to mirror and the digest each must have, usually " +
					"`each.value.images` from `imagesync_ecr_repositories`; every digest is checked against ECR at plan time. " +
					"Left out, the plan takes every tag of the source (filtered by `tag_regex`) from ECR. In state, what GitLab " +
					"actually holds for those tags: a tag missing in GitLab is absent, a tag with another digest shows that digest.",
				Validators: []validator.Map{
					mapvalidator.KeysAre(stringvalidator.RegexMatches(tagPattern, "must be a tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")),
					mapvalidator.ValueStringsAre(stringvalidator.RegexMatches(digestPattern, "must be a digest such as sha256:<64 hex digits>")),
				},
			},
			"tag_regex": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "When `images` is left out, only source tags matching this regular expression (Go RE2 syntax, " +
					"unanchored) are mirrored, e.g. `^v[0-9]+\\\\.` for release tags. Default: every tag.",
				Validators: []validator.String{regexValidator{}, stringvalidator.ConflictsWith(path.MatchRoot("images"))},
			},
			"copy_referrers": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
				MarkdownDescription: "Also copy the artifacts that refer to each copied digest (signatures, SBOMs, attestations), " +
					"through the OCI referrers API, or the `sha256-<digest>` tag scheme where a registry lacks it. Default `true`.",
			},
			"delete_on_destroy": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "On destroy, delete the tags this resource manages from GitLab, one by one by tag (never a " +
					"manifest by digest, which would take other tags with it). Default `false`: destroy keeps the images.",
			},
			"target_reference": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "Full reference of the image in GitLab's registry, e.g. `registry.example.com/group/project/api`.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

// defaultTargetImage plans target_image as source_repository when it is not
// configured, before RequiresReplace compares it with state.
type defaultTargetImage struct{}

func (defaultTargetImage) Description(context.Context) string {
	return "defaults to source_repository"
}

func (d defaultTargetImage) MarkdownDescription(ctx context.Context) string {
	return d.Description(ctx)
}

func (defaultTargetImage) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() {
		return
	}
	var source types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("source_repository"), &source)...)
	if source.IsUnknown() || source.IsNull() {
		return
	}
	resp.PlanValue = source
}

func (r *mirroredImageResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected Resource Configure Type",
			fmt.Sprintf("Expected *providerData, got %T. Please report this issue to the provider developers.", req.ProviderData))
		return
	}
	r.data = data
}

// ModifyPlan puts the source's tags and digests into the plan, so a reviewer
// sees per tag what will be copied, and refuses digests ECR does not hold.
func (r *mirroredImageResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, config mirroredImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if config.TargetImage.IsNull() && !plan.TargetImage.IsUnknown() {
		if problem, suggestion := targetImageProblem(plan.TargetImage.ValueString()); problem != "" {
			resp.Diagnostics.AddAttributeError(path.Root("target_image"), "Invalid Target Image Name",
				fmt.Sprintf("target_image is not set, so it defaults to source_repository %q, which %s. "+
					"Set target_image to a name GitLab accepts, for example: target_image = %q.",
					plan.TargetImage.ValueString(), problem, suggestion))
			return
		}
	}
	if plan.ID.IsUnknown() && !plan.SourceRepository.IsUnknown() && !plan.GitLabProject.IsUnknown() && !plan.TargetImage.IsUnknown() {
		plan.ID = types.StringValue(strings.Join([]string{plan.SourceRepository.ValueString(), plan.GitLabProject.ValueString(), plan.TargetImage.ValueString()}, importIDSeparator))
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), plan.ID)...)
	}
	if plan.SourceRepository.IsUnknown() || plan.Images.IsUnknown() && !config.Images.IsNull() || plan.TagRegex.IsUnknown() {
		return // known only at apply; Create and Update look the source up then
	}
	source := plan.SourceRepository.ValueString()

	if config.Images.IsNull() {
		filter, err := compileOptional(plan.TagRegex)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("tag_regex"), "Invalid Regular Expression", err.Error())
			return
		}
		tags, err := r.data.ecr.Tags(ctx, "", source, filter)
		if err != nil {
			resp.Diagnostics.Append(sourceDiag(source, err))
			return
		}
		images, diags := types.MapValueFrom(ctx, types.StringType, tags)
		resp.Diagnostics.Append(diags...)
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("images"), images)...)
		return
	}

	// Configured digests must be what ECR holds, else apply could not copy them.
	want := map[string]types.String{}
	resp.Diagnostics.Append(config.Images.ElementsAs(ctx, &want, false)...)
	if resp.Diagnostics.HasError() {
		return
	}
	tags, err := r.data.ecr.Tags(ctx, "", source, nil)
	if err != nil {
		resp.Diagnostics.Append(sourceDiag(source, err))
		return
	}
	for _, tag := range sortedKeys(want) {
		dig := want[tag]
		if dig.IsUnknown() || dig.IsNull() {
			continue
		}
		have, ok := tags[tag]
		switch {
		case !ok:
			resp.Diagnostics.AddAttributeError(path.Root("images").AtMapKey(tag), "Tag Not in ECR",
				fmt.Sprintf("The ECR repository %q has no tag %q, so digest %s cannot be copied for it. Remove the tag "+
					"from images, or push it to ECR first.", source, tag, dig.ValueString()))
		case have != dig.ValueString():
			resp.Diagnostics.AddAttributeError(path.Root("images").AtMapKey(tag), "Digest Not in ECR for This Tag",
				fmt.Sprintf("The ECR repository %q has tag %q at digest %s, not the planned %s. Use the digest ECR "+
					"holds (images = data.imagesync_ecr_repositories.<name>.repositories[*].images gives it), then plan again.",
					source, tag, have, dig.ValueString()))
		}
	}
}

func compileOptional(s types.String) (ecr.Matcher, error) {
	if s.IsNull() || s.ValueString() == "" {
		return nil, nil
	}
	re, err := regexp.Compile(s.ValueString())
	if err != nil {
		return nil, err
	}
	return re, nil
}

func sourceDiag(source string, err error) diag.Diagnostic {
	if errors.Is(err, ecr.ErrRepositoryNotFound) {
		return diag.NewAttributeErrorDiagnostic(path.Root("source_repository"), "ECR Repository Not Found",
			fmt.Sprintf("The ECR repository %q does not exist in the configured registry. Check the name, the provider's "+
				"ecr.region and ecr.registry_id.\n\nOriginal Error: %s", source, err))
	}
	return diag.NewErrorDiagnostic("Cannot Read the ECR Repository", ecrErrorDetail(fmt.Sprintf("listing the tags of %q", source), err))
}

func (r *mirroredImageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	r.write(ctx, req.Plan, nil, &resp.State, &resp.Diagnostics, func(t timeouts.Value) (time.Duration, diag.Diagnostics) {
		return t.Create(ctx, defaultCreateTimeout)
	})
}

func (r *mirroredImageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	r.write(ctx, req.Plan, &req.State, &resp.State, &resp.Diagnostics, func(t timeouts.Value) (time.Duration, diag.Diagnostics) {
		return t.Update(ctx, defaultUpdateTimeout)
	})
}

// write is Create (prior nil) and Update. State is written only from what
// GitLab was seen to hold; when apply stops before that, a created resource
// is not recorded and an updated one keeps its prior state.
func (r *mirroredImageResource) write(ctx context.Context, plan tfsdk.Plan, prior *tfsdk.State, state *tfsdk.State, diags *diag.Diagnostics,
	timeout func(timeouts.Value) (time.Duration, diag.Diagnostics)) {
	var m mirroredImageModel
	diags.Append(plan.Get(ctx, &m)...)
	if diags.HasError() {
		return
	}
	d, tdiags := timeout(m.Timeouts)
	diags.Append(tdiags...)
	if diags.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	seen, adiags := r.apply(ctx, &m)
	diags.Append(adiags...)
	if !seen {
		if prior != nil {
			state.Raw = prior.Raw
		}
		return
	}
	diags.Append(state.Set(ctx, &m)...)
}

// apply copies the planned tags and leaves in m what GitLab holds afterwards.
// Tags that failed are reported one diagnostic each and keep their GitLab
// digest. seen is false when it stopped before reading GitLab's tags, and m
// then says nothing about GitLab.
func (r *mirroredImageResource) apply(ctx context.Context, m *mirroredImageModel) (seen bool, diags diag.Diagnostics) {
	if r.data.gitlabErr != "" {
		diags.AddError("GitLab Token Missing", r.data.gitlabErr)
		return false, diags
	}
	source := m.SourceRepository.ValueString()
	image := m.TargetImage.ValueString()
	m.ID = types.StringValue(strings.Join([]string{source, m.GitLabProject.ValueString(), image}, importIDSeparator))

	project, err := r.data.gitlab.Project(ctx, m.GitLabProject.ValueString())
	if err != nil {
		diags.Append(projectDiag(m.GitLabProject.ValueString(), err))
		return false, diags
	}
	r.data.engine.AddGitLabRegistry(project.RegistryHost, project.Insecure)
	target := project.ImageReference(image)
	m.TargetReference = types.StringValue(target)

	want := map[string]string{}
	if m.Images.IsUnknown() || m.Images.IsNull() {
		filter, err := compileOptional(m.TagRegex)
		if err == nil {
			want, err = r.data.ecr.Tags(ctx, "", source, filter)
		}
		if err != nil {
			diags.Append(sourceDiag(source, err))
			return false, diags
		}
	} else {
		diags.Append(m.Images.ElementsAs(ctx, &want, false)...)
	}
	cred, err := r.data.ecr.Credential(ctx)
	if err != nil {
		diags.AddError("Cannot Log In to the ECR Registry", ecrErrorDetail("getting the registry token", err))
		return false, diags
	}
	sourceRef := cred.Host + "/" + source

	current, err := r.data.engine.Digests(ctx, target, sortedKeys(want))
	if err != nil {
		diags.AddError("Cannot Read Tags From the GitLab Registry",
			fmt.Sprintf("Reading the digests of %s before copying failed. Check that the token may read and write the "+
				"project's registry (scopes api or read_registry and write_registry).\n\nOriginal Error: %s", target, err))
		return false, diags
	}

	start := time.Now()
	res := r.data.engine.Copy(ctx, mirror.Request{
		Source: sourceRef, Target: target, Want: want, Current: current,
		CopyReferrers: m.CopyReferrers.ValueBool(),
	})
	held := make(map[string]string, len(want))
	for tag, dig := range res.Landed {
		held[tag] = dig
	}
	for _, tag := range sortedKeys(res.Failed) {
		if d, ok := current[tag]; ok {
			held[tag] = d // GitLab still holds its old digest for this tag
		}
		diags.AddAttributeError(path.Root("images").AtMapKey(tag), "Tag Copy Failed",
			fmt.Sprintf("Copying %s:%s (%s) to %s:%s failed; the tags that landed are recorded in state and the next "+
				"apply copies only what is still missing.\n\nOriginal Error: %s", sourceRef, tag, want[tag], target, tag, res.Failed[tag]))
	}
	m.Images = mapValue(held)
	tflog.Info(ctx, "mirrored repository", map[string]any{
		"source": sourceRef, "target": target, "tags": len(want), "tags_copied": res.Stats.Tags,
		"tags_unchanged": len(want) - len(res.Failed) - res.Stats.Tags, "tags_failed": len(res.Failed),
		"digests_copied": res.Stats.Digests, "bytes": res.Stats.Bytes, "blobs_copied": res.Stats.BlobsCopied,
		"blobs_mounted": res.Stats.BlobsMounted, "blobs_skipped": res.Stats.BlobsSkipped, "seconds": time.Since(start).Seconds(),
	})
	return true, diags
}

func projectDiag(project string, err error) diag.Diagnostic {
	switch {
	case errors.Is(err, gitlab.ErrNotFound):
		return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_project"), "GitLab Project Not Found",
			fmt.Sprintf("GitLab has no project %q that the token can see. Check the path (as in the project's URL) or ID, "+
				"and that the token's user is a member with at least the Developer role.\n\nOriginal Error: %s", project, err))
	case errors.Is(err, gitlab.ErrRegistryDisabled):
		return diag.NewAttributeErrorDiagnostic(path.Root("gitlab_project"), "GitLab Container Registry Disabled",
			fmt.Sprintf("The project %q has its container registry turned off. Enable it under Settings > General > "+
				"Visibility, project features, permissions.\n\nOriginal Error: %s", project, err))
	}
	return diag.NewErrorDiagnostic("Cannot Look Up the GitLab Project",
		fmt.Sprintf("Looking up project %q failed. Check gitlab.base_url and the token.\n\nOriginal Error: %s", project, err))
}

func (r *mirroredImageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state mirroredImageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data.gitlabErr != "" {
		resp.Diagnostics.AddError("GitLab Token Missing", r.data.gitlabErr)
		return
	}
	target := state.TargetReference.ValueString()
	var tags []string
	if state.Images.IsNull() {
		// After import: the managed tags are the source's.
		all, err := r.data.ecr.Tags(ctx, "", state.SourceRepository.ValueString(), nil)
		if err != nil {
			resp.Diagnostics.Append(sourceDiag(state.SourceRepository.ValueString(), err))
			return
		}
		tags = sortedKeys(all)
	} else {
		held := map[string]string{}
		resp.Diagnostics.Append(state.Images.ElementsAs(ctx, &held, false)...)
		tags = sortedKeys(held)
	}
	// The API is asked whether the project and image exist only when the
	// registry cannot answer for them: no target yet (import), or no tags.
	checked := target == "" || len(tags) == 0
	if checked {
		gone := r.lookUpTarget(ctx, &state, &resp.Diagnostics)
		if gone {
			resp.State.RemoveResource(ctx)
			return
		}
		if resp.Diagnostics.HasError() {
			return
		}
		target = state.TargetReference.ValueString()
	} else {
		host, _, _ := strings.Cut(target, "/")
		r.data.engine.AddGitLabRegistry(host, r.data.gitlab.InsecureRegistry(host))
	}

	digests, err := r.data.engine.Digests(ctx, target, tags)
	if err != nil {
		resp.Diagnostics.AddError("Cannot Read Tags From the GitLab Registry",
			fmt.Sprintf("Refreshing the digests of %s failed; the resource is kept in state. Check the token's registry "+
				"access and the network.\n\nOriginal Error: %s", target, err))
		return
	}
	if len(digests) == 0 && !checked {
		// Every tag is missing: only a missing project or image means the resource is gone.
		if r.lookUpTarget(ctx, &state, &resp.Diagnostics) {
			tflog.Info(ctx, "GitLab project or image is gone; removing from state", map[string]any{"target": target})
			resp.State.RemoveResource(ctx)
			return
		}
		if resp.Diagnostics.HasError() {
			return
		}
	}
	state.Images = mapValue(digests)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// lookUpTarget asks the GitLab API for the project and image. It reports true
// when either is gone; any other failure is a diagnostic.
func (r *mirroredImageResource) lookUpTarget(ctx context.Context, m *mirroredImageModel, diags *diag.Diagnostics) bool {
	project, err := r.data.gitlab.Project(ctx, m.GitLabProject.ValueString())
	if errors.Is(err, gitlab.ErrNotFound) {
		return true
	}
	if err != nil {
		diags.Append(projectDiag(m.GitLabProject.ValueString(), err))
		return false
	}
	r.data.engine.AddGitLabRegistry(project.RegistryHost, project.Insecure)
	m.TargetReference = types.StringValue(project.ImageReference(m.TargetImage.ValueString()))
	if project.Assumed {
		return false // the API cannot tell; never conclude "gone" from that
	}
	if _, err := r.data.gitlab.RepositoryID(ctx, project, m.TargetImage.ValueString()); err != nil {
		if errors.Is(err, gitlab.ErrNotFound) {
			return true
		}
		diags.AddError("Cannot List GitLab Registry Repositories", fmt.Sprintf("Checking that image %q exists in project %q failed.\n\nOriginal Error: %s",
			m.TargetImage.ValueString(), m.GitLabProject.ValueString(), err))
	}
	return false
}

func (r *mirroredImageResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state mirroredImageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !state.DeleteOnDestroy.ValueBool() {
		tflog.Info(ctx, "keeping the images in GitLab (delete_on_destroy = false)", map[string]any{"target": state.TargetReference.ValueString()})
		return
	}
	if r.data.gitlabErr != "" {
		resp.Diagnostics.AddError("GitLab Token Missing", r.data.gitlabErr)
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	project, err := r.data.gitlab.Project(ctx, state.GitLabProject.ValueString())
	if errors.Is(err, gitlab.ErrNotFound) {
		return // the project and its images are gone already
	}
	if err != nil {
		resp.Diagnostics.Append(projectDiag(state.GitLabProject.ValueString(), err))
		return
	}
	repoID, err := r.data.gitlab.RepositoryID(ctx, project, state.TargetImage.ValueString())
	if errors.Is(err, gitlab.ErrNotFound) {
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Cannot Find the GitLab Image", fmt.Sprintf("Looking up image %q in project %q failed.\n\nOriginal Error: %s",
			state.TargetImage.ValueString(), project.PathWithNamespace, err))
		return
	}
	held := map[string]string{}
	resp.Diagnostics.Append(state.Images.ElementsAs(ctx, &held, false)...)
	remaining := map[string]string{}
	for _, tag := range sortedKeys(held) {
		if err := r.data.gitlab.DeleteTag(ctx, project, repoID, tag); err != nil {
			remaining[tag] = held[tag]
			resp.Diagnostics.AddAttributeError(path.Root("images").AtMapKey(tag), "Cannot Delete Tag",
				fmt.Sprintf("Deleting tag %q of %s failed; it stays in state so the next destroy retries it. The token needs "+
					"the Maintainer role to delete tags.\n\nOriginal Error: %s", tag, state.TargetReference.ValueString(), err))
			continue
		}
		tflog.Info(ctx, "deleted tag", map[string]any{"target": state.TargetReference.ValueString(), "tag": tag})
	}
	if resp.Diagnostics.HasError() {
		state.Images = mapValue(remaining)
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
	}
}

func (r *mirroredImageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	parts := strings.Split(req.ID, importIDSeparator)
	if len(parts) == 2 {
		parts = append(parts, parts[0])
	}
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		resp.Diagnostics.AddError("Invalid Import ID",
			fmt.Sprintf("The import ID %q is not of the form <source_repository>:<gitlab_project>:<target_image>, e.g. "+
				"\"team/api:platform/images:team/api\" (the target image may be left out when it equals the source).", req.ID))
		return
	}
	m := mirroredImageModel{
		ID:               types.StringValue(strings.Join(parts, importIDSeparator)),
		SourceRepository: types.StringValue(parts[0]),
		GitLabProject:    types.StringValue(parts[1]),
		TargetImage:      types.StringValue(parts[2]),
		Images:           types.MapNull(types.StringType),
		TagRegex:         types.StringNull(),
		CopyReferrers:    types.BoolValue(true),
		DeleteOnDestroy:  types.BoolValue(false),
		TargetReference:  types.StringNull(),
		Timeouts:         timeouts.Value{Object: types.ObjectNull(timeoutAttrTypes())},
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func timeoutAttrTypes() map[string]attr.Type {
	return map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType}
}

func mapValue(m map[string]string) types.Map {
	v, _ := types.MapValueFrom(context.Background(), types.StringType, m)
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
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
	ID                    types.String   `tfsdk:"id"`
	SourceRepository      types.String   `tfsdk:"source_repository"`
	SourceRegistryID      types.String   `tfsdk:"source_registry_id"`
	GitLabProject         types.String   `tfsdk:"gitlab_project"`
	TargetImage           types.String   `tfsdk:"target_image"`
	Images                types.Map      `tfsdk:"images"`
	TagRegex              types.String   `tfsdk:"tag_regex"`
	CopyReferrers         types.Bool     `tfsdk:"copy_referrers"`
	ReferrerArtifactTypes types.List     `tfsdk:"referrer_artifact_types"`
	DeleteOnDestroy       types.Bool     `tfsdk:"delete_on_destroy"`
	TargetReference       types.String   `tfsdk:"target_reference"`
	Referrers             types.Map      `tfsdk:"referrers"`
	CopyBytes             types.String   `tfsdk:"copy_bytes"`
	Timeouts              timeouts.Value `tfsdk:"timeouts"`
}

// referrersType is the type of the referrers attribute: subject digest ->
// referrer digests.
var (
	referrersType    = types.MapType{ElemType: referrerListType}
	referrerListType = types.ListType{ElemType: types.StringType}
)

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
				MarkdownDescription: "`<source_repository>:<gitlab_project>:<target_image>`, prefixed with `<source_registry_id>:` when that is set: the same form `terraform import` takes.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_repository": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Name of the ECR repository to mirror, e.g. `team/api` (not its URI). Changing it replaces the resource.",
				Validators:          []validator.String{ecrRepositoryValidator{}},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"source_registry_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "AWS account ID of the ECR registry that holds `source_repository`, for a repository in another " +
					"account (the data source's `registry_id`). Default: the provider's `ecr.registry_id`, else the caller's account. " +
					"The provider's identity needs the read-only ECR actions on that registry (a repository policy, or `ecr.assume_role`). " +
					"Changing it replaces the resource.",
				Validators:    []validator.String{stringvalidator.RegexMatches(accountIDPattern, "must be a 12-digit AWS account ID such as 123456789012")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"gitlab_project": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "GitLab project whose registry receives the images: its full path (`group/subgroup/project`) or numeric ID. " +
					"Looked up at plan time: a project that does not exist, or whose container registry is off, fails the plan. " +
					"Changing it replaces the resource.",
				Validators:    []validator.String{gitlabProjectValidator{}},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
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
					"Left out, the plan takes every tag of the source (filtered by `tag_regex`) from ECR, leaving out with a warning " +
					"the tags GitLab cannot hold (longer than 128 characters, or `sha256-<hex>` naming another digest). In state, what " +
					"GitLab actually holds for those tags: a tag missing in GitLab is absent, a tag with another digest shows that digest. " +
					"A tag GitLab already holds with another digest is named in a plan warning before it is overwritten.",
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
				MarkdownDescription: "Also copy the artifacts that refer to each mirrored digest and to every platform manifest " +
					"inside a multi-platform index (signatures, SBOMs, attestations, e.g. from `cosign sign --recursive`), and the " +
					"artifacts that refer to those in turn, including those added in ECR after the digest was mirrored; see " +
					"`referrers` and `referrer_artifact_types`. They are read from ECR's OCI referrers API (or the `sha256-<hex>` " +
					"fallback tag, when it is an index) and pushed to GitLab by digest, subject first: GitLab has no referrers API " +
					"and reads a `sha256-<hex>` reference as a digest. On a registry that keeps such tags as tags, the fallback tags " +
					"are written too. Default `true`.",
			},
			"referrer_artifact_types": schema.ListAttribute{
				ElementType: types.StringType,
				Optional:    true,
				MarkdownDescription: "With `copy_referrers`, copy only the referrers of these artifact types (and the referrers of " +
					"those in turn), as regsync's `referrerFilters` do, e.g. `[\"application/vnd.dev.cosign.simplesigning.v1+json\"]` " +
					"for cosign signatures without SBOMs or attestations. A referrer's artifact type is its manifest's `artifactType`, " +
					"or its config's media type when it has none, as the OCI referrers API reports it. Each must be a media type " +
					"(`type/subtype`); checked at plan time. Default (unset or empty): every referrer.",
				Validators: []validator.List{
					listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(stringvalidator.RegexMatches(mediaTypePattern, "must be a media type such as application/spdx+json")),
				},
			},
			"delete_on_destroy": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "On destroy, delete from GitLab the tags this resource copied, one by one by tag (never a " +
					"manifest by digest, which would take other tags with it), and only while GitLab still holds the digest the " +
					"resource copied: a tag pushed again in GitLab since is kept, with a warning naming it. Default `false`: destroy " +
					"keeps the images.",
			},
			"target_reference": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "Full reference of the image in GitLab's registry, e.g. `registry.example.com/group/project/api`; known at plan time.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"referrers": schema.MapAttribute{
				ElementType: referrerListType,
				Computed:    true,
				MarkdownDescription: "With `copy_referrers`, subject digest -> digests of the artifacts that refer to it (signatures, " +
					"SBOMs, attestations, and theirs in turn); subjects are the tagged digests, the platform manifests inside an " +
					"index, and referrers. In the plan, what ECR holds for the planned digests; in state, those " +
					"GitLab holds (checked by digest at refresh). A signature added in ECR later shows here as a change. Null " +
					"when `copy_referrers` is `false`.",
			},
			"copy_bytes": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: copyBytesDescription,
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeoutsBlock(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
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

func (r *mirroredImageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = r.data.logContext(ctx)
	var m mirroredImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	timeout, diags := m.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	copied, gitlabRead := r.mirrorImages(ctx, &m, copiedDigests{}, &resp.Diagnostics)
	if !gitlabRead {
		return // nothing is known about GitLab: the resource is not created
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	resp.Diagnostics.Append(copied.save(ctx, resp.Private)...)
	// Create, unlike Update, gets none of the private state the plan wrote;
	// after a failure ECR may not answer, and the next plan reads them.
	if !resp.Diagnostics.HasError() {
		r.recordPlatforms(ctx, m, resp.Private)
	}
}

func (r *mirroredImageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = r.data.logContext(ctx)
	var m mirroredImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	timeout, diags := m.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	prior, diags := readCopied(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	copied, gitlabRead := r.mirrorImages(ctx, &m, prior, &resp.Diagnostics)
	if !gitlabRead {
		resp.State.Raw = req.State.Raw // GitLab was not read: the prior state stands
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	resp.Diagnostics.Append(copied.save(ctx, resp.Private)...)
}

func (r *mirroredImageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.logContext(ctx)
	var m mirroredImageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !r.data.gitlabUsable(&resp.Diagnostics) {
		return
	}
	gone := r.readGitLab(ctx, &m, &resp.Diagnostics)
	switch {
	case gone:
		resp.State.RemoveResource(ctx)
	case !resp.Diagnostics.HasError():
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		resp.Diagnostics.Append(adoptAfterImport(ctx, req.Private, resp.Private, m)...)
	}
}

func (r *mirroredImageResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.logContext(ctx)
	var m mirroredImageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !m.DeleteOnDestroy.ValueBool() {
		tflog.Info(ctx, "keeping the images in GitLab (delete_on_destroy = false)", map[string]any{"target": m.TargetReference.ValueString()})
		return
	}
	if !r.data.gitlabUsable(&resp.Diagnostics) {
		// Nothing was deleted: the prior state stands, images and all
		// (images = null would make the next refresh adopt every tag GitLab holds).
		return
	}
	timeout, diags := m.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	copied, cdiags := readCopied(ctx, req.Private)
	resp.Diagnostics.Append(cdiags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if remaining, failed := r.deleteCopiedTags(ctx, m, copied, &resp.Diagnostics); failed {
		m.Images = mapValue(remaining)
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
	}
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
)

var (
	_ datasource.DataSource                   = (*ecrRepositoriesDataSource)(nil)
	_ datasource.DataSourceWithConfigure      = (*ecrRepositoriesDataSource)(nil)
	_ datasource.DataSourceWithValidateConfig = (*ecrRepositoriesDataSource)(nil)
)

func newECRRepositoriesDataSource() datasource.DataSource { return &ecrRepositoriesDataSource{} }

type ecrRepositoriesDataSource struct {
	data *providerData
}

type ecrRepositoriesModel struct {
	RegistryID   types.String `tfsdk:"registry_id"`
	Names        types.List   `tfsdk:"names"`
	NamePrefix   types.String `tfsdk:"name_prefix"`
	NameRegex    types.String `tfsdk:"name_regex"`
	ExcludeRegex types.String `tfsdk:"exclude_regex"`
	TagRegex     types.String `tfsdk:"tag_regex"`
	ShardIndex   types.Int64  `tfsdk:"shard_index"`
	ShardCount   types.Int64  `tfsdk:"shard_count"`
	// The image details and the filters on them (ecr_repositories_details.go).
	IncludeDetails types.Bool   `tfsdk:"include_details"`
	PushedAfter    types.String `tfsdk:"pushed_after"`
	MostRecent     types.Int64  `tfsdk:"most_recent"`
	// How gitlab_image folds names deeper than GitLab allows.
	GitLabImageSeparator types.String `tfsdk:"gitlab_image_separator"`
	Repositories         types.List   `tfsdk:"repositories"`
}

var repositoryAttrTypes = map[string]attr.Type{
	"name":           types.StringType,
	"uri":            types.StringType,
	"arn":            types.StringType,
	"registry_id":    types.StringType,
	"created_at":     types.StringType,
	"tag_mutability": types.StringType,
	"images":         types.MapType{ElemType: types.StringType},
	"gitlab_image":   types.StringType,
	"image_details":  types.MapType{ElemType: types.ObjectType{AttrTypes: imageDetailAttrTypes}},
	"size_bytes":     types.Int64Type,
	"last_pulled_at": types.StringType,
}

func (d *ecrRepositoriesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ecr_repositories"
}

func (d *ecrRepositoriesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	regex := []validator.String{regexValidator{}}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists ECR repositories with their tags and digests, sorted by name, for a `for_each` of " +
			"`imagesync_gitlab_mirrored_image`. Filters combine: a repository is listed when it passes every filter set. " +
			"Uses only `ecr:DescribeRepositories` and `ecr:ListImages`, and `ecr:DescribeImages` for the image details and the " +
			"filters on push times.",
		Attributes: map[string]schema.Attribute{
			"registry_id": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "AWS account ID of the registry to list. Default: the provider's `ecr.registry_id`, else the caller's account.",
				Validators:          []validator.String{stringvalidator.RegexMatches(accountIDPattern, "must be a 12-digit AWS account ID such as 123456789012")},
			},
			"names": schema.ListAttribute{
				ElementType:         types.StringType,
				Optional:            true,
				MarkdownDescription: "Exact repository names to list, e.g. `[\"team/api\", \"web\"]`. A name that does not exist is an error.",
				Validators:          []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(ecrRepositoryValidator{})},
			},
			"name_prefix": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only repositories whose name starts with this, e.g. `team/`.",
			},
			"name_regex": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only repositories whose name matches this regular expression (Go RE2 syntax, unanchored), e.g. `^team/`.",
				Validators:          regex,
			},
			"exclude_regex": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Leave out repositories whose name matches this regular expression, e.g. `-(test|tmp)$`.",
				Validators:          regex,
			},
			"tag_regex": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Only tags matching this regular expression appear in `images`, e.g. `^v[0-9]+` for release tags. Repositories stay listed when no tag matches.",
				Validators:          regex,
			},
			"shard_index": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "Which shard to list, from `0` to `shard_count - 1`, e.g. `2`. Default `0`. `shard_count` says which repositories a shard holds.",
				Validators:          []validator.Int64{int64validator.AtLeast(0)},
			},
			"shard_count": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "Into how many shards the repositories are split, e.g. `8` for eight states each " +
					"planned by its own CI job. Default `1`: every repository. " + shardDescription,
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"include_details": schema.BoolAttribute{
				Optional: true,
				MarkdownDescription: "Also read what ECR records about each image (`ecr:DescribeImages`, one call per 1,000 images " +
					"of a repository): `image_details`, `size_bytes` and `last_pulled_at` of each repository. Default `false`: " +
					"they are null.",
			},
			"pushed_after": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Only images pushed to ECR after this time, an RFC 3339 timestamp such as " +
					"`2025-01-01T00:00:00Z`. Applied after `tag_regex`, to whole images: every tag of a kept image is kept. " +
					"Reads the push times with `ecr:DescribeImages`.",
				Validators: []validator.String{rfc3339Validator{}},
			},
			"most_recent": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "Only the N most recently pushed images of each repository, e.g. `5`, after `tag_regex` and " +
					"`pushed_after`; every tag of a kept image is kept. Reads the push times with `ecr:DescribeImages`.",
				Validators: []validator.Int64{int64validator.AtLeast(1)},
			},
			"gitlab_image_separator": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "What joins the leading path levels of a repository name deeper than GitLab allows, in " +
					"`gitlab_image`: `org/team/service/api` becomes `org-team-service/api` with the default `-`. One of `.`, " +
					"`_`, `__` or a run of `-`.",
				Validators: []validator.String{imageSeparatorValidator{}},
			},
			"repositories": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The repositories found, sorted by name.",
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"name":           schema.StringAttribute{Computed: true, MarkdownDescription: "Repository name, e.g. `team/api`."},
						"uri":            schema.StringAttribute{Computed: true, MarkdownDescription: "Repository URI, `<account>.dkr.ecr.<region>.amazonaws.com/<name>`."},
						"arn":            schema.StringAttribute{Computed: true, MarkdownDescription: "Repository ARN."},
						"registry_id":    schema.StringAttribute{Computed: true, MarkdownDescription: "AWS account ID that owns the repository."},
						"created_at":     schema.StringAttribute{Computed: true, MarkdownDescription: "Creation time, RFC 3339."},
						"tag_mutability": schema.StringAttribute{Computed: true, MarkdownDescription: "`MUTABLE` or `IMMUTABLE` (or an `_WITH_EXCLUSION` variant)."},
						"images": schema.MapAttribute{
							ElementType: types.StringType,
							Computed:    true,
							MarkdownDescription: "Tag -> digest of every tagged image (after `tag_regex`); untagged images are left out, and so, " +
								"with a warning naming them, are tags GitLab cannot hold (over 128 characters, which ECR allows up to 300, " +
								"or of the form `sha256-<hex>` naming another digest), and images that `pushed_after` or " +
								"`most_recent` leave out.",
						},
						"gitlab_image": schema.StringAttribute{
							Computed: true,
							MarkdownDescription: "An image name below a GitLab project that GitLab accepts, for `target_image`: the " +
								"repository name when GitLab takes it (at most two path levels), else the leading levels joined " +
								"by `gitlab_image_separator` (`org/team/service/api` -> `org-team-service/api`). Two repositories " +
								"that would share a name fail the read, naming both.",
						},
						"image_details": schema.MapNestedAttribute{
							Computed: true,
							MarkdownDescription: "With `include_details`: per tag in `images`, what ECR records about its image: " +
								"`digest`, `size_bytes` (as ECR counts it: the compressed layers), `pushed_at` and `last_pulled_at` " +
								"(RFC 3339; null when ECR recorded no pull). ECR records pull times with a delay of up to a day, " +
								"so they are approximate. Null without `include_details`.",
							NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
								"digest":         schema.StringAttribute{Computed: true, MarkdownDescription: "Image digest."},
								"size_bytes":     schema.Int64Attribute{Computed: true, MarkdownDescription: "Image size in bytes, as ECR reports it."},
								"pushed_at":      schema.StringAttribute{Computed: true, MarkdownDescription: "When the image was pushed to ECR, RFC 3339."},
								"last_pulled_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When ECR last recorded a pull of the image, RFC 3339; null if never."},
							}},
						},
						"size_bytes": schema.Int64Attribute{
							Computed: true,
							MarkdownDescription: "With `include_details`: the sizes of all the repository's images added up, as ECR reports them " +
								"(a layer shared by several images counted in each). Null without. What a copy reads from ECR is the " +
								"resource's `copy_bytes`, known at plan.",
						},
						"last_pulled_at": schema.StringAttribute{
							Computed: true,
							MarkdownDescription: "With `include_details`: the latest pull ECR recorded of any image of the repository, " +
								"tagged or not and whatever the filters (approximate, see `image_details`), RFC 3339; null if none " +
								"or without `include_details`. The switch-off check (guide: Running the migration in GitLab CI) warns " +
								"when it is after the cut-over.",
						},
					},
				},
			},
		},
	}
}

// shardDescription documents the hash exactly, so that users and other tools
// can tell which shard a repository belongs to.
const shardDescription = "A repository belongs to shard `fnv1a32(name) % shard_count`: the 32-bit FNV-1a hash " +
	"of the repository name's UTF-8 bytes (offset basis 2166136261, prime 16777619), as an unsigned number, " +
	"modulo `shard_count`. The other filters apply first; the shard of a name never depends on which other " +
	"repositories exist, so adding a repository never moves another one."

// shardOf is the shard of a repository name (see shardDescription).
func shardOf(name string, count int64) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum32()) % count
}

// shardRepositories keeps, in order, the repositories of one shard.
func shardRepositories(repos []ecr.Repository, index, count int64) []ecr.Repository {
	if count <= 1 {
		return repos
	}
	var kept []ecr.Repository
	for _, r := range repos {
		if shardOf(r.Name, count) == index {
			kept = append(kept, r)
		}
	}
	return kept
}

// ValidateConfig checks shard_index against shard_count; each alone is
// checked by its validator.
func (d *ecrRepositoriesDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var index, count types.Int64
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("shard_index"), &index)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("shard_count"), &count)...)
	if resp.Diagnostics.HasError() || index.IsUnknown() || count.IsUnknown() || index.IsNull() {
		return
	}
	n := int64(1)
	if !count.IsNull() {
		n = count.ValueInt64()
	}
	if i := index.ValueInt64(); n >= 1 && i >= n {
		resp.Diagnostics.AddAttributeError(path.Root("shard_index"), "Shard Index Out of Range",
			fmt.Sprintf("shard_index is %d, but with shard_count = %d the shards are numbered 0 to %d. Set shard_index "+
				"below shard_count, or raise shard_count (it defaults to 1 when left out).", i, n, n-1))
	}
}

func (d *ecrRepositoriesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected Data Source Configure Type",
			fmt.Sprintf("Expected *providerData, got %T. Please report this issue to the provider developers.", req.ProviderData))
		return
	}
	d.data = data
}

func (d *ecrRepositoriesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = d.data.logContext(ctx)
	var m ecrRepositoriesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	f := filterOf(ctx, m, &resp.Diagnostics)
	sel := selectionOf(m, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	repos, err := d.data.ecr.DescribeRepositories(ctx, f)
	if err != nil {
		resp.Diagnostics.Append(listingDiag(f, err))
		return
	}
	// Image names are checked over every shard: two repositories that would
	// share a name may sit in different shards of one GitLab project.
	sep := defaultImageSeparator
	if v := m.GitLabImageSeparator.ValueString(); v != "" {
		sep = v
	}
	names, shared := gitlabImageNames(repositoryNames(repos), sep)
	if len(shared) > 0 {
		resp.Diagnostics.Append(sharedImageNamesDiag(shared, sep))
		return
	}
	// The shard is chosen before any tag is listed: a shard costs ECR only
	// its own repositories' ListImages calls.
	repos = shardRepositories(repos, m.ShardIndex.ValueInt64(), m.ShardCount.ValueInt64())
	details, err := d.listImages(ctx, repos, f, sel)
	if err != nil {
		resp.Diagnostics.Append(listingDiag(f, err))
		return
	}
	tflog.Debug(ctx, "listed ECR repositories", map[string]any{"count": len(repos),
		"shard_index": m.ShardIndex.ValueInt64(), "shard_count": m.ShardCount.ValueInt64()})
	list, diags := repositoriesValue(repos, names, details, sel)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.Repositories = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// listImages fills in each repository's tags and, when the selection needs
// them, describes its images.
func (d *ecrRepositoriesDataSource) listImages(ctx context.Context, repos []ecr.Repository, f ecr.Filter, sel imageSelection) (map[string][]ecr.ImageDetail, error) {
	if err := d.data.ecr.ListTagsOf(ctx, repos, f.TagRegex); err != nil {
		return nil, err
	}
	if !sel.needsDetails() {
		return nil, nil
	}
	return d.data.ecr.DetailsOf(ctx, repos)
}

func repositoryNames(repos []ecr.Repository) []string {
	names := make([]string, len(repos))
	for i, r := range repos {
		names[i] = r.Name
	}
	return names
}

// filterOf turns the configuration into the ECR listing's filter.
func filterOf(ctx context.Context, m ecrRepositoriesModel, diags *diag.Diagnostics) ecr.Filter {
	f := ecr.Filter{RegistryID: m.RegistryID.ValueString(), NamePrefix: m.NamePrefix.ValueString()}
	if !m.Names.IsNull() {
		diags.Append(m.Names.ElementsAs(ctx, &f.Names, false)...)
	}
	for _, r := range []struct {
		attr string
		val  types.String
		dst  *ecr.Matcher
	}{{"name_regex", m.NameRegex, &f.NameRegex}, {"exclude_regex", m.ExcludeRegex, &f.Exclude}, {"tag_regex", m.TagRegex, &f.TagRegex}} {
		if r.val.IsNull() {
			continue
		}
		re, err := regexp.Compile(r.val.ValueString())
		if err != nil { // the validator catches this first; kept for values known only at apply
			diags.AddAttributeError(path.Root(r.attr), "Invalid Regular Expression", err.Error())
			continue
		}
		*r.dst = re
	}
	return f
}

// selectionOf reads the details and the filters on them from the configuration.
func selectionOf(m ecrRepositoriesModel, diags *diag.Diagnostics) imageSelection {
	sel := imageSelection{includeDetails: m.IncludeDetails.ValueBool(), mostRecent: int(m.MostRecent.ValueInt64())}
	if v := m.PushedAfter.ValueString(); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil { // the validator catches this first; kept for values known only at apply
			diags.AddAttributeError(path.Root("pushed_after"), "Invalid Timestamp", err.Error())
		}
		sel.pushedAfter = t
	}
	return sel
}

func listingDiag(f ecr.Filter, err error) diag.Diagnostic {
	if errors.Is(err, ecr.ErrRepositoryNotFound) {
		return diag.NewAttributeErrorDiagnostic(path.Root("names"), "ECR Repository Not Found",
			fmt.Sprintf("A repository named in names does not exist in the registry (names: %s). Check the spelling and "+
				"the provider's region and registry_id, or remove the name.\n\nOriginal Error: %s", strings.Join(f.Names, ", "), err))
	}
	return diag.NewErrorDiagnostic("Cannot List ECR Repositories", ecrErrorDetail("listing repositories and their tags", err))
}

// repositoriesValue converts the listing, leaving out (with a warning per
// repository) the tags GitLab cannot hold, so that images = each.value.images
// always plans, and the images the selection's filters leave out.
func repositoriesValue(repos []ecr.Repository, names map[string]string, details map[string][]ecr.ImageDetail, sel imageSelection) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	objs := make([]attr.Value, 0, len(repos))
	for _, r := range repos {
		kept, leftOut := mirrorableTags(r.Images)
		if len(leftOut) > 0 {
			diags.Append(leftOutWarning(path.Root("repositories"), r.Name, leftOut))
		}
		if sel.needsDetails() {
			kept = keepImages(kept, details[r.Name], sel)
		}
		created := ""
		if !r.CreatedAt.IsZero() {
			created = r.CreatedAt.UTC().Format(time.RFC3339)
		}
		attrs, d := repositoryDetails(kept, details[r.Name], sel.includeDetails)
		diags.Append(d...)
		maps.Copy(attrs, map[string]attr.Value{
			"name": types.StringValue(r.Name), "uri": types.StringValue(r.URI), "arn": types.StringValue(r.ARN),
			"registry_id": types.StringValue(r.RegistryID), "created_at": types.StringValue(created),
			"tag_mutability": types.StringValue(r.TagMutability), "images": mapValue(kept),
			"gitlab_image": types.StringValue(names[r.Name]),
		})
		obj, d := types.ObjectValue(repositoryAttrTypes, attrs)
		diags.Append(d...)
		objs = append(objs, obj)
	}
	list, d := types.ListValue(types.ObjectType{AttrTypes: repositoryAttrTypes}, objs)
	diags.Append(d...)
	return list, diags
}

// ecrErrorDetail explains an ECR failure with what to check.
func ecrErrorDetail(doing string, err error) string {
	hint := "Check the AWS credentials, region and network access to the ECR API."
	if network, ok := networkHint(mirror.SideECR, err); ok {
		hint = network
	} else if ecr.IsAccessDenied(err) {
		hint = "The AWS identity lacks a permission. The provider needs only these read-only actions: " +
			"ecr:GetAuthorizationToken, ecr:BatchCheckLayerAvailability, ecr:GetDownloadUrlForLayer, " +
			"ecr:DescribeRepositories, ecr:ListImages, ecr:DescribeImages, ecr:BatchGetImage."
	}
	return fmt.Sprintf("Error while %s. %s\n\nOriginal Error: %s", doing, hint, err)
}

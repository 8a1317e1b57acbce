package provider

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// ModifyPlan makes the plan say exactly what apply will do: the GitLab
// target (the project is looked up now, so a wrong one fails the plan), the
// source's tags and digests, the referrers to copy, and a warning for every
// tag GitLab holds with another digest that apply would overwrite.
func (r *mirroredImageResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	ctx = r.data.logContext(ctx)
	var plan, config mirroredImageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	var prior *mirroredImageModel
	if !req.State.Raw.IsNull() {
		prior = &mirroredImageModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	if resp.Diagnostics.HasError() || !r.checkDefaultTargetImage(plan, config, &resp.Diagnostics) {
		return
	}
	if plan.ID.IsUnknown() && !plan.SourceRepository.IsUnknown() && !plan.GitLabProject.IsUnknown() && !plan.TargetImage.IsUnknown() && !plan.SourceRegistryID.IsUnknown() {
		plan.ID = types.StringValue(mirroredImageID(plan))
	}
	in := planInput{config: config, prior: prior, private: resp.Private}
	steps := []func(context.Context, *mirroredImageModel, planInput, *diag.Diagnostics){
		r.planTarget, r.planImages, r.planReferrers, r.planCopyBytes,
	}
	for _, step := range steps {
		if step(ctx, &plan, in, &resp.Diagnostics); resp.Diagnostics.HasError() {
			return
		}
	}
	r.warnOverwrites(ctx, plan, prior, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// planInput is what each planning step may consult besides the plan.
type planInput struct {
	config mirroredImageModel
	prior  *mirroredImageModel // nil for a new resource
	// private is the resource's private state as the plan leaves it.
	private privateState
}

// ecrUnreadable plans what ECR should have told as unknown, with a warning,
// when a resource that exists already cannot list its ECR repository's tags
// (ECR switched off, throttled, the repository deleted): the plan still shows
// a change, so a drift check is never green without ECR, while refresh,
// destroy (whose first step is such a plan) and removal keep working. A new
// resource gets the error, and so does a connection the configuration must
// fix (an untrusted certificate, a proxy's refusal): no later apply gets past it.
// Once the tags are known, a later ECR failure in the plan is an error:
// Terraform plans again at apply, and a value known in the first plan may
// not turn unknown there.
func ecrUnreadable(plan *mirroredImageModel, in planInput, diags *diag.Diagnostics, err error, errDiag diag.Diagnostic) {
	f, connFailed := network.Explain(err)
	if in.prior == nil || !in.prior.SourceRepository.Equal(plan.SourceRepository) || connFailed && f.NeedsSettingsChange() {
		diags.Append(errDiag)
		return
	}
	diags.AddWarning("ECR Not Readable: Source Tags Unknown Until Apply",
		fmt.Sprintf("The ECR repository %q could not be read, so this plan cannot say which tags and digests to copy: "+
			"images and referrers are known only at apply, which fails too unless ECR answers then. Refresh and destroy "+
			"need only GitLab.\n\n%s: %s", plan.SourceRepository.ValueString(), errDiag.Summary(), errDiag.Detail()))
	plan.Images = types.MapUnknown(types.StringType)
	plan.Referrers = types.MapUnknown(referrersType.ElemType)
}

// checkDefaultTargetImage refuses a source name GitLab cannot take as the
// default image name, saying what to set instead.
func (r *mirroredImageResource) checkDefaultTargetImage(plan, config mirroredImageModel, diags *diag.Diagnostics) bool {
	if !config.TargetImage.IsNull() || plan.TargetImage.IsUnknown() {
		return true
	}
	problem, suggestion := targetImageProblem(plan.TargetImage.ValueString())
	if problem == "" {
		return true
	}
	diags.AddAttributeError(path.Root("target_image"), "Invalid Target Image Name",
		fmt.Sprintf("target_image is not set, so it defaults to source_repository %q, which %s. "+
			"Set target_image to a name GitLab accepts, for example: target_image = %q.",
			plan.TargetImage.ValueString(), problem, suggestion))
	return false
}

// planTarget looks the project up (once per plan, however many resources
// share it) and plans target_reference.
func (r *mirroredImageResource) planTarget(ctx context.Context, plan *mirroredImageModel, _ planInput, diags *diag.Diagnostics) {
	if plan.GitLabProject.IsUnknown() || plan.TargetImage.IsUnknown() || !r.data.gitlabUsable(nil) {
		return
	}
	r.lookUpProject(ctx, plan, missingIsError, diags)
}

// planImages puts the source's tags into the plan, or checks the configured
// ones against ECR.
func (r *mirroredImageResource) planImages(ctx context.Context, plan *mirroredImageModel, in planInput, diags *diag.Diagnostics) {
	if plan.SourceRepository.IsUnknown() || plan.SourceRegistryID.IsUnknown() || plan.TagRegex.IsUnknown() || (plan.Images.IsUnknown() && !in.config.Images.IsNull()) {
		return // known only at apply, which looks the source up then
	}
	if !in.config.Images.IsNull() {
		r.checkConfiguredImages(ctx, *plan, in.config, diags)
		return
	}
	images, leftOut, err := r.sourceImages(ctx, *plan)
	if err != nil {
		ecrUnreadable(plan, in, diags, err, sourceDiag(plan.SourceRepository.ValueString(), err))
		return
	}
	if len(leftOut) > 0 {
		diags.Append(leftOutWarning(path.Root("images"), plan.SourceRepository.ValueString(), leftOut))
	}
	plan.Images = mapValue(images)
}

// sourceImages lists the source's mirrorable tags, filtered by tag_regex.
func (r *mirroredImageResource) sourceImages(ctx context.Context, m mirroredImageModel) (map[string]string, []string, error) {
	var filter ecr.Matcher
	if re := m.TagRegex.ValueString(); re != "" {
		compiled, err := regexp.Compile(re)
		if err != nil {
			return nil, nil, err
		}
		filter = compiled
	}
	tags, err := r.data.ecr.Tags(ctx, m.SourceRegistryID.ValueString(), m.SourceRepository.ValueString(), filter)
	if err != nil {
		return nil, nil, err
	}
	images, leftOut := mirrorableTags(tags)
	return images, leftOut, nil
}

// checkConfiguredImages refuses digests ECR does not hold for their tag,
// and tags GitLab cannot hold: apply could not copy them.
func (r *mirroredImageResource) checkConfiguredImages(ctx context.Context, plan, config mirroredImageModel, diags *diag.Diagnostics) {
	want := map[string]types.String{}
	diags.Append(config.Images.ElementsAs(ctx, &want, false)...)
	if diags.HasError() {
		return
	}
	source := plan.SourceRepository.ValueString()
	tags, err := r.data.ecr.Tags(ctx, plan.SourceRegistryID.ValueString(), source, nil)
	if err != nil {
		diags.Append(sourceDiag(source, err))
		return
	}
	for _, tag := range slices.Sorted(maps.Keys(want)) {
		if dig := want[tag]; !dig.IsUnknown() && !dig.IsNull() {
			diags.Append(configuredDigestProblem(source, tag, dig.ValueString(), tags)...)
		}
	}
}

func configuredDigestProblem(source, tag, dig string, ecrTags map[string]string) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("images").AtMapKey(tag)
	have, ok := ecrTags[tag]
	switch {
	case !ok:
		diags.AddAttributeError(at, "Tag Not in ECR",
			fmt.Sprintf("The ECR repository %q has no tag %q, so digest %s cannot be copied for it. Remove the tag "+
				"from images, or push it to ECR first.", source, tag, dig))
	case have != dig:
		diags.AddAttributeError(at, "Digest Not in ECR for This Tag",
			fmt.Sprintf("The ECR repository %q has tag %q at digest %s, not the planned %s. Use the digest ECR "+
				"holds (images = data.imagesync_ecr_repositories.<name>.repositories[*].images gives it), then plan again.",
				source, tag, have, dig))
	default:
		if why := unmirrorableTag(tag, dig); why != "" {
			diags.AddAttributeError(at, "Tag GitLab Cannot Hold", fmt.Sprintf("The tag %q %s. Remove it from images.", tag, why))
		}
	}
	return diags
}

// planReferrers plans, with copy_referrers, the artifacts ECR holds for the
// planned digests and the platform manifests inside them. While a digest is
// known only at apply, so are the referrers: apply lists them then.
func (r *mirroredImageResource) planReferrers(ctx context.Context, plan *mirroredImageModel, in planInput, diags *diag.Diagnostics) {
	if plan.CopyReferrers.IsUnknown() || plan.ReferrerArtifactTypes.IsUnknown() || !wholeKnown(plan.Images) || plan.SourceRegistryID.IsUnknown() {
		return
	}
	if !plan.CopyReferrers.ValueBool() {
		if len(plan.ReferrerArtifactTypes.Elements()) > 0 {
			diags.AddAttributeWarning(path.Root("referrer_artifact_types"), "Referrer Artifact Types Ignored",
				"referrer_artifact_types chooses which referrers to copy, but copy_referrers is false, so none are copied. "+
					"Set copy_referrers = true, or remove referrer_artifact_types.")
		}
		plan.Referrers = types.MapNull(referrersType.ElemType)
		return
	}
	images := map[string]string{}
	if diags.Append(plan.Images.ElementsAs(ctx, &images, false)...); diags.HasError() {
		return
	}
	refs, err := r.sourceReferrers(ctx, *plan, images, readPlatforms(ctx, in.private))
	if err != nil {
		// An error even where ECR went unreadable for an existing resource:
		// the tags are known by now, and Terraform's plan at apply may not
		// turn them unknown.
		diags.AddAttributeError(path.Root("referrers"), "Cannot List Referrers in ECR",
			failureDetail(fmt.Sprintf("listing the signatures and SBOMs of %q in ECR", plan.SourceRepository.ValueString()), err, r.data.redactor))
		return
	}
	plan.Referrers = referrersValue(refs.BySubject)
	diags.Append(savePlatforms(ctx, in.private, refs.Platforms)...)
}

// sourceReferrers lists in ECR the referrers of the digests of images (tag
// -> digest) and of the platform manifests inside them; known is what an
// earlier plan learnt of those platforms.
func (r *mirroredImageResource) sourceReferrers(ctx context.Context, m mirroredImageModel, images map[string]string, known map[string][]string) (mirror.Referrers, error) {
	if len(images) == 0 {
		return mirror.Referrers{BySubject: map[string][]string{}}, nil
	}
	var artifactTypes []string
	if d := m.ReferrerArtifactTypes.ElementsAs(ctx, &artifactTypes, false); d.HasError() {
		return mirror.Referrers{}, fmt.Errorf("reading referrer_artifact_types: %v", d)
	}
	tagged, manifests := uniqueValues(images), r.sourceManifests(ctx, m)
	if !mirror.MayHaveReferrers(manifests, mirror.Subjects(tagged, known)) {
		// Nothing but the subjects: no referrer, and no ECR registry login.
		return mirror.Referrers{BySubject: map[string][]string{}, Platforms: known}, nil
	}
	source, err := r.sourceReference(ctx, m)
	if err != nil {
		return mirror.Referrers{}, err
	}
	return r.data.engine.SourceReferrers(ctx, source, tagged, mirror.ReferrerQuery{
		ArtifactTypes: artifactTypes, Platforms: known, Manifests: manifests,
	})
}

// sourceManifests is every manifest of the source repository, from the
// plan's ECR listing (no further call once the repository was listed), or
// nil when ECR cannot tell.
func (r *mirroredImageResource) sourceManifests(ctx context.Context, m mirroredImageModel) []string {
	digests, err := r.data.ecr.Digests(ctx, m.SourceRegistryID.ValueString(), m.SourceRepository.ValueString())
	if err != nil {
		return nil
	}
	return digests
}

// sourceReference is the full ECR reference of the source repository.
func (r *mirroredImageResource) sourceReference(ctx context.Context, m mirroredImageModel) (string, error) {
	host, err := r.data.ecr.RegistryHost(ctx, m.SourceRegistryID.ValueString())
	if err != nil {
		return "", err
	}
	return host + "/" + m.SourceRepository.ValueString(), nil
}

// warnOverwrites names each tag new to this resource that GitLab already
// holds with another digest (pushed natively after the cut-over, or left by
// an earlier tool): apply would overwrite it. Tags already managed show the
// change as ~ old -> new instead.
func (r *mirroredImageResource) warnOverwrites(ctx context.Context, plan mirroredImageModel, prior *mirroredImageModel, diags *diag.Diagnostics) {
	if !wholeKnown(plan.Images) || plan.TargetReference.IsUnknown() || plan.TargetReference.IsNull() {
		return
	}
	planned, managed := map[string]string{}, map[string]string{}
	diags.Append(plan.Images.ElementsAs(ctx, &planned, false)...)
	if prior != nil && !prior.Images.IsNull() {
		diags.Append(prior.Images.ElementsAs(ctx, &managed, false)...)
	}
	var added []string
	for tag := range planned {
		if _, ok := managed[tag]; !ok {
			added = append(added, tag)
		}
	}
	if len(added) == 0 {
		return
	}
	target := plan.TargetReference.ValueString()
	held, err := r.data.engine.ReadTags(ctx, target, added)
	if err != nil {
		diags.AddWarning("Cannot Check GitLab for Tags This Plan Overwrites",
			failureDetail(fmt.Sprintf("reading the digests GitLab holds for the new tags of %s; apply may overwrite tags pushed there", target), err, r.data.redactor))
		return
	}
	for _, tag := range slices.Sorted(maps.Keys(held)) {
		if held[tag] != planned[tag] {
			diags.AddAttributeWarning(path.Root("images").AtMapKey(tag), "GitLab Tag Will Be Overwritten",
				fmt.Sprintf("GitLab holds %s:%s at %s; this apply replaces it with %s from ECR.\n\nThe tag was pushed "+
					"to GitLab by something else (after the cut-over, or by an earlier migration). If GitLab's version must "+
					"stay, leave the tag out (tag_regex, or images) or retag it in GitLab before applying.",
					target, tag, held[tag], planned[tag]))
		}
	}
}

// wholeKnown tells whether m and every element of it are known.
func wholeKnown(m types.Map) bool {
	if m.IsUnknown() {
		return false
	}
	for _, v := range m.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

func uniqueValues(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if v := m[k]; !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Package provider is the Terraform face of imagesync: schemas, plans and
// diagnostics. The work itself lives in internal/ecr, internal/gitlab and
// internal/mirror; this package converts between Terraform values and theirs.
package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/imagesync/terraform-provider-imagesync/internal/ecr"
	"github.com/imagesync/terraform-provider-imagesync/internal/gitlab"
	"github.com/imagesync/terraform-provider-imagesync/internal/mirror"
	"github.com/imagesync/terraform-provider-imagesync/internal/network"
	"github.com/imagesync/terraform-provider-imagesync/internal/redact"
)

var _ provider.Provider = (*imagesyncProvider)(nil)

const defaultGitLabURL = "https://gitlab.com"

// Environment variables read when the provider block leaves a value out.
const (
	envGitLabBaseURL       = "GITLAB_BASE_URL"
	envCIServerURL         = "CI_SERVER_URL"
	envGitLabToken         = "GITLAB_TOKEN"
	envCIJobToken          = "CI_JOB_TOKEN" //nolint:gosec // a variable's name, not a credential
	envCIRegistry          = "CI_REGISTRY"
	envGitLabRegistryURL   = "IMAGESYNC_GITLAB_REGISTRY_URL"
	envECRRegistryEndpoint = "IMAGESYNC_ECR_REGISTRY_ENDPOINT"
	// CA files trusted beside the system's: the AWS SDK's variable, and the
	// one a GitLab runner sets for a GitLab with its own CA.
	envAWSCABundle       = "AWS_CA_BUNDLE"
	envCIServerTLSCAFile = "CI_SERVER_TLS_CA_FILE"
)

const (
	defaultMaxConcurrentBlobs = 8
	maxMaxConcurrentBlobs     = 64
	minIdleTimeout            = time.Second
)

type imagesyncProvider struct {
	version string
}

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &imagesyncProvider{version: version} }
}

type providerModel struct {
	ECR                *ecrModel     `tfsdk:"ecr"`
	GitLab             *gitlabModel  `tfsdk:"gitlab"`
	MaxConcurrentBlobs types.Int64   `tfsdk:"max_concurrent_blobs"`
	RequestsPerSecond  types.Float64 `tfsdk:"requests_per_second"`
	IdleTimeout        types.String  `tfsdk:"idle_timeout"`
}

type ecrModel struct {
	Region           types.String     `tfsdk:"region"`
	Profile          types.String     `tfsdk:"profile"`
	RegistryID       types.String     `tfsdk:"registry_id"`
	Endpoint         types.String     `tfsdk:"endpoint"`
	RegistryEndpoint types.String     `tfsdk:"registry_endpoint"`
	CustomCABundle   types.String     `tfsdk:"custom_ca_bundle"`
	AssumeRole       *assumeRoleModel `tfsdk:"assume_role"`
}

type assumeRoleModel struct {
	RoleARN     types.String `tfsdk:"role_arn"`
	SessionName types.String `tfsdk:"session_name"`
	ExternalID  types.String `tfsdk:"external_id"`
}

type gitlabModel struct {
	BaseURL     types.String `tfsdk:"base_url"`
	Token       types.String `tfsdk:"token"`
	RegistryURL types.String `tfsdk:"registry_url"`
	CACertFile  types.String `tfsdk:"cacert_file"`
}

// providerData is the bundle every resource and data source receives.
type providerData struct {
	ecr       *ecr.Client
	gitlab    *gitlab.Client
	gitlabErr string // why GitLab is unusable (no token), reported where it is needed
	engine    *mirror.Engine
	// redactor knows every secret in play (the GitLab token, ECR registry
	// passwords as they are issued) for logs and diagnostics.
	redactor *redact.Redactor
	// logTurns serialises the log calls of the engine's goroutines (see logInTurn).
	logTurns sync.Mutex
}

// logContext masks every secret in the logs of one provider call: tflog's
// masks live in the context, so each CRUD call sets them again.
func (d *providerData) logContext(ctx context.Context) context.Context {
	if d == nil {
		return ctx
	}
	secrets := d.redactor.Secrets()
	ctx = tflog.MaskAllFieldValuesStrings(ctx, secrets...)
	ctx = tflog.MaskMessageStrings(ctx, secrets...)
	ctx = tflog.MaskAllFieldValuesRegexes(ctx, redact.Patterns...)
	ctx = tflog.MaskMessageRegexes(ctx, redact.Patterns...)
	return tflog.MaskFieldValuesWithFieldKeys(ctx, "token", "password", "Authorization")
}

// ecrCredentials hands the engine ECR's registry credential and registers
// each password with the redactor as it is issued.
type ecrCredentials struct {
	*ecr.Client
	redactor *redact.Redactor
}

func (c ecrCredentials) Credential(ctx context.Context) (ecr.Credential, error) {
	cred, err := c.Client.Credential(ctx)
	c.register(cred)
	return cred, err
}

func (c ecrCredentials) register(cred ecr.Credential) {
	if cred.Password != "" {
		c.redactor.Add(cred.Password, cred.User+":"+cred.Password)
	}
}

func (c ecrCredentials) Renew(ctx context.Context, refused ecr.Credential) (ecr.Credential, error) {
	cred, err := c.Client.Renew(ctx, refused)
	c.register(cred)
	return cred, err
}

func (p *imagesyncProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "imagesync"
	resp.Version = p.version
}

func (p *imagesyncProvider) Schema(ctx context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Migrates container images from Amazon ECR to GitLab's container registry as a " +
			"Terraform plan: every tag to copy shows in the plan with its digest, apply streams the missing " +
			"content registry to registry, and a rerun reports any drift. ECR is only read, with the actions " +
			"of a read-only IAM policy.",
		Attributes: map[string]schema.Attribute{
			"max_concurrent_blobs": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: fmt.Sprintf("How many blobs (layers, configs) stream their bytes from ECR to "+
					"GitLab at once, across every resource of the provider; as many more open their download "+
					"and upload meanwhile. Between 1 and %d; default %d.", maxMaxConcurrentBlobs, defaultMaxConcurrentBlobs),
				Validators: []validator.Int64{int64validator.Between(1, maxMaxConcurrentBlobs)},
			},
			"requests_per_second": schema.Float64Attribute{
				Optional:            true,
				MarkdownDescription: "Upper bound on requests per second to each registry, to spare a busy network or registry. `0` (the default) means unlimited.",
				Validators:          []validator.Float64{float64validator.AtLeast(0)},
			},
			"idle_timeout": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: fmt.Sprintf("How long a connection to ECR, S3 or GitLab may make no progress (send "+
					"nothing, or read nothing of an upload) before the request is given up; a layer download is then resumed "+
					"from the last byte received. Also the limit on waiting for an answer's headers. A resource stops asking a "+
					"host that stalled twice, so a host that never answers costs it about twice this. A duration such as "+
					"`90s` or `2m`, at least `%s`; default `%s`.", minIdleTimeout, network.DefaultIdleTimeout),
				Validators: []validator.String{durationValidator{min: minIdleTimeout}},
			},
		},
		Blocks: map[string]schema.Block{
			"ecr": schema.SingleNestedBlock{
				MarkdownDescription: "Where the images come from. Credentials follow the AWS SDK's default chain " +
					"(environment, shared files, `profile`, instance or task roles, web identity).",
				Attributes: map[string]schema.Attribute{
					"region": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "AWS region of the ECR registry, e.g. `eu-west-1`. Default: `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's region.",
						Validators:          []validator.String{stringvalidator.RegexMatches(regionPattern, "must be an AWS region name such as eu-west-1")},
					},
					"profile": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Named profile of the shared AWS configuration files. Default: `AWS_PROFILE` or `default`.",
					},
					"registry_id": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "AWS account ID that owns the ECR registry (12 digits). Default: the caller's account.",
						Validators:          []validator.String{stringvalidator.RegexMatches(accountIDPattern, "must be a 12-digit AWS account ID such as 123456789012")},
					},
					"endpoint": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Override of the ECR API endpoint URL. `AWS_ENDPOINT_URL_ECR` works too.",
						Validators:          []validator.String{urlValidator{example: "https://api.ecr.eu-west-1.amazonaws.com"}},
					},
					"registry_endpoint": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Override of where registry traffic for ECR goes, e.g. `http://127.0.0.1:5000` for " +
							"local tests, a proxy or a VPC endpoint. Image references keep their ECR names. Default: " +
							"`IMAGESYNC_ECR_REGISTRY_ENDPOINT`, else the endpoint ECR reports.",
						Validators: []validator.String{urlValidator{example: "http://127.0.0.1:5000"}},
					},
					"custom_ca_bundle": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Path of a PEM file of CA certificates to trust for the ECR API, the ECR registry " +
							"and Amazon S3, in addition to the system's (a TLS-inspecting proxy, a private endpoint). " +
							"`AWS_CA_BUNDLE` works too; both are added.",
					},
				},
				Blocks: map[string]schema.Block{
					"assume_role": schema.SingleNestedBlock{
						MarkdownDescription: "Assume an IAM role on top of the base credentials.",
						// Without role_arn the block would be ignored silently.
						Validators: []validator.Object{objectvalidator.AlsoRequires(path.MatchRelative().AtName("role_arn"))},
						Attributes: map[string]schema.Attribute{
							"role_arn": schema.StringAttribute{
								Optional:            true,
								MarkdownDescription: "ARN of the role to assume, e.g. `arn:aws:iam::123456789012:role/migration`.",
								Validators:          []validator.String{stringvalidator.RegexMatches(roleARNPattern, "must be an IAM role ARN such as arn:aws:iam::123456789012:role/migration")},
							},
							"session_name": schema.StringAttribute{
								Optional:            true,
								MarkdownDescription: "Session name of the assumed role. Default: chosen by the AWS SDK.",
							},
							"external_id": schema.StringAttribute{
								Optional:            true,
								MarkdownDescription: "External ID the role's trust policy requires, if any.",
							},
						},
					},
				},
			},
			"gitlab": schema.SingleNestedBlock{
				MarkdownDescription: "Where the images go.",
				Attributes: map[string]schema.Attribute{
					"base_url": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "URL of the GitLab instance, e.g. `https://gitlab.example.com`. Default: " +
							"`GITLAB_BASE_URL`, else `CI_SERVER_URL` (set in GitLab CI jobs), else `" + defaultGitLabURL + "`.",
						Validators: []validator.String{urlValidator{example: "https://gitlab.example.com"}},
					},
					"token": schema.StringAttribute{
						Optional:  true,
						Sensitive: true,
						MarkdownDescription: "GitLab access token with the `api` scope (or `read_api` and `write_registry`). " +
							"Default: `GITLAB_TOKEN`, else `CI_JOB_TOKEN` in a GitLab CI job.",
					},
					"registry_url": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "URL of GitLab's container registry, e.g. `https://registry.example.com`. " +
							"Default: `IMAGESYNC_GITLAB_REGISTRY_URL`, else with a CI job token `https://$CI_REGISTRY`, else the " +
							"registry each project reports. " +
							"`http://` is for local testing only.",
						Validators: []validator.String{urlValidator{example: "https://registry.example.com"}},
					},
					"cacert_file": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Path of a PEM file of CA certificates to trust for the GitLab API and registry, " +
							"in addition to the system's: the CA of a GitLab with a certificate from the company's own CA. In a " +
							"GitLab CI job, `CI_SERVER_TLS_CA_FILE` (set by a runner registered with `tls-ca-file`) is trusted too.",
					},
				},
			},
		},
	}
}

func (p *imagesyncProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.ECR == nil {
		cfg.ECR = &ecrModel{}
	}
	if cfg.GitLab == nil {
		cfg.GitLab = &gitlabModel{}
	}
	if checkKnown(cfg, &resp.Diagnostics); resp.Diagnostics.HasError() {
		return
	}
	ecrNet, gitlabNet := networkSettings(cfg, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	token, jobToken := gitlabToken(cfg)
	data := &providerData{redactor: redact.New(token)}
	ctx = data.logContext(ctx)
	ecrCfg := ecrConfig(cfg)
	ecrCfg.Network = ecrNet
	ecrClient, err := ecr.New(ctx, ecrCfg)
	if err != nil {
		resp.Diagnostics.Append(ecrConfigDiag(ecrCfg.Profile, err))
		return
	}
	data.ecr = ecrClient
	glCfg := p.gitlabConfig(cfg, token, jobToken, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	glCfg.HTTPClient = &http.Client{Transport: gitlabNet.NewTransport()}
	if data.gitlab, err = gitlab.New(glCfg); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("gitlab").AtName("base_url"), "Cannot Configure the GitLab Client",
			"Check gitlab.base_url (or GITLAB_BASE_URL / CI_SERVER_URL).\n\nOriginal Error: "+err.Error())
		return
	}
	if token == "" {
		data.gitlabErr = "No GitLab token is configured. Set gitlab.token in the provider block, or GITLAB_TOKEN " +
			"in the environment (CI_JOB_TOKEN is used inside GitLab CI jobs)."
	}
	data.engine = p.newEngine(ctx, cfg, data, ecrCfg, glCfg, gitlabNet)
	resp.DataSourceData = data
	resp.ResourceData = data
}

// checkKnown refuses settings known only at apply: the clients are built now.
func checkKnown(cfg providerModel, diags *diag.Diagnostics) {
	unknown := map[string]bool{
		"ecr.region": cfg.ECR.Region.IsUnknown(), "ecr.profile": cfg.ECR.Profile.IsUnknown(),
		"ecr.registry_id": cfg.ECR.RegistryID.IsUnknown(), "ecr.endpoint": cfg.ECR.Endpoint.IsUnknown(),
		"ecr.registry_endpoint": cfg.ECR.RegistryEndpoint.IsUnknown(), "gitlab.base_url": cfg.GitLab.BaseURL.IsUnknown(),
		"gitlab.token": cfg.GitLab.Token.IsUnknown(), "gitlab.registry_url": cfg.GitLab.RegistryURL.IsUnknown(),
		"ecr.custom_ca_bundle": cfg.ECR.CustomCABundle.IsUnknown(), "gitlab.cacert_file": cfg.GitLab.CACertFile.IsUnknown(),
		"idle_timeout": cfg.IdleTimeout.IsUnknown(),
	}
	for _, name := range slices.Sorted(maps.Keys(unknown)) {
		if unknown[name] {
			diags.AddError("Unknown Provider Configuration Value",
				fmt.Sprintf("The provider cannot be configured because %s is not known until apply. "+
					"Set it to a value known at plan time, or apply its source first with -target.", name))
		}
	}
}

// gitlabToken is the configured token, else GITLAB_TOKEN, else (jobToken)
// the CI job token of a GitLab CI job.
func gitlabToken(cfg providerModel) (token string, jobToken bool) {
	if token = firstNonEmpty(cfg.GitLab.Token.ValueString(), os.Getenv(envGitLabToken)); token != "" {
		return token, false
	}
	token = os.Getenv(envCIJobToken)
	return token, token != ""
}

func ecrConfig(cfg providerModel) ecr.Config {
	c := ecr.Config{
		Region:           cfg.ECR.Region.ValueString(),
		Profile:          cfg.ECR.Profile.ValueString(),
		RegistryID:       cfg.ECR.RegistryID.ValueString(),
		Endpoint:         cfg.ECR.Endpoint.ValueString(),
		RegistryEndpoint: firstNonEmpty(cfg.ECR.RegistryEndpoint.ValueString(), os.Getenv(envECRRegistryEndpoint)),
	}
	if ar := cfg.ECR.AssumeRole; ar != nil && ar.RoleARN.ValueString() != "" {
		c.AssumeRole = &ecr.AssumeRole{RoleARN: ar.RoleARN.ValueString(), SessionName: ar.SessionName.ValueString(), ExternalID: ar.ExternalID.ValueString()}
	}
	return c
}

// gitlabConfig resolves the GitLab settings with their environment fallbacks.
func (p *imagesyncProvider) gitlabConfig(cfg providerModel, token string, jobToken bool, diags *diag.Diagnostics) gitlab.Config {
	registryURL := firstNonEmpty(cfg.GitLab.RegistryURL.ValueString(), os.Getenv(envGitLabRegistryURL))
	if registryURL == "" && jobToken && os.Getenv(envCIRegistry) != "" {
		// In a GitLab CI job the registry is known without the project API,
		// which job tokens may not use.
		registryURL = "https://" + os.Getenv(envCIRegistry)
	}
	if registryURL != "" {
		if _, err := gitlab.ParseRegistryURL(registryURL); err != nil {
			diags.AddAttributeError(path.Root("gitlab").AtName("registry_url"), "Invalid GitLab Registry URL",
				"Set gitlab.registry_url (or IMAGESYNC_GITLAB_REGISTRY_URL) to the registry's root URL, e.g. https://registry.example.com.\n\nOriginal Error: "+err.Error())
		}
	}
	return gitlab.Config{
		BaseURL: firstNonEmpty(cfg.GitLab.BaseURL.ValueString(), os.Getenv(envGitLabBaseURL), os.Getenv(envCIServerURL), defaultGitLabURL),
		Token:   token, JobToken: jobToken, RegistryURL: registryURL,
		UserAgent: "terraform-provider-imagesync/" + p.version,
	}
}

// newEngine builds the copy engine every resource of the run shares.
func (p *imagesyncProvider) newEngine(ctx context.Context, cfg providerModel, data *providerData, ecrCfg ecr.Config, glCfg gitlab.Config, gitlabNet network.Settings) *mirror.Engine {
	maxBlobs := defaultMaxConcurrentBlobs
	if !cfg.MaxConcurrentBlobs.IsNull() && !cfg.MaxConcurrentBlobs.IsUnknown() {
		maxBlobs = int(cfg.MaxConcurrentBlobs.ValueInt64())
	}
	engine := mirror.New(mirror.Config{
		ECR:                ecrCredentials{Client: data.ecr, redactor: data.redactor},
		ECREndpoint:        ecrCfg.RegistryEndpoint,
		ECRNetwork:         ecrCfg.Network,
		GitLabUser:         data.gitlab.RegistryUsername,
		GitLabToken:        glCfg.Token,
		GitLabNetwork:      gitlabNet,
		MaxConcurrentBlobs: maxBlobs,
		RequestsPerSecond:  cfg.RequestsPerSecond.ValueFloat64(),
		Logger: func(ctx context.Context, msg string, fields map[string]any) {
			logInTurn(&data.logTurns, func() { tflog.Info(ctx, msg, fields) })
		},
		Slog:      newSlogger(ctx, data.redactor, &data.logTurns, regclientLogFloor(os.Getenv)),
		UserAgent: "terraform-provider-imagesync/" + p.version,
	})
	if u, err := gitlab.ParseRegistryURL(glCfg.RegistryURL); glCfg.RegistryURL != "" && err == nil {
		engine.AddGitLabRegistry(u.Host, u.Scheme == "http")
	}
	return engine
}

func (p *imagesyncProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newMirroredImageResource}
}

func (p *imagesyncProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newECRRepositoriesDataSource}
}

// ecrConfigDiag explains why the AWS configuration could not be loaded, on
// ecr.profile when the configured profile is missing, else on ecr.region.
func ecrConfigDiag(profile string, err error) diag.Diagnostic {
	if profile != "" && ecr.IsProfileMissing(err) {
		return diag.NewAttributeErrorDiagnostic(path.Root("ecr").AtName("profile"), "Cannot Configure the ECR Client",
			fmt.Sprintf("The AWS profile %q is not defined in the AWS shared configuration files (~/.aws/config and "+
				"~/.aws/credentials, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE). Set ecr.profile to a profile "+
				"defined there, or leave it out to use the default credential chain.\n\nOriginal Error: %s", profile, err))
	}
	return diag.NewAttributeErrorDiagnostic(path.Root("ecr").AtName("region"), "Cannot Configure the ECR Client",
		"The AWS configuration could not be loaded. Set ecr.region (or AWS_REGION), and check ecr.profile "+
			"and the AWS shared configuration files.\n\nOriginal Error: "+err.Error())
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

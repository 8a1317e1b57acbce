package provider

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/imagesync/terraform-provider-imagesync/internal/network"
)

// networkSettings are the connection settings of each side: the idle
// timeout, and the CA files trusted beside the system's.
func networkSettings(cfg providerModel, diags *diag.Diagnostics) (ecrNet, gitlabNet network.Settings) {
	idle := network.DefaultIdleTimeout
	if d, err := time.ParseDuration(cfg.IdleTimeout.ValueString()); err == nil && d >= minIdleTimeout {
		idle = d // the validator reported anything else at plan time
	}
	ecrNet, err := network.NewSettings(idle,
		network.CAFile{Path: cfg.ECR.CustomCABundle.ValueString(), From: "ecr.custom_ca_bundle"},
		network.CAFile{Path: os.Getenv(envAWSCABundle), From: envAWSCABundle})
	if err != nil {
		diags.Append(caFileDiag(path.Root("ecr").AtName("custom_ca_bundle"), !cfg.ECR.CustomCABundle.IsNull(), envAWSCABundle, err))
	}
	gitlabNet, err = network.NewSettings(idle,
		network.CAFile{Path: cfg.GitLab.CACertFile.ValueString(), From: "gitlab.cacert_file"},
		network.CAFile{Path: os.Getenv(envCIServerTLSCAFile), From: envCIServerTLSCAFile})
	if err != nil {
		diags.Append(caFileDiag(path.Root("gitlab").AtName("cacert_file"), !cfg.GitLab.CACertFile.IsNull(), envCIServerTLSCAFile, err))
	}
	return ecrNet, gitlabNet
}

// caFileDiag explains a CA file that cannot be read, on the attribute when
// the attribute named it.
func caFileDiag(attr path.Path, attrSet bool, envName string, err error) diag.Diagnostic {
	detail := fmt.Sprintf("A file of CA certificates to trust could not be used. Point %s (or %s) at a readable "+
		"file of PEM certificates (blocks that begin with -----BEGIN CERTIFICATE-----).\n\nOriginal Error: %s", attr, envName, err)
	if attrSet {
		return diag.NewAttributeErrorDiagnostic(attr, "Cannot Read the CA Certificate File", detail)
	}
	return diag.NewErrorDiagnostic("Cannot Read the CA Certificate File", detail)
}

package localenv

import "github.com/imagesync/terraform-provider-imagesync/internal/localenv/wan"

// SetWAN puts profile p between the clients and every endpoint (ECR API, ECR
// registry, S3, GitLab API, GitLab registry) for the connections accepted
// from now on; the zero Profile is plain loopback again. An environment can
// so seed its images at loopback speed and then measure over a WAN.
func (e *Env) SetWAN(p wan.Profile) { e.wan.Set(p) }

// WAN is the profile new connections get.
func (e *Env) WAN() wan.Profile { return e.wan.Profile() }

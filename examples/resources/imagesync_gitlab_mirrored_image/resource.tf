# Mirror every ECR repository into one GitLab project, one resource per
# repository: the plan lists per tag the digest that will be copied.
data "imagesync_ecr_repositories" "all" {}

# for_each reads a local, not the data source: Terraform evaluates for_each
# again for every instance, and a data source's result is decoded from state
# each time, which grows with the square of the repositories.
locals {
  repositories = { for r in data.imagesync_ecr_repositories.all.repositories : r.name => r }
}

resource "imagesync_gitlab_mirrored_image" "all" {
  for_each = local.repositories

  source_repository = each.key
  gitlab_project    = "platform/images"
  images            = each.value.images
}

# One repository, release tags only, under another name in GitLab,
# with its tags removed from GitLab when the resource is destroyed.
resource "imagesync_gitlab_mirrored_image" "api" {
  source_repository = "legacy/backend/api"
  gitlab_project    = "platform/images"
  target_image      = "backend/api"
  tag_regex         = "^v[0-9]+\\."
  delete_on_destroy = true

  timeouts {
    create = "2h"
  }
}

# A repository of another AWS account (shared through a repository policy,
# or reached with the provider's ecr.assume_role).
resource "imagesync_gitlab_mirrored_image" "shared_base" {
  source_repository  = "base/runtime"
  source_registry_id = "210987654321"
  gitlab_project     = "platform/images"
}

# Signatures only: Sigstore (cosign) and Notary Project signatures are copied,
# also those on each platform of a multi-platform image (cosign sign
# --recursive); SBOMs and attestations stay in ECR. A referrer's artifact type
# is its manifest's artifactType, else its config's media type.
resource "imagesync_gitlab_mirrored_image" "payments" {
  source_repository = "team/payments"
  gitlab_project    = "platform/images"
  referrer_artifact_types = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.cncf.notary.signature",
  ]
}

# The migration as a user writes it: list the ECR repositories, mirror each
# one into the GitLab project. `make demo` runs it against the local
# environment; the provider reads its endpoints and credentials from the
# environment (AWS_*, GITLAB_*, IMAGESYNC_*), so this file has none.
terraform {
  required_providers {
    imagesync = {
      source = "imagesync/imagesync"
    }
  }
}

provider "imagesync" {}

variable "gitlab_project" {
  description = "GitLab project that receives the images."
  type        = string
  default     = "migration/images"
}

data "imagesync_ecr_repositories" "all" {}

# for_each reads a local, not the data source: Terraform evaluates for_each
# again for every instance, and a data source's result is decoded from state
# each time, which grows with the square of the repositories.
locals {
  repositories = { for r in data.imagesync_ecr_repositories.all.repositories : r.name => r }
}

resource "imagesync_gitlab_mirrored_image" "mirror" {
  for_each = local.repositories

  source_repository = each.key
  gitlab_project    = var.gitlab_project
  images            = each.value.images
}

output "migrated" {
  description = "Where each ECR repository now lives in GitLab."
  value       = { for name, m in imagesync_gitlab_mirrored_image.mirror : name => m.target_reference }
}

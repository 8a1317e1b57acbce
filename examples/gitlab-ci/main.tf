# The migration that examples/gitlab-ci/imagesync.gitlab-ci.yml runs: every ECR
# repository of one shard mirrored into one GitLab project. The pipeline sets
# the variables below (TF_VAR_*) and the state backend (TF_HTTP_*): one
# GitLab-managed Terraform state per shard, named like imagesync-2-of-8.
terraform {
  # import blocks with for_each: Terraform 1.7, OpenTofu 1.7.
  required_version = ">= 1.7.0"

  required_providers {
    imagesync = {
      source = "imagesync/imagesync"
    }
  }
  # Configured by the pipeline through TF_HTTP_ADDRESS, TF_HTTP_USERNAME,
  # TF_HTTP_PASSWORD and friends, so no credential is written to disk.
  backend "http" {}
}

# Endpoints and credentials come from the job's environment: AWS_* for ECR,
# GITLAB_TOKEN (or CI_JOB_TOKEN) and CI_SERVER_URL for GitLab.
provider "imagesync" {}

variable "gitlab_project" {
  description = "GitLab project that receives the images: the pipeline's own project (CI_PROJECT_PATH) unless IMAGESYNC_GITLAB_PROJECT says otherwise."
  type        = string
}

variable "shard_index" {
  description = "This job's shard, 0 to shard_count - 1."
  type        = number
  default     = 0
}

variable "shard_count" {
  description = "How many shards, each with its own state, the repositories are split into."
  type        = number
  default     = 1
}

variable "reshard_from" {
  description = "While resharding: the previous shard_count. Each new shard then imports the mirrors the previous states managed instead of creating them. 0 otherwise."
  type        = number
  default     = 0
}

variable "state_address_prefix" {
  description = "Set by the pipeline: this project's Terraform state API followed by the state name prefix, e.g. https://gitlab.example.com/api/v4/projects/42/terraform/state/imagesync."
  type        = string
  default     = ""
}

variable "cutover_at" {
  description = "When the clients were switched from ECR to GitLab, RFC 3339 (e.g. 2026-03-01T00:00:00Z); empty until then. Set as the CI/CD variable TF_VAR_cutover_at. From then on every plan and drift check warns about each repository ECR records a pull of after it."
  type        = string
  default     = ""
  validation {
    condition     = var.cutover_at == "" || can(timecmp(var.cutover_at, var.cutover_at))
    error_message = "cutover_at must be an RFC 3339 timestamp such as 2026-03-01T00:00:00Z, or empty."
  }
}

data "imagesync_ecr_repositories" "shard" {
  shard_index = var.shard_index
  shard_count = var.shard_count
  # ECR's pull times, for the switch-off check, once there is a cut-over:
  # one ecr:DescribeImages call per 1,000 images of a repository.
  include_details = var.cutover_at != ""
}

locals {
  repositories = { for r in data.imagesync_ecr_repositories.shard.repositories : r.name => r }
}

resource "imagesync_gitlab_mirrored_image" "mirror" {
  for_each = local.repositories

  source_repository = each.key
  gitlab_project    = var.gitlab_project
  images            = each.value.images
}

# Switching ECR off: a warning on every plan, and in the scheduled drift
# check, for each migrated repository ECR recorded a pull of after the
# cut-over. ECR records pull times with a delay of up to a day.
locals {
  still_pulled = {
    for name, r in local.repositories : name => r.last_pulled_at
    if try(timecmp(r.last_pulled_at, var.cutover_at) > 0, false)
  }
}

check "ecr_still_pulled" {
  assert {
    condition     = length(local.still_pulled) == 0
    error_message = "Still pulled from ECR after the cut-over at ${var.cutover_at}: ${join(", ", [for name, at in local.still_pulled : "${name} (last pull ${at})"])}. Move these clients to GitLab before deleting the ECR repositories."
  }
}

output "repositories" {
  description = "The ECR repositories this state mirrors; a reshard reads it from the previous states."
  value       = sort(keys(imagesync_gitlab_mirrored_image.mirror))
}

# Resharding: the previous states (named for the previous shard_count) are
# read, and what they managed is imported into this shard's new state, so the
# plan shows imports, not copies. Import blocks for mirrors already in state
# do nothing, so reshard_from can stay set until the old states are retired.
data "terraform_remote_state" "previous" {
  for_each = toset([for i in range(var.reshard_from) : tostring(i)])
  backend  = "http"
  config = {
    address = "${var.state_address_prefix}-${each.key}-of-${var.reshard_from}"
  }
}

import {
  for_each = setintersection(keys(local.repositories), flatten([for s in data.terraform_remote_state.previous : try(s.outputs.repositories, [])]))
  to       = imagesync_gitlab_mirrored_image.mirror[each.key]
  id       = "${each.key}:${var.gitlab_project}:${each.key}"
}

# Migrating repositories that live in another AWS account: the provider
# assumes a read-only role there, lists that account's registry, and each
# resource names the account its source is in.
terraform {
  required_providers {
    imagesync = { source = "imagesync/imagesync" }
  }
}

provider "imagesync" {
  ecr {
    region = "eu-west-1"
    assume_role {
      # A role in the other account with the read-only ECR policy, trusting
      # the identity that runs Terraform.
      role_arn     = "arn:aws:iam::210987654321:role/imagesync-read-only"
      session_name = "gitlab-migration"
    }
  }
  gitlab {
    base_url = "https://gitlab.example.com"
  }
}

data "imagesync_ecr_repositories" "shared" {
  registry_id = "210987654321"
  name_prefix = "base/"
}

# for_each reads a local, not the data source: Terraform evaluates for_each
# again for every instance, and a data source's result is decoded from state
# each time, which grows with the square of the repositories.
locals {
  repositories = { for r in data.imagesync_ecr_repositories.shared.repositories : r.name => r }
}

resource "imagesync_gitlab_mirrored_image" "shared" {
  for_each = local.repositories

  source_repository  = each.key
  source_registry_id = each.value.registry_id
  gitlab_project     = "platform/base-images"
  images             = each.value.images
}

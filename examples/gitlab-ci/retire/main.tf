# Retires the states of a previous shard_count after a reshard: the
# imagesync:retire job applies this to each of them. The removed block takes
# every mirror out of the state without destroying it, whatever its
# delete_on_destroy says: the images stay in GitLab, and the new shards'
# states manage them.
terraform {
  # removed blocks: Terraform 1.7; with lifecycle, OpenTofu 1.10.
  required_version = ">= 1.7.0"

  required_providers {
    imagesync = {
      source = "imagesync/imagesync"
    }
  }
  backend "http" {}
}

removed {
  from = imagesync_gitlab_mirrored_image.mirror

  lifecycle {
    destroy = false
  }
}

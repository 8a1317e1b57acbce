# Every repository under team/, except scratch ones, with release tags only.
data "imagesync_ecr_repositories" "team" {
  name_prefix   = "team/"
  exclude_regex = "-(scratch|tmp)$"
  tag_regex     = "^v[0-9]+\\."
}

output "repositories" {
  value = { for r in data.imagesync_ecr_repositories.team.repositories : r.name => r.images }
}

# A very large registry split over eight states: this one manages shard 2, the
# repositories whose name hashes to 2 (see shard_count). CI runs one job per shard.
data "imagesync_ecr_repositories" "shard" {
  shard_index = 2
  shard_count = 8
}

# The long tail left behind: per repository, the five most recently pushed
# images pushed since 2025, every tag of each; with what ECR records about
# them (sizes, push and pull times), and a GitLab image name for every
# repository, deeper ones folded (org/team/service/api -> org-team-service/api).
data "imagesync_ecr_repositories" "recent" {
  include_details = true
  pushed_after    = "2025-01-01T00:00:00Z"
  most_recent     = 5
}

resource "imagesync_gitlab_mirrored_image" "recent" {
  for_each = { for r in data.imagesync_ecr_repositories.recent.repositories : r.name => r }

  source_repository = each.key
  gitlab_project    = "platform/images"
  target_image      = each.value.gitlab_image
  images            = each.value.images
}

output "last_pulled_from_ecr" {
  value = { for r in data.imagesync_ecr_repositories.recent.repositories : r.name => r.last_pulled_at }
}

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

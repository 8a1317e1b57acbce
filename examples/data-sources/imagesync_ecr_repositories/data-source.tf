# Every repository under team/, except scratch ones, with release tags only.
data "imagesync_ecr_repositories" "team" {
  name_prefix   = "team/"
  exclude_regex = "-(scratch|tmp)$"
  tag_regex     = "^v[0-9]+\\."
}

output "repositories" {
  value = { for r in data.imagesync_ecr_repositories.team.repositories : r.name => r.images }
}

provider "imagesync" {
  ecr {
    region = "eu-west-1"
    # Credentials come from the AWS SDK chain: environment, profile, role.
    profile = "migration"
  }

  gitlab {
    base_url = "https://gitlab.example.com"
    # Leave token out to use GITLAB_TOKEN (or CI_JOB_TOKEN in a GitLab CI job).
    token = var.gitlab_token
  }

  # Shared by every resource in the run.
  max_concurrent_blobs = 8
}

variable "gitlab_token" {
  type      = string
  sensitive = true
}

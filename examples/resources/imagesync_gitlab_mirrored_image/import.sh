# <source_repository>:<gitlab_project>:<target_image>; the target image may be
# left out when it equals the source repository.
terraform import 'imagesync_gitlab_mirrored_image.api' 'legacy/backend/api:platform/images:backend/api'

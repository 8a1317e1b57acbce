# <source_repository>:<gitlab_project>:<target_image>; the target image may be
# left out when it equals the source repository.
terraform import 'imagesync_gitlab_mirrored_image.api' 'legacy/backend/api:platform/images:backend/api'

# A repository of another AWS account: the account ID first.
terraform import 'imagesync_gitlab_mirrored_image.shared_base' '210987654321:base/runtime:platform/images'

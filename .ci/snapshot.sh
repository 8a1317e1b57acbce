#!/usr/bin/env sh
# Builds the release into dist/ as the release workflow does, for linux/amd64
# alone (SNAPSHOT_LINUX_AMD64 picks .goreleaser.yml's snapshot build), and
# signs SHA256SUMS with a throwaway GPG key whose public half it leaves in
# dist/snapshot-signing-key.asc: the install test checks the signature as the
# registry would, then installs the zip. Used by `make snapshot`.
set -eu
GORELEASER=${GORELEASER:-go tool -modfile=tools/go.mod goreleaser}

GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
gpg --batch --quiet --passphrase '' --quick-gen-key 'imagesync snapshot <snapshot@imagesync.invalid>' ed25519 sign 1d
GPG_FINGERPRINT=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
export GPG_FINGERPRINT

# shellcheck disable=SC2086 # GORELEASER is a command with its arguments
SNAPSHOT_LINUX_AMD64=1 $GORELEASER release --snapshot --clean --parallelism 2
gpg --batch --armor --export "$GPG_FINGERPRINT" > dist/snapshot-signing-key.asc

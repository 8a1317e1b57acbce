#!/usr/bin/env sh
# Installs what the local environment needs and checks what cannot be installed
# from here. Used by `make test`, `make demo`, `make pipeline`, `make localenv` and
# .ci/run.
set -eu

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=""
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
command -v rsync >/dev/null 2>&1 || need="$need rsync" # gitlab-ci-local's --shell-isolation
if [ -n "$need" ]; then
	echo "==> installing Debian packages:$need"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	$sudo apt-get install -y -qq $need >/dev/null
fi

# gitlab-ci-local runs examples/gitlab-ci in the pipeline tests and `make
# pipeline`; later releases need Node.js 22, this machine kind has 20.
gcl_version=4.60.0
if ! command -v gitlab-ci-local >/dev/null 2>&1; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "gitlab-ci-local not found, and npm is missing to install it: install Node.js and npm, then npm install -g gitlab-ci-local@$gcl_version" >&2
		exit 1
	fi
	echo "==> installing gitlab-ci-local@$gcl_version with npm"
	$sudo npm install -g --no-fund --no-audit --loglevel=error "gitlab-ci-local@$gcl_version" >/dev/null
elif [ "$(gitlab-ci-local --version)" != "$gcl_version" ]; then
	echo "note: gitlab-ci-local $(gitlab-ci-local --version) is installed; the pipeline is tested with $gcl_version" >&2
fi

# regctl attaches artifacts (signatures, SBOMs) to platform manifests in the
# referrers tests, as a tool independent of the provider; the version is the
# regclient release in go.mod (localenv.RegctlVersion).
regctl_version=v0.11.7
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if ! command -v regctl >/dev/null 2>&1 && ! [ -x "$gobin/regctl" ]; then
	echo "==> installing regctl@$regctl_version with go install"
	go install "github.com/regclient/regclient/cmd/regctl@$regctl_version"
fi

if ! command -v terraform >/dev/null 2>&1; then
	echo "terraform not found on PATH: install Terraform 1.x (https://developer.hashicorp.com/terraform/install)" >&2
	exit 1
fi
if ! command -v moto_server >/dev/null 2>&1; then
	if ! (command -v pyenv >/dev/null 2>&1 && pyenv which moto_server >/dev/null 2>&1) &&
		! [ -x "${PYENV_ROOT:-$HOME/.pyenv}/shims/moto_server" ]; then
		echo "moto_server not found on PATH or in pyenv: install it with pip install 'moto[server]'" >&2
		exit 1
	fi
fi

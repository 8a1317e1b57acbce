#!/usr/bin/env sh
# Installs what the local environment needs and checks what cannot be installed
# from here. Used by `make test`, `make demo`, `make localenv` and .ci/run.
set -eu

need=""
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
if [ -n "$need" ]; then
	echo "==> installing Debian packages:$need"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	$sudo apt-get install -y -qq $need >/dev/null
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

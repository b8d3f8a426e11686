#!/usr/bin/env bash
# Install what building, running and testing the agent needs on Debian 12,
# skipping whatever is already there. Idempotent; run as root.
set -euo pipefail

packages=(
	containerd runc containernetworking-plugins # job containers and networks
	debootstrap                                 # runtime images
	iptables iproute2                           # per-job network rules
	docker-registry                             # loopback registry for pull tests
	python3 nodejs                              # the helpers' own test runners
	ca-certificates git make
)

[[ $(id -u) -eq 0 ]] || { echo "deps: run as root (it installs Debian packages)" >&2; exit 1; }

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# The Debian containerd package would start a system containerd under
	# systemd; we run our own instance (hack/containerd.sh), so leave it stopped.
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's package starts a registry on :5000 where systemd runs;
# tests start their own on loopback, so the system one is not wanted.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if ! command -v go >/dev/null; then
	[[ -x /usr/local/go/bin/go ]] || { echo "deps: Go is missing (expected in /usr/local/go)" >&2; exit 1; }
fi
cd "$(dirname "$0")/.."
go mod download

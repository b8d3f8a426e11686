#!/usr/bin/env bash
# Install what building, running and testing the agent needs on Debian 12,
# skipping whatever is already there. Idempotent; run as root.
set -euo pipefail

packages=(
	containerd runc containernetworking-plugins # job containers and networks
	crun                                        # the jobs' OCI runtime where it can run them (internal/ociruntime)
	debootstrap                                 # runtime images
	iptables iproute2                           # per-job network rules
	docker-registry                             # loopback registry for pull tests
	python3 nodejs                              # the helpers' own test runners
	openssh-server openssh-client               # SSH executor tests (their own sshd on loopback)
	python3-aiosmtpd                            # tool-action email tests: a real SMTP server with AUTH on loopback (runner/toolexec/testdata/smtpd.py)
	rpm cpio busybox-static                     # package tests: rpm -qp, rpm2cpio, an RPM install into a root holding only a static shell
	qemu-system-x86 e2fsprogs                   # VM test (hack/vm-test.sh): a Debian VM under TCG; mkfs.ext4 -d, debugfs
	chromium                                    # web console browser tests (headless, through chromedp)
	ca-certificates git make
)

[[ $(id -u) -eq 0 ]] || { echo "deps: run as root (it installs Debian packages)" >&2; exit 1; }

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Tests start sshds of their own on 127.0.0.1 (internal/testenv.StartSSHD).
# Debian's openssh-server package enables and starts a system sshd on port 22
# of every address; when this run installs the package, keep that from
# happening. An openssh-server that was there before is the operator's and
# is left alone.
installs_sshd=false
for p in "${missing[@]}"; do
	if [[ $p == openssh-server ]]; then installs_sshd=true; fi
done
# A policy-rc.d that refuses (101) stops maintainer scripts from starting
# services (invoke-rc.d, deb-systemd-invoke). Only one we created is ours to
# remove; an existing one (as in container images) already refuses or is
# the operator's choice.
own_policy=false
if $installs_sshd && [[ ! -e /usr/sbin/policy-rc.d ]]; then
	own_policy=true
	printf '#!/bin/sh\n# hack/deps.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
fi
# After the installation, and also when it fails half-way: remove our
# policy-rc.d, and disable the system sshd the package enabled even if
# policy-rc.d kept it from starting (stop it too, should it have started).
finish_install() {
	if $own_policy; then
		rm -f /usr/sbin/policy-rc.d
		own_policy=false
	fi
	$installs_sshd || return 0
	installs_sshd=false
	echo "deps: disabling the system sshd that openssh-server installed (tests run their own)"
	if [[ -d /run/systemd/system ]]; then
		systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
		return 0
	fi
	# No systemd running (a container, another init): disable the units for
	# a later boot with systemd, stop and disable the init script.
	if command -v systemctl >/dev/null; then
		systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
	fi
	if command -v service >/dev/null; then
		service ssh stop >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null; then
		update-rc.d ssh disable >/dev/null 2>&1 || true
	fi
}
trap finish_install EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# The Debian containerd package would start a system containerd under
	# systemd; we run our own instance (hack/containerd.sh), so leave it stopped.
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
finish_install
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

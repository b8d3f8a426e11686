#!/usr/bin/env bash
# crun, the OCI runtime the agent prefers (internal/ociruntime), refuses a
# hybrid cgroup host whose v2 hierarchy offers controllers; the agent then
# falls back to runc. This project's development and CI machines are such
# hosts: cgroup v1, with hugetlb, which no v1 hierarchy has, left to v2.
# So that tests, benchmarks and the demo run jobs as a Debian 12 host (pure
# cgroup v2) does, under crun, this mounts each controller the v2 hierarchy
# offers as a v1 hierarchy of its own, as a v1 host would have it. Only
# when no v2 cgroup uses the controller (the v2 root delegates none).
# Hosts with pure v1 or pure v2 are left alone. Idempotent; run as root.
# The agent's own runc path keeps its tests (TestOCIRuntimes runs a job
# under each runtime).
set -euo pipefail

unified=/sys/fs/cgroup/unified
[[ -r $unified/cgroup.controllers ]] || exit 0 # not a hybrid host
read -r -a offered <"$unified/cgroup.controllers" || true
((${#offered[@]} > 0)) || exit 0
if [[ -n $(tr -d '[:space:]' <"$unified/cgroup.subtree_control") ]]; then
	echo "cgroups: the v2 hierarchy delegates controllers ($(cat "$unified/cgroup.subtree_control")); left as it is, jobs run under runc" >&2
	exit 0
fi
# A failure is said, not fatal: the agent then runs jobs under runc, and
# TestOCIRuntimes says crun could not.
for c in "${offered[@]}"; do
	if mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; then
		echo "cgroups: mounted the $c controller as a v1 hierarchy at /sys/fs/cgroup/$c (it was offered, unused, by the v2 hierarchy), so that crun can run jobs" >&2
	else
		echo "cgroups: could not mount the $c controller as a v1 hierarchy; crun refuses this host, and jobs run under runc" >&2
	fi
done

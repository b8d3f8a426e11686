#!/usr/bin/env bash
# Exit non-zero and say what is left when anything of the agent's remains:
# containers, tasks, run snapshots, cgroups, mounts, run files, and the test
# sshds with what SSH runs leave on their server.
set -uo pipefail
ADDR=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
STATE=${STATE_DIR:-/var/lib/cronium-agent}
left=()
n=$(ctr --address "$ADDR" -n cronium containers ls -q 2>/dev/null | wc -l)
((n)) && left+=("$n containers")
n=$(ctr --address "$ADDR" -n cronium tasks ls -q 2>/dev/null | wc -l)
((n)) && left+=("$n tasks")
n=$(ctr --address "$ADDR" -n cronium snapshots ls 2>/dev/null | awk 'NR>1 && $1 ~ /^cronium-/' | wc -l)
((n)) && left+=("$n run snapshots")
n=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -path '*/cronium/*' -type d 2>/dev/null | wc -l)
((n)) && left+=("$n cgroups")
n=$(grep -c '/runs/cronium-' /proc/self/mountinfo)
((n)) && left+=("$n mounts")
n=$(find "$STATE/runs" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
((n)) && left+=("$n run directories in $STATE/runs")
n=$(ip netns list 2>/dev/null | grep -c '^cronium-')
((n)) && left+=("$n network namespaces")
n=$(ip -o link show type bridge 2>/dev/null | grep -c ' crn-')
((n)) && left+=("$n bridges")
n=$(ip -o link show type veth 2>/dev/null | grep -cE ' crv-|link-netns cronium-')
((n)) && left+=("$n veths")
n=$(find "${CNI_RUN_DIR:-/run/cronium-agent/cni}/nets" "${CNI_RUN_DIR:-/run/cronium-agent/cni}/subnets" -type f 2>/dev/null | wc -l)
((n)) && left+=("$n network records or leases")
n=$(iptables -S 2>/dev/null | grep -c -- '--comment cronium:')
((n)) && left+=("$n firewall rules")
# The agent's ip6tables rules (three drops for crn-+) are shared by all jobs
# and stay; a rule of one job would be tagged like the IPv4 ones.
n=$(ip6tables -S 2>/dev/null | grep -c -- '--comment cronium:')
((n)) && left+=("$n IPv6 firewall rules")
# What containerd and the OCI runtime (runc or crun) keep for a task until its clean-up (the shim
# wrapper answers containerd's clean-up call only when none of it is left):
# bundles, their root filesystem mounts, and runc's state.
n=0
for d in /run/cronium-containerd/state /run/containerd; do
	n=$((n + $(find "$d/io.containerd.runtime.v2.task/cronium" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
done
((n)) && left+=("$n task bundles")
n=$(grep -c 'io.containerd.runtime.v2.task/cronium/' /proc/self/mountinfo)
((n)) && left+=("$n task root filesystem mounts")
n=$(find /run/containerd/runc/cronium -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
if ((n)); then
	left+=("$n runc containers")
	# Which, and whose: the id, when runc created it and its bundle (which
	# names the containerd), so a failure in CI says which test left it.
	for d in /run/containerd/runc/cronium/*; do
		python3 - "$d" >&2 <<'PY' || echo "runc state $d (unreadable)" >&2
import json, os, sys, time
d = sys.argv[1]
for name in ("state.json", "status"):  # runc's, crun's
    try:
        st = json.load(open(os.path.join(d, name)))
        break
    except OSError:
        pass
else:
    print(f"runc state {d}: no state.json (runc) or status (crun); directory made {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(os.stat(d).st_mtime))}")
    sys.exit(0)
bundle = st.get("bundle") or next((l.split("=", 1)[1] for l in st.get("config", {}).get("labels", []) if l.startswith("bundle=")), "?")
print(f"{name} of {os.path.basename(d)}: created {st.get('created')}, init pid {st.get('init_process_pid', st.get('pid'))}, bundle {bundle}")
PY
	done
fi
# A shim whose task is gone (containerd lists every live task).
tasks=$(ctr --address "$ADDR" -n cronium tasks ls -q 2>/dev/null)
n=0
for id in $(pgrep -a -f 'containerd-shim-runc-v2 -namespace cronium' | grep -o -- '-id [^ ]*' | cut -d' ' -f2); do
	grep -qx -- "$id" <<<"$tasks" || n=$((n + 1))
done
((n)) && left+=("$n shims without a task")
# Private containerds of tests (internal/testenv.PrivateContainerd).
n=$(find /var/lib /run -maxdepth 1 -name 'cronium-test-containerd-*' 2>/dev/null | wc -l)
((n)) && left+=("$n private test containerd directories")
n=$(pgrep -c -f -- '--config /run/cronium-test-containerd-' || true)
((n)) && left+=("$n private test containerds")
# Test sshds (internal/testenv.StartSSHD): the listener runs with -f
# <dir>/sshd_config, its dir made below ${TMPDIR:-/tmp}.
n=$(pgrep -c -f -- '-f [^ ]*/cronium-sshd-' || true)
((n)) && left+=("$n test sshds")
n=$(find /tmp "${TMPDIR:-/tmp}" -mindepth 1 -maxdepth 1 -name 'cronium-sshd-*' 2>/dev/null | sort -u | wc -l)
((n)) && left+=("$n test sshd directories")
# What SSH runs leave on the test server, where they log in as
# cronium-sshtest: processes, and work directories (/tmp/cronium-job...,
# ${TMPDIR:-/tmp}/cronium-*). The account and its helper cache
# (~/.cache/cronium-agent) are kept on purpose.
if id -u cronium-sshtest >/dev/null 2>&1; then
	# Zombies are not counted: they are dead, and some inits reap them late.
	n=$(ps -u cronium-sshtest -o stat= 2>/dev/null | grep -vc '^Z' || true)
	((n)) && left+=("$n processes of cronium-sshtest")
	n=$(find /tmp "${TMPDIR:-/tmp}" -mindepth 1 -maxdepth 1 -user cronium-sshtest -name 'cronium-*' 2>/dev/null | sort -u | wc -l)
	((n)) && left+=("$n remote work directories of cronium-sshtest")
fi
if ((${#left[@]})); then
	echo "leftovers: ${left[*]}" >&2
	exit 1
fi
echo "leftovers: none"

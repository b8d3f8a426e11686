#!/usr/bin/env bash
# Whole-host CPU profile of N trivial jobs (issue 14): BSD process accounting
# records every process that exits during the run (shims, runc, CNI plugins,
# iptables, output loggers, job inits and scripts, the benchmark process
# itself), and containerd's own CPU is read from /proc before and after.
# Prints the CPU per job by command, largest first.
#
#   hack/profile-jobs.sh            (make profile; root; N=100 by default)
#   BENCH='BenchmarkTrivialJob/agent-cold$' hack/profile-jobs.sh   (cold starts;
#                                   default: BenchmarkTrivialJob/agent$, warm)
#
# Accounting samples at the kernel's AHZ (100 Hz): a short-lived process is
# charged the ticks it happened to run in, so small figures are noisy and
# only sums over many jobs mean anything. A job's init is recorded under
# the name it had at exit (cronium-init), and includes runc's container
# setup that ran in that process before the exec.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-100}
BENCH=${BENCH:-'BenchmarkTrivialJob/agent$'}
ADDRESS=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
PIDFILE=${CONTAINERD_PIDFILE:-/run/cronium-containerd/containerd.pid}
((EUID == 0)) || { echo "profile: run as root (process accounting)" >&2; exit 1; }
if ! command -v accton >/dev/null || ! command -v dump-acct >/dev/null; then
	apt-get install -y acct >/dev/null || { apt-get update >/dev/null && apt-get install -y acct >/dev/null; }
	accton off >/dev/null 2>&1 || true # the package may have turned it on
fi
pacct=$(mktemp "${TMPDIR:-/tmp}/cronium-pacct.XXXXXX")
trap 'accton off >/dev/null 2>&1 || true; rm -f "$pacct"' EXIT
cpid=$(cat "$PIDFILE")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Build first: the compiler's processes are not the jobs'.
(cd "$REPO" && go test -c -o "${pacct}.test" ./runner/container/)
c0=$(ticks "$cpid")
accton "$pacct" >/dev/null
(cd "$REPO/runner/container" && CRONIUM_TEST_CONTAINERD_ADDRESS=$ADDRESS CRONIUM_REQUIRE_CONTAINERD=1 \
	"${pacct}.test" -test.run '^$' -test.bench "$BENCH" -test.benchtime "${N}x") | grep Benchmark
accton off >/dev/null
c1=$(ticks "$cpid")
rm -f "${pacct}.test"
hz=$(getconf CLK_TCK)
printf "\nCPU per job over %d trivial jobs, by command (3 more run to warm up; the benchmark process is cronium-pacct.*, the go build of cronium-job go/compile/link):\n" "$N"
printf '%-22s %8s %10s %9s\n' command calls "total ms" "ms/job"
dump-acct "$pacct" | awk -F'|' -v n="$N" '{ gsub(/ /, "", $1); c[$1]++; t[$1] += $3 + $4 }
	END { for (k in c) printf "%-22s %8d %10.0f %9.1f\n", k, c[k], t[k] * 10, t[k] * 10 / n }' | sort -k4 -n -r
printf '%-22s %8s %10d %9.1f\n' "containerd (daemon)" - $(((c1 - c0) * 1000 / hz)) "$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$N" 'BEGIN { printf "%.1f", d * 1000 / hz / n }')"

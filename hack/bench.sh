#!/usr/bin/env bash
# make bench: run the benchmarks that put each of the agent's figures beside
# its floor, a plain `runc run` of the same remapped root filesystem with the
# same spec measured in the same run, and write one table of them to
# bench/latest.md with the machine, the commit and the versions. Machines
# differ twofold and drift; the ratios are what to compare.
#
#   hack/bench.sh
#
# Needs root, the test containerd and the runtime images (make import).
# Environment: CONTAINERD_ADDRESS, BENCH_LATENCY_N (jobs for the trivial
# job's latency and CPU, default 100), BENCH_THROUGHPUT_N (jobs at each
# concurrency, default 40), BENCH_OUT (default bench/latest.md), BENCH_FROM
# (a saved go test output, or a latest.md, to make the table again from
# instead of running the benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

ADDR=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
LATENCY_N=${BENCH_LATENCY_N:-100}
THROUGHPUT_N=${BENCH_THROUGHPUT_N:-40}
OUT=${BENCH_OUT:-bench/latest.md}
export CRONIUM_TEST_CONTAINERD_ADDRESS=$ADDR CRONIUM_REQUIRE_CONTAINERD=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
raw=$work/raw.txt
metrics=$work/metrics.txt

began=$(date -u +%s)
gotest() {
	go test -count=1 -timeout 30m -run '^$' "$@" 2>&1 | tee -a "$raw"
}
if [[ -n ${BENCH_FROM:-} ]]; then
	cp "$BENCH_FROM" "$raw" # the table again from saved output
else
	gotest -bench '^BenchmarkTrivialJob$' -benchtime "${LATENCY_N}x" ./runner/container/
	gotest -bench '^BenchmarkThroughput$' -benchtime "${THROUGHPUT_N}x" ./runner/container/
	gotest -bench '^BenchmarkE2E$' -benchtime "${THROUGHPUT_N}x" ./cmd/cronium-agent/
	gotest -bench '^BenchmarkBackend10kJobs$' -benchtime 5x ./cmd/cronium-backend/
	gotest -bench '^BenchmarkFleet$' -benchtime 1x ./cmd/cronium-backend/
fi
took=$(($(date -u +%s) - began))

# "BenchmarkX/sub-2  40  123 ns/op  1.5 p50-ms ..." → "BenchmarkX/sub p50-ms 1.5"
awk '/^Benchmark/ && NF >= 4 {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i + 1 <= NF; i += 2) print name, $(i + 1), $i
}' "$raw" >"$metrics"

get() { awk -v n="$1" -v u="$2" '$1 == n && $2 == u { v = $3 } END { print v }' "$metrics"; }

# row FIGURE DECIMALS AGENT-BENCH AGENT-UNIT [FLOOR-BENCH FLOOR-UNIT]
row() {
	local figure=$1 dec=$2 a f=""
	a=$(get "$3" "$4")
	[[ $# -ge 6 ]] && f=$(get "$5" "$6")
	awk -v fig="$figure" -v d="$dec" -v a="$a" -v f="$f" -v hasf="$(($# >= 6))" 'BEGIN {
		fmt = "%." d "f"
		as = a == "" ? "?" : sprintf(fmt, a)
		if (!hasf) { printf "| %s | %s | — | — |\n", fig, as; exit }
		fs = f == "" ? "?" : sprintf(fmt, f)
		r = (a == "" || f == "" || f + 0 == 0) ? "?" : sprintf("%.2f", a / f)
		printf "| %s | %s | %s | %s |\n", fig, as, fs, r
	}'
}

table() {
	echo "| figure | agent | floor (\`runc run\`) | ratio (agent/floor) |"
	echo "|---|---:|---:|---:|"
	row "trivial job p50, ms, warm sandbox (executor in-process)" 1 BenchmarkTrivialJob/agent p50-ms BenchmarkTrivialJob/runc p50-ms
	row "trivial job p99, ms, warm sandbox (executor in-process)" 1 BenchmarkTrivialJob/agent p99-ms BenchmarkTrivialJob/runc p99-ms
	row "trivial job p50, ms, until its removal is done too, warm" 1 BenchmarkTrivialJob/agent cleaned-p50-ms BenchmarkTrivialJob/runc p50-ms
	row "CPU per trivial job, ms, whole host, warm (sandbox included)" 1 BenchmarkTrivialJob/agent cpu-ms/job BenchmarkTrivialJob/runc cpu-ms/job
	row "trivial job p50, ms, cold (no warm sandbox)" 1 BenchmarkTrivialJob/agent-cold p50-ms BenchmarkTrivialJob/runc p50-ms
	row "trivial job p99, ms, cold" 1 BenchmarkTrivialJob/agent-cold p99-ms BenchmarkTrivialJob/runc p99-ms
	row "CPU per trivial job, ms, whole host, cold" 1 BenchmarkTrivialJob/agent-cold cpu-ms/job BenchmarkTrivialJob/runc cpu-ms/job
	row "\`crun run\` of the same bundle p50, ms" 1 BenchmarkTrivialJob/crun p50-ms BenchmarkTrivialJob/runc p50-ms
	row "CPU per \`crun run\`, ms, whole host" 1 BenchmarkTrivialJob/crun cpu-ms/job BenchmarkTrivialJob/runc cpu-ms/job
	local c
	for c in 1 4 8; do
		row "throughput c=$c, jobs/s (agent binary + backend)" 2 "BenchmarkE2E/c=$c" jobs/s "BenchmarkThroughput/c=$c/runc" jobs/s
	done
	row "claimed→completion p50 c=1, ms (agent binary + backend)" 1 "BenchmarkE2E/c=1" claimed-p50-ms "BenchmarkThroughput/c=1/runc" p50-ms
	row "claimed→completion p50, jobs 1 s apart, ms (agent binary + backend)" 1 "BenchmarkE2E/spaced" claimed-p50-ms "BenchmarkTrivialJob/runc" p50-ms
	row "claimed→completion p99, jobs 1 s apart, ms (agent binary + backend)" 1 "BenchmarkE2E/spaced" claimed-p99-ms "BenchmarkTrivialJob/runc" p99-ms
	row "submit→completion p50, jobs 1 s apart, ms (agent binary + backend)" 1 "BenchmarkE2E/spaced" p50-ms "BenchmarkTrivialJob/runc" p50-ms
	for c in 1 4 8; do
		row "submit→completion p50 c=$c, ms (agent binary + backend)" 1 "BenchmarkE2E/c=$c" p50-ms "BenchmarkThroughput/c=$c/runc" p50-ms
		row "submit→completion p99 c=$c, ms (agent binary + backend)" 1 "BenchmarkE2E/c=$c" p99-ms "BenchmarkThroughput/c=$c/runc" p99-ms
	done
	for c in 1 4 8; do
		row "CPU per job c=$c, ms, whole host (agent binary + backend)" 1 "BenchmarkE2E/c=$c" cpu-ms/job "BenchmarkThroughput/c=$c/runc" cpu-ms/job
	done
	for c in 1 4 8; do
		row "CPU per job c=$c, ms, whole host less the benchmark process" 1 "BenchmarkE2E/c=$c" agent-cpu-ms/job "BenchmarkThroughput/c=$c/runc" cpu-ms/job
	done
	for c in 1 4 8; do
		row "throughput c=$c, jobs/s (executor in-process)" 2 "BenchmarkThroughput/c=$c/agent" jobs/s "BenchmarkThroughput/c=$c/runc" jobs/s
	done
	row "agent RSS idle, MiB" 1 BenchmarkE2E/rss rss-idle-MiB
	row "agent RSS with 8 jobs running, MiB" 1 BenchmarkE2E/rss rss-8jobs-MiB
	row "backend RSS with 10 000 jobs stored, MiB" 1 BenchmarkBackend10kJobs rss-10k-jobs-MiB
	row "backend RSS after 5 console job lists of them, MiB" 1 BenchmarkBackend10kJobs rss-after-pages-MiB
	row "console jobs page with 10 000 jobs stored, ms" 1 BenchmarkBackend10kJobs jobs-page-ms
}

# fleet_row FIGURE DECIMALS UNIT TARGET: BenchmarkFleet's figure at 10, 100
# and 500 agents.
fleet_row() {
	local figure=$1 dec=$2 unit=$3 target=$4 n v cells=""
	for n in 10 100 500; do
		v=$(get "BenchmarkFleet/agents=$n" "$unit")
		cells+=" $(awk -v v="$v" -v d="$dec" 'BEGIN { if (v == "") print "?"; else printf "%." d "f", v }') |"
	done
	echo "| $figure |$cells $target |"
}

fleet_table() {
	echo "| figure | 10 agents | 100 agents | 500 agents | target (2 cores) |"
	echo "|---|---:|---:|---:|---|"
	fleet_row "jobs/s, steady stream of 100 jobs/s" 1 steady-jobs/s "keeps up"
	fleet_row "jobs/s, burst of 1000 jobs" 1 burst-jobs/s "≥ 100 at 100 agents"
	fleet_row "claim latency p50, ms (claimed − created, steady)" 1 claim-p50-ms ""
	fleet_row "claim latency p99, ms" 1 claim-p99-ms ""
	fleet_row "backend CPU s per 1000 jobs (steady)" 2 backend-cpu-s/1000jobs ""
	fleet_row "agents' CPU s per 1000 jobs (all agents, one process)" 2 agents-cpu-s/1000jobs ""
	fleet_row "host busy during the steady stream, % of one core" 0 host-busy-% ""
	fleet_row "backend RSS after the steady stream, MiB" 1 backend-rss-MiB ""
	fleet_row "idle: requests per second per agent" 3 idle-req/s/agent ""
	fleet_row "idle: backend CPU, % of one core" 2 idle-backend-cpu-% "< 5 at 500 agents"
	fleet_row "jobs with more than one completing call" 0 duplicates "0"
}

# The CPU the agent's side costs: the whole host less the benchmark process
# (the development backend and its polling clients).
awk '$2 == "cpu-ms/job" { c[$1] = $3 } $2 == "bench-cpu-ms/job" { s[$1] = $3 }
	END { for (n in c) if (n in s) print n, "agent-cpu-ms/job", c[n] - s[n] }' "$metrics" >"$work/less.txt"
cat "$work/less.txt" >>"$metrics"

cgroup=$(stat -fc %T /sys/fs/cgroup)
case $cgroup in
cgroup2fs) cgroup="v2" ;;
tmpfs) cgroup="v1$([[ -d /sys/fs/cgroup/unified ]] && echo ' (hybrid)')" ;;
esac
model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
family=$(awk -F': ' '/^cpu family/ { print $2; exit }' /proc/cpuinfo)
cpumodel=$(awk -F': ' '/^model\t/ { print $2; exit }' /proc/cpuinfo)
brand=$(awk '/^cpu: / { sub(/^cpu: */, ""); sub(/ *$/, ""); print; exit }' "$raw") # Go's, from CPUID
# What the agent's doctor says the jobs run under (containerd.ociRuntime: auto).
oci_runtime=$(CRONIUM_CONTAINERD_ADDRESS=$ADDR timeout 30 bin/cronium-agent doctor --json 2>/dev/null |
	python3 -c 'import json, sys
for c in json.load(sys.stdin).get("checks", []):
    if c.get("name") == "oci-runtime":
        print(c.get("detail", ""))' 2>/dev/null || true)
containerd_version=$(ctr --address "$ADDR" version 2>/dev/null | awk '/^Server:/ { s = 1 } s && /Version:/ { print $2; exit }')

mkdir -p "$(dirname "$OUT")"
{
	echo "# Benchmark figures"
	echo
	echo "Written by \`make bench\` (hack/bench.sh); each figure is beside its floor, a plain \`runc run\` of"
	echo "the same remapped root filesystem with the same spec, measured in the same run. Compare the"
	echo "ratios between machines, not the figures."
	echo
	echo "* date: $(date -u '+%Y-%m-%d %H:%M UTC')$([[ -n ${BENCH_FROM:-} ]] && echo ' (table from saved output)' || echo "; the benchmarks took $took s")"
	echo "* commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "* CPU: $model (family $family, model $cpumodel${brand:+; CPUID brand \"$brand\"}), $(nproc) CPUs"
	echo "* kernel $(uname -r), cgroup $cgroup"
	echo "* containerd ${containerd_version:-?}, $(runc --version | head -1), $(crun --version 2>/dev/null | head -1 || echo 'no crun'), $(go version | awk '{ print $3 }')"
	echo "* the jobs' OCI runtime (doctor): ${oci_runtime:-?}"
	echo "* jobs: $LATENCY_N for the trivial job, $THROUGHPUT_N at each concurrency"
	echo
	table
	echo
	echo "## A fleet on one backend (BenchmarkFleet)"
	echo
	fleet_table
	echo
	cat <<'EOF'
How each figure is measured:

* **trivial job** (`BenchmarkTrivialJob`, runner/container): `bash -c 'echo hi'`, one at a time,
  through the container executor in the test process as the agent builds it (image remapped,
  job network, runtime API, output captured), from "start requested" to "result" (exit and
  output captured; the run's removal goes on in the background, and "until its removal is done"
  times that too). *warm*: a warm sandbox is ready for each job, as on a host that had a moment
  between jobs: the wait for it is not timed, but the CPU that made it is counted. *cold*: no
  pool, each job makes its run. The floor `runc run`s the same remapped root filesystem
  (a read-only view of the snapshot) with the spec the agent would use, timed by the caller
  until it has exited. p50 and p99 are nearest-rank percentiles.
* **CPU per job**: the host's busy CPU time from `/proc/stat` (user, nice, system, irq, softirq
  and steal, all CPUs) over the run, less the busy rate measured over 3 s of idle just before
  the run (with the agent, containerd and the backend running) times the run's duration, divided
  by the number of jobs. Every process counts: the agent or test process, containerd, the shims,
  runc, the CNI plugins, iptables, the output logger; and, through the backend, the development
  backend and the clients polling it every 10 ms, which "less the benchmark process" leaves out
  (that process's own CPU, measured with getrusage the same way).
* **throughput c=N, submit→completion** (`BenchmarkE2E/c=N`, cmd/cronium-agent): the agent
  binary (`cronium-agent run`, allowed 8 jobs, polling every 0.05–0.1 s, one warm sandbox per
  image as by default) takes trivial bash jobs
  from the development backend; N clients each submit a job and wait for it to complete before
  submitting the next. jobs/s is jobs over the wall time; p50 and p99 are of the backend's
  completion time less its submission time; claimed→completion is the completion time less the
  claim time (the completion is journaled just before it is delivered). `BenchmarkE2E/spaced`
  runs the same jobs one at a time, a second apart (a host that is not saturated: each job finds
  the warm sandbox the pool made after the last one; back to back at c=1, every other job starts
  cold beside the refill); its floor is `BenchmarkTrivialJob/runc`. The floor (`BenchmarkThroughput/c=N/runc`) runs N
  workers each running `runc run`s of the bundle one after another; its p50 and p99 are of one
  `runc run`.
* **throughput c=N (executor in-process)** (`BenchmarkThroughput/c=N/agent`): N workers running
  trivial jobs through the executor in the test process (one warm sandbox, as the agent keeps),
  without the backend or the agent's dispatcher; the floor is the same `runc run` workers as above.
* **agent RSS** (`BenchmarkE2E/rss`): VmRSS of a fresh agent process allowed 8 jobs, idle 0.5 s
  after its first job, and its peak while 8 jobs (`sleep 3`) run at once. No floor.
* **backend with 10 000 jobs** (`BenchmarkBackend10kJobs`, cmd/cronium-backend): VmRSS of
  `cronium-backend serve` once 10 000 jobs are submitted, and after the console's jobs page (the
  newest 200) was served 5 times; the time to serve that page. No floor.
* **fleet** (`BenchmarkFleet`, cmd/cronium-backend): one `cronium-backend serve` process and 10,
  100 or 500 agents in the benchmark process, each with the real client (long-poll claims),
  journal, syncer and dispatcher (4 slots, the default intervals) and a no-op executor, so that
  the claim and report path is measured, not containers. After every agent's first heartbeat,
  15 s idle: the agents' requests (counted at their transport) and the backend's CPU
  (`/proc/PID/stat`). Then 1000 trivial jobs submitted at 100 jobs/s (jobs/s from the first
  submission to the last completion; claim latency from each job's claimedAt − createdAt; the
  backend's CPU over that time), then 1000 at once. The agents share the host's cores with the
  backend: "host busy" says how much was left. No floor.

The benchmarks' output:

```
EOF
	grep -E '^(Benchmark|goos|goarch|pkg|cpu|ok|FAIL|---)' "$raw" | sed 's/[[:space:]]*$//'
	echo '```'
} >"$work/latest.md"
chmod 644 "$work/latest.md"
mv "$work/latest.md" "$OUT"
echo "wrote $OUT"

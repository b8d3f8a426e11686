#!/usr/bin/env bash
# Run one real job per runtime through `cronium-agent exec` and show the output.
set -uo pipefail
AGENT=${1:-bin/cronium-agent}
export CRONIUM_CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
export CRONIUM_STATE_DIR=${STATE_DIR:-/var/lib/cronium-agent}

run() {
	local title=$1; shift
	local shown=() script="" prev=""
	for a in "$@"; do
		if [[ $prev == -c ]]; then script=$a; shown+=("SCRIPT"); else shown+=("$a"); fi
		prev=$a
	done
	printf '\n\033[1m== %s\033[0m\n$ cronium-agent exec %s\n' "$title" "${shown[*]}"
	[[ -n $script ]] && printf '%s\n' "$script" | sed 's/^/    | /'
	"$AGENT" exec "$@"
	printf '\033[2m(exit code %d)\033[0m\n' $?
}

run "bash" --runtime bash --env GREETING=hello -c 'echo "$GREETING from bash $BASH_VERSION in $(hostname) as $(id -un) ($(id -u))"; echo "job $CRONIUM_JOB_ID"; echo "a line on stderr" >&2'
run "python" --runtime python -c 'import sys, platform, requests, aiohttp
print(f"hello from Python {platform.python_version()}, requests {requests.__version__}, aiohttp {aiohttp.__version__}")
sys.exit(3)'
run "node" --runtime node -c 'console.log(`hello from Node.js ${process.version}`); console.error("uid", process.getuid())'
run "python with the runtime API: input, output, condition" --runtime python --input '{"numbers": [3, 4, 5]}' -c 'import cronium
nums = cronium.input()["numbers"]
print("sum of", nums, "is", sum(nums))
cronium.output({"sum": sum(nums)})
cronium.set_condition(sum(nums) > 10)
cronium.set_variable("last_sum", sum(nums))'
run "node reads the variable the python job set" --runtime node -c 'const cronium = require("cronium");
(async () => { console.log("last_sum =", await cronium.getVariable("last_sum")); })();'
run "the network: only the runtime API is reachable" --runtime bash -c 'echo "runtime-api is $(getent hosts runtime-api | cut -d" " -f1)"; (exec 3<>/dev/tcp/runtime-api/8081) && echo "runtime API port: open"; (timeout 2 bash -c "exec 3<>/dev/tcp/runtime-api/22") 2>/dev/null || echo "port 22 on the gateway: blocked"'
run "a timeout stops the script: its TERM trap runs, its next command never does" --runtime bash --timeout 2s -c 'trap "echo cleaning up after SIGTERM; exit 5" TERM
echo sleeping; sleep 600
echo "never printed: the script was stopped"'
run "out of memory (64MiB limit)" --runtime python --memory 64MiB -c 'x = bytearray(512 << 20); print("not reached")'
exit 0

#!/usr/bin/env bash
# Run one real job per runtime through `cronium-agent exec` and show the output.
set -uo pipefail
AGENT=${1:-bin/cronium-agent}
export CRONIUM_CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
export CRONIUM_STATE_DIR=${STATE_DIR:-/var/lib/cronium-agent}

run() {
	local title=$1; shift
	printf '\n\033[1m== %s\033[0m\n$ cronium-agent exec' "$title"; printf ' %q' "$@"; printf '\n'
	"$AGENT" exec "$@"
	printf '\033[2m(exit code %d)\033[0m\n' $?
}

run "bash" --runtime bash --env GREETING=hello -c 'echo "$GREETING from bash $BASH_VERSION in $(hostname) as $(id -un) ($(id -u))"; echo "job $CRONIUM_JOB_ID"; echo "a line on stderr" >&2'
run "python" --runtime python -c 'import sys, platform, requests, aiohttp
print(f"hello from Python {platform.python_version()}, requests {requests.__version__}, aiohttp {aiohttp.__version__}")
sys.exit(3)'
run "node" --runtime node -c 'console.log(`hello from Node.js ${process.version}`); console.error("uid", process.getuid())'
run "a timeout (sleep 600 stopped after 2s)" --runtime bash --timeout 2s -c 'echo sleeping; sleep 600'
run "out of memory (64MiB limit)" --runtime python --memory 64MiB -c 'x = bytearray(512 << 20); print("not reached")'
exit 0

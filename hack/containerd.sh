#!/usr/bin/env bash
# Make sure a containerd answers at $CONTAINERD_ADDRESS. When none does,
# start one of our own with its own root, state and socket, so that tests and
# the demo never touch a system containerd's data. Idempotent; run as root.
#
#   hack/containerd.sh        start if needed, print the socket
#   hack/containerd.sh stop   stop the instance this script started
set -euo pipefail

ADDR=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
RUN_DIR=$(dirname "$ADDR")
ROOT=${CONTAINERD_ROOT:-/var/lib/cronium-containerd}
PIDFILE=$RUN_DIR/containerd.pid
LOG=${CONTAINERD_LOG:-/var/log/cronium-containerd.log}

answers() { ctr --address "$ADDR" --timeout 2s version >/dev/null 2>&1; }

if [[ ${1:-} == stop ]]; then
	if [[ -f $PIDFILE ]] && kill "$(cat "$PIDFILE")" 2>/dev/null; then
		for _ in $(seq 50); do answers || break; sleep 0.1; done
	fi
	rm -f "$PIDFILE"
	exit 0
fi

if answers; then
	echo "$ADDR"
	exit 0
fi
mkdir -p "$RUN_DIR" "$ROOT"
cat >"$RUN_DIR/config.toml" <<TOML
version = 2
root = "$ROOT"
state = "$RUN_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ADDR"
[ttrpc]
  address = "$ADDR.ttrpc"
TOML
rm -f "$ADDR"
# setsid: the daemon must outlive the make or CI step that started it.
setsid containerd --config "$RUN_DIR/config.toml" >>"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
for _ in $(seq 100); do
	if answers; then
		echo "$ADDR"
		exit 0
	fi
	sleep 0.1
done
echo "containerd did not come up at $ADDR; see $LOG:" >&2
tail -20 "$LOG" >&2
exit 1

#!/usr/bin/env bash
# The agent as it runs in production, against the development backend: start
# both, submit a Bash, a Python and a Node.js job through the backend, wait
# for them, and show what the backend received.
#   hack/demo-agent.sh [AGENT [BACKEND]]   (default bin/cronium-agent, and the
#                                          cronium-backend beside it)
#   hack/demo-agent.sh --stop              stop what the last demo left running
set -uo pipefail

# The demo leaves its backend (with the web console) running for the user;
# the next demo, or `hack/demo-agent.sh --stop` (make stop), stops it first.
# Not the agent: its warm sandboxes would be another agent's leftovers to
# `make test`.
KEEP=/run/cronium-demo
stop_previous() {
	local pid
	for f in backend; do
		pid=$(cat "$KEEP/$f.pid" 2>/dev/null) || continue
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null
		fi
		rm -f "$KEEP/$f.pid"
	done
	[[ -f $KEEP/dir ]] && rm -rf "$(cat "$KEEP/dir")" "$KEEP/dir"
	return 0
}
if [[ ${1:-} == --stop ]]; then stop_previous; exit 0; fi
AGENT=$(realpath "${1:-bin/cronium-agent}")
BACKEND=$(realpath "${2:-$(dirname "$AGENT")/cronium-backend}")
[[ -x $BACKEND ]] || { echo "no development backend at $BACKEND: run make build"; exit 1; }
export CRONIUM_CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/cronium-containerd/containerd.sock}
export CRONIUM_STATE_DIR=${STATE_DIR:-/var/lib/cronium-agent}
stop_previous
mkdir -p "$KEEP"
DEMO=$(mktemp -d /tmp/cronium-demo.XXXXXX)
echo "$DEMO" >"$KEEP/dir"
CRONIUM_BACKEND_TOKEN=demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export CRONIUM_BACKEND_TOKEN
(umask 077 && printf '%s\n' "$CRONIUM_BACKEND_TOKEN" >"$DEMO/token")
keep=false

cleanup() {
	[[ -n ${SSHD_PID:-} ]] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null
	# SIGTERM drains the agent: its runs end and their containers go.
	[[ -n ${AGENT_PID:-} ]] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	$keep && return
	[[ -n ${BACKEND_PID:-} ]] && kill "$BACKEND_PID" 2>/dev/null && wait "$BACKEND_PID" 2>/dev/null
	rm -rf "$DEMO" "$KEEP/dir"
}
trap cleanup EXIT

# The console's usual address when it is free, any free port otherwise.
listen=127.0.0.1:5001
(exec 3<>/dev/tcp/127.0.0.1/5001) 2>/dev/null && listen=127.0.0.1:0
setsid "$BACKEND" serve --listen "$listen" --data "$DEMO/backend" >"$DEMO/backend.out" 2>"$DEMO/backend.log" </dev/null &
BACKEND_PID=$!
for _ in $(seq 50); do grep -q listening "$DEMO/backend.out" 2>/dev/null && break; sleep 0.1; done
export CRONIUM_BACKEND_URL=$(grep -o 'http://[0-9.:]*' "$DEMO/backend.out" | head -1)
[[ -n $CRONIUM_BACKEND_URL ]] || { echo "the development backend did not start:"; cat "$DEMO/backend.log"; exit 1; }
printf '\n\033[1m== the agent against the development backend at %s\033[0m\n' "$CRONIUM_BACKEND_URL"

# SSH jobs go to an OpenSSH server of the demo's own on loopback (root, by
# a key made for the demo); the agent pins its host key in the demo's
# known_hosts, not the agent's.
export CRONIUM_SSH_KNOWN_HOSTS=$DEMO/known_hosts
start_sshd() {
	command -v /usr/sbin/sshd >/dev/null || { echo "no sshd (apt install openssh-server): the SSH demo is skipped"; return 1; }
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$DEMO/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$DEMO/id_ed25519" || return 1
	cp "$DEMO/id_ed25519.pub" "$DEMO/authorized_keys"
	SSHD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >"$DEMO/sshd_config" <<-EOF2
		Port $SSHD_PORT
		ListenAddress 127.0.0.1
		HostKey $DEMO/host_key
		PidFile $DEMO/sshd.pid
		AuthorizedKeysFile $DEMO/authorized_keys
		StrictModes no
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		AllowTcpForwarding yes
		GatewayPorts no
		UsePAM no
	EOF2
	/usr/sbin/sshd -D -e -f "$DEMO/sshd_config" 2>"$DEMO/sshd.log" &
	SSHD_PID=$!
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && return 0; sleep 0.1; done
	echo "sshd did not start:"; cat "$DEMO/sshd.log"; return 1
}

METRICS=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_agent() {
	# Metrics on a free port of their own (an installed agent may hold 9465).
	CRONIUM_API_ENDPOINT=$CRONIUM_BACKEND_URL CRONIUM_API_TOKEN=$CRONIUM_BACKEND_TOKEN CRONIUM_JOBS_POLL_INTERVAL=0.2 \
		CRONIUM_METRICS_LISTEN=$METRICS setsid "$AGENT" run 2>>"$DEMO/agent.log" </dev/null &
	AGENT_PID=$!
}
start_agent

bash_id=$("$BACKEND" submit --runtime bash --env CITY=Lyon -c 'echo "weather report for $CITY"; for i in 1 2 3; do echo "reading $i: $((15 + i))C"; done')
py_id=$("$BACKEND" submit --runtime python --input '{"readings": [16, 17, 18]}' -c 'import cronium
r = cronium.input()["readings"]
avg = sum(r) / len(r)
print(f"average of {r} is {avg}")
cronium.output({"average": avg, "count": len(r)})
cronium.set_condition(avg > 15)')
node_id=$("$BACKEND" submit --runtime node --user demo-user -c 'const cronium = require("cronium");
(async () => {
  const runs = (await cronium.getVariable("demo_runs")) || 0;
  await cronium.setVariable("demo_runs", runs + 1);
  console.log(`this demo has run ${runs + 1} time(s) on this backend`);
})();')

for id in "$bash_id" "$py_id" "$node_id"; do
	printf '\n\033[1m-- job %s\033[0m\n' "$id"
	"$BACKEND" logs "$id" -f >/dev/null 2>&1
	"$BACKEND" show "$id"
done

if start_sshd; then
	printf '\n\033[1m== SSH: the same kind of job on a server (an sshd of the demo on 127.0.0.1:%s), then on two at once\033[0m\n' "$SSHD_PORT"
	web1=$("$BACKEND" servers add --name web-1 --host 127.0.0.1 --port "$SSHD_PORT" --user root --key "$DEMO/id_ed25519")
	web2=$("$BACKEND" servers add --name web-2 --host 127.0.0.1 --port "$SSHD_PORT" --user root --key "$DEMO/id_ed25519")
	"$BACKEND" servers list
	ssh_id=$("$BACKEND" submit --runtime bash --server "$web1" --input '{"service": "nginx"}' -c 'svc=$(cronium_input | sed "s/.*\"service\": *\"\([^\"]*\)\".*/\1/")
echo "checking $svc on $(hostname) over SSH as $(id -un), in a private directory: $(pwd)"
cronium_output "{\"service\": \"$svc\", \"host\": \"$(hostname)\"}"')
	multi_id=$("$BACKEND" submit --runtime python --server "$web1,$web2" -c 'import os, socket
print("python on", socket.gethostname(), "as execution", os.environ["CRONIUM_EXECUTION_ID"])')
	for id in "$ssh_id" "$multi_id"; do
		printf '\n\033[1m-- job %s\033[0m\n' "$id"
		"$BACKEND" logs "$id" -f >/dev/null 2>&1
		"$BACKEND" show "$id"
	done
fi

printf '\n\033[1m== crash recovery: the agent is killed (SIGKILL) while a job prints; a new agent takes it over\033[0m\n'
slow_id=$("$BACKEND" submit --runtime bash -c 'for i in $(seq 1 8); do echo "tick $i"; sleep 0.5; done')
for _ in $(seq 100); do "$BACKEND" logs "$slow_id" 2>/dev/null | grep -q "tick 2" && break; sleep 0.1; done
kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
echo "agent killed after: $("$BACKEND" logs "$slow_id" 2>/dev/null | tail -1)"
start_agent
"$BACKEND" logs "$slow_id" -f >/dev/null 2>&1
"$BACKEND" show "$slow_id"
printf '\n\033[1m-- what the agent journaled (cronium-agent jobs, through its admin socket)\033[0m\n'
"$AGENT" jobs --limit 5
metrics=$METRICS
printf '\n\033[1m-- its Prometheus metrics (GET http://%s/metrics, some cronium_ lines; the counters start with the restarted agent)\033[0m\n' "$metrics"
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode())' "$metrics" |
	grep -E '^cronium_(jobs_total|running_jobs|free_slots|undelivered_items|backend_reachable|component_up|claim_latency_seconds_count|job_phase_seconds_sum)' ||
	echo "(the metrics listener did not answer)"
printf '\n\033[2m(agent log: %s, %s lines)\033[0m\n' "$DEMO/agent.log" "$(wc -l <"$DEMO/agent.log")"

# Left running: the backend with its console, for the user.
echo "$BACKEND_PID" >"$KEEP/backend.pid"
keep=true
printf '\n\033[1m== the web console: %s/\033[0m\n' "$CRONIUM_BACKEND_URL"
printf 'Log in with the token in %s (the demo backend'"'"'s service token).\n' "$DEMO/token"
printf 'The backend stays running (make stop ends it). To run the jobs you submit there, start an agent:\n'
printf '  CRONIUM_API_ENDPOINT=%s CRONIUM_API_TOKEN=$(cat %s) %s run\n' "$CRONIUM_BACKEND_URL" "$DEMO/token" "$AGENT"

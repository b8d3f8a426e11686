#!/bin/bash
# The test that hack/vm-test.sh runs INSIDE the Debian 12 VM it boots, as
# cronium-vmtest.service (After=multi-user.target), on a host with systemd
# as PID 1 and no network device: everything talks over loopback, and jobs
# over the bridges and namespaces the agent makes inside the VM.
#
# It does what an operator would: apt install the three packages, start the
# unconfigured agent (status 78, no restart loop), configure and start the
# packaged development backend and the agent, doctor, a job, an upgrade of
# the agent package while a job runs, a crash of the agent while a job runs
# (the unit's Restart= and KillMode=process: the job's container survives
# and the new agent adopts it), a draining stop, and a purge.
#
# Every check is one line "VMTEST PASS|FAIL|INFO [total] (step) text" on the
# serial console (fd 3) and in /var/lib/cronium-vmtest/results, which the
# host reads from the disk image after the VM powers off (the unit's
# SuccessAction=/FailureAction=poweroff). Everything else (command output,
# the journal) goes to /var/lib/cronium-vmtest/log and journal.txt.
#
# Input: /opt/cronium-vmtest (the .debs, v2/ the next agent package, and
# vmtest.env: V2_BIN_VERSION, START_BOUND, ...).
set -u
trap '' HUP
D=/opt/cronium-vmtest
OUT=/var/lib/cronium-vmtest
mkdir -p "$OUT"
RES=$OUT/results
LOG=$OUT/log
: >"$RES"
exec 3>/dev/console
exec >>"$LOG" 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=/dev/null
. "$D/vmtest.env"
START_BOUND=${START_BOUND:-600}

T0=$(date +%s%N)
TS=$T0
NPASS=0
NFAIL=0
now() { date +%s%N; }
secs() { awk -v s="$1" -v e="${2:-$(now)}" 'BEGIN { printf "%.1f", (e - s) / 1e9 }'; }
emit() {
	local line
	line=$(printf 'VMTEST %-4s [%6ss] (%5ss) %s' "$1" "$(secs "$T0")" "$(secs "$TS")" "$2")
	printf '%s\n' "$line" >>"$RES"
	printf '%s\r\n' "$line" >&3
	printf '### %s\n' "$line"
}
pass() { NPASS=$((NPASS + 1)); emit PASS "$*"; }
fail() { NFAIL=$((NFAIL + 1)); emit FAIL "$*"; }
info() { emit INFO "$*"; }
# step NAME: a new step; its checks report the time since it began.
step() {
	TS=$(now)
	printf '\n######## %s\n' "$*"
	emit STEP "$*"
}
# check MSG CMD...: PASS when CMD succeeds.
check() {
	local msg=$1
	shift
	if "$@"; then pass "$msg"; else fail "$msg"; fi
}
# same MSG GOT WANT
same() {
	if [[ $2 == "$3" ]]; then pass "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}
# same_quiet MSG GOT WANT: the same, without the value on a PASS.
same_quiet() {
	if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
# wait_for SECONDS CMD...: poll CMD every half second until it succeeds.
wait_for() {
	local end=$(($(date +%s) + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		(($(date +%s) < end)) || return 1
		sleep 0.5
	done
}
prop() { systemctl show -p "$2" --value "$1"; }
run() {
	printf '$ %s\n' "$*"
	"$@"
}

# The backend's client commands read these (and the agent's env file has
# the same two lines).
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CRONIUM_BACKEND_URL=http://127.0.0.1:5001 CRONIUM_BACKEND_TOKEN=$TOKEN
job() { cronium-backend show --json "$1" | jq -r "$2"; }
# job_raw ID FILTER: the string as it is (no newline added).
job_raw() { cronium-backend show --json "$1" | jq -j "$2"; }
job_status() { job "$1" .status; }
# job_lines ID: its stdout lines so far, from the live log.
job_lines() { cronium-backend logs "$1" 2>/dev/null; }
nlines() { job_lines "$1" | grep -c . || true; }
running_with() { [[ $(job_status "$1") == running ]] && (($(nlines "$1") >= $2)); }
terminal() { case $(job_status "$1") in completed | failed | cancelled | timeout) return 0 ;; esac; return 1; }
containers() { ctr -n cronium containers ls -q 2>/dev/null | sort | tr '\n' ' '; }
# task_of CID: "PID STATUS" of the container's task.
task_of() { ctr -n cronium tasks ls 2>/dev/null | awk -v c="$1" '$1 == c { print $2, $3 }'; }
# agent_log_since USEC: the agent's journal from a CLOCK_REALTIME µs on.
agent_log_since() { journalctl -u cronium-agent -o cat --no-pager --since "@$(($1 / 1000000))"; }
# check_job ID N: completed, exit 0, one completing call, stdout = 1..N.
check_job() {
	local id=$1 n=$2 what=$3
	if ! wait_for 300 terminal "$id"; then
		fail "$what: $id did not end within 300 s (status $(job_status "$id"), $(nlines "$id") lines)"
		return
	fi
	cronium-backend show "$id"
	same "$what: $id status" "$(job_status "$id")" completed
	same "$what: $id exit code" "$(job "$id" .exitCode)" 0
	same "$what: $id completing calls (exactly once)" "$(job "$id" .completions)" 1
	same_quiet "$what: $id live log = 1..$n, each line once, in order" "$(job_lines "$id" | tr '\n' ' ')" "$(seq 1 "$n" | tr '\n' ' ')"
	same_quiet "$what: $id reported stdout = 1..$n" "$(job_raw "$id" .output.stdout | tr '\n' ' ')" "$(seq 1 "$n" | tr '\n' ' ')"
}
# counting_job N: submits `echo 1..N, a second apart`, prints its id.
counting_job() {
	cronium-backend submit --name "count to $1" -c "for i in \$(seq 1 $1); do echo \$i; sleep 1; done"
}

finish() {
	step "end"
	journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1
	emit DONE "$NPASS passed, $NFAIL failed"
	sync
	exit 0
}

# ------------------------------------------------------------------- boot
step "boot"
read -r up _ </proc/uptime
info "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), uptime at test start ${up}s"
info "boot: multi-user.target reached $(awk -v u="$(prop multi-user.target ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.1f", u / 1e6 }')s after the kernel started; $(systemd-analyze time 2>/dev/null | head -1 | sed 's/^Startup finished in //')"
info "network devices: $(ls /sys/class/net | tr '\n' ' ')(loopback only: the VM has none)"
systemctl --no-pager --failed
same "containerd.service (the Debian package's) is active" "$(systemctl is-active containerd)" active

# ---------------------------------------------------------------- install
step "apt install ./cronium-agent_*.deb ./cronium-runtimes_*.deb ./cronium-backend_*.deb (offline)"
cd "$D" || { fail "no $D"; finish; }
t=$(now)
if run apt install -y ./"$AGENT_DEB" ./"$RUNTIMES_DEB" ./"$BACKEND_DEB" >"$OUT/apt-install.txt" 2>&1; then
	pass "apt install of the three .debs, no network ($(secs "$t")s)"
else
	fail "apt install of the three .debs: $(tail -3 "$OUT/apt-install.txt" | tr '\n' ' ')"
	if run dpkg -i ./"$AGENT_DEB" ./"$RUNTIMES_DEB" ./"$BACKEND_DEB"; then info "installed with dpkg -i instead"; fi
fi
cat "$OUT/apt-install.txt"
check "apt fetched nothing from the network" bash -c '! grep -Eq "^(Get|Err|Ign):[0-9]+ (http|https|ftp)" "$1"' _ "$OUT/apt-install.txt"
for p in cronium-agent cronium-runtimes cronium-backend; do
	same "$p installed" "$(dpkg-query -W -f='${Status}' "$p" 2>&1)" "install ok installed"
done
same "postinst did not enable the agent" "$(systemctl is-enabled cronium-agent 2>&1)" disabled
same "postinst did not start the agent" "$(systemctl is-active cronium-agent 2>&1)" inactive
same "postinst made the state directory 0711" "$(stat -c %a /var/lib/cronium-agent 2>&1)" 711
same "/etc/default/cronium-agent 0600" "$(stat -c %a /etc/default/cronium-agent 2>&1)" 600
V1_BIN=$(cronium-agent version)
info "installed: $(dpkg-query -W -f='${Package} ${Version}, ' 'cronium-*')binary: $V1_BIN"

# ----------------------------------------------------------- unconfigured
step "unconfigured agent: systemctl start cronium-agent"
t=$(now)
if timeout 120 systemctl start cronium-agent; then
	fail "systemctl start of the unconfigured agent succeeded"
else
	pass "systemctl start of the unconfigured agent fails ($(secs "$t")s)"
fi
same "exit status 78 (EX_CONFIG)" "$(prop cronium-agent ExecMainStatus)" 78
same "Result" "$(prop cronium-agent Result)" exit-code
sleep 12 # more than twice RestartSec=5s
same "12 s later: still failed, not restarted" "$(prop cronium-agent ActiveState) NRestarts=$(prop cronium-agent NRestarts)" "failed NRestarts=0"
status=$(systemctl status --no-pager -l cronium-agent 2>&1)
printf '%s\n' "$status"
check "systemctl status shows why: 'no backend to take jobs from'" grep -q 'no backend to take jobs from' <<<"$status"
same "one start in the journal (no restart loop)" "$(journalctl -u cronium-agent -o cat --no-pager | grep -c 'no backend to take jobs from')" 1

# ---------------------------------------------------------------- backend
step "cronium-backend: token in /etc/default/cronium-backend, systemctl enable --now"
sed -i "s|^#CRONIUM_BACKEND_TOKEN=.*|CRONIUM_BACKEND_TOKEN=$TOKEN|" /etc/default/cronium-backend
check "token set in /etc/default/cronium-backend" grep -qx "CRONIUM_BACKEND_TOKEN=$TOKEN" /etc/default/cronium-backend
t=$(now)
check "systemctl enable --now cronium-backend" run systemctl enable --now cronium-backend
if wait_for 120 cronium-backend jobs; then
	pass "the backend answers at $CRONIUM_BACKEND_URL ($(secs "$t")s)"
else
	fail "the backend does not answer at $CRONIUM_BACKEND_URL: $(systemctl status --no-pager -l cronium-backend 2>&1 | tail -5 | tr '\n' ' ')"
fi

# ------------------------------------------------------------------ agent
step "cronium-agent: URL and token in /etc/default/cronium-agent, systemctl enable --now"
sed -i -e "s|^#CRONIUM_BACKEND_URL=.*|CRONIUM_BACKEND_URL=$CRONIUM_BACKEND_URL|" \
	-e "s|^#CRONIUM_BACKEND_TOKEN=.*|CRONIUM_BACKEND_TOKEN=$TOKEN|" \
	-e "s|^#CRONIUM_LOG_LEVEL=.*|CRONIUM_LOG_LEVEL=info|" /etc/default/cronium-agent
grep -v '^#' /etc/default/cronium-agent | grep . | sed 's/TOKEN=.*/TOKEN=.../'
t=$(now)
if timeout "$START_BOUND" systemctl enable --now cronium-agent; then
	pass "systemctl enable --now cronium-agent returned ($(secs "$t")s; bound ${START_BOUND}s)"
else
	fail "systemctl enable --now cronium-agent failed or took more than ${START_BOUND}s ($(secs "$t")s)"
fi
same "the unit is active (Type=notify: READY=1 was sent)" "$(systemctl is-active cronium-agent)" active
same "the unit is enabled" "$(systemctl is-enabled cronium-agent)" enabled
ready=$(awk -v s="$(prop cronium-agent ExecMainStartTimestampMonotonic)" -v e="$(prop cronium-agent ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.1f", (e - s) / 1e6 }')
info "start to READY: ${ready}s (first start: imports the packaged runtime images); status: $(prop cronium-agent StatusText)"
images=$(cronium-agent images list 2>&1)
printf '%s\n' "$images"
for rt in bash python node; do
	check "runtime image $rt imported from /usr/share/cronium/runtimes" grep -q "cronium.local/runtimes/$rt:latest" <<<"$images"
done

step "cronium-agent doctor (with the service's environment file)"
t=$(now)
code=0
out=$(set -a && . /etc/default/cronium-agent && set +a && cronium-agent doctor 2>&1) || code=$?
printf '%s\n' "$out"
if ((code == 0)); then
	pass "doctor: no check failed ($(secs "$t")s): $(tail -1 <<<"$out")"
else
	fail "doctor (exit $code): $(grep -E '^(FAIL|WARN)' <<<"$out" | tr '\n' ' ')"
fi
grep -E '^WARN' <<<"$out" | while read -r l; do info "doctor: $l"; done
# A cgroup v2 host, crun installed (the agent's recommends, in the image):
# the jobs run under crun (internal/ociruntime).
check "doctor: jobs run under crun on this cgroup v2 host" grep -qE '^PASS +oci-runtime +crun \(' <<<"$out"

# -------------------------------------------------------------- first job
step "cronium-backend submit --wait: a bash job"
t=$(now)
code=0
out=$(timeout 300 cronium-backend submit --wait -c 'echo "hello from $(hostname) as $(id -un)"; echo "kernel $(uname -r)"' 2>"$OUT/submit1.err") || code=$?
printf '%s\n' "$out"
cat "$OUT/submit1.err"
if ((code == 0)) && grep -q '^hello from .* as ' <<<"$out"; then
	pass "the job ran and printed '$(head -1 <<<"$out")' ($(secs "$t")s from submit to end)"
else
	fail "submit --wait (exit $code): $out $(tail -3 "$OUT/submit1.err" | tr '\n' ' ')"
fi
id1=$(sed -n 's/^submitted //p' "$OUT/submit1.err")
if [[ -n $id1 ]]; then
	same "$id1: status" "$(job_status "$id1")" completed
	same "$id1: completing calls" "$(job "$id1" .completions)" 1
fi

# ---------------------------------------------------------------- upgrade
step "upgrade the agent package while a 30-line job runs"
id2=$(counting_job 30)
info "job $id2: echo 1..30, a second apart"
if wait_for 180 running_with "$id2" 3; then
	pass "$id2 runs and has printed $(nlines "$id2") lines"
else
	fail "$id2 did not start within 180 s (status $(job_status "$id2"))"
fi
cid_before=$(containers)
info "containers before: $cid_before; task: $(task_of "${cid_before%% *}")"
pid_before=$(prop cronium-agent MainPID)
start_before=$(prop cronium-agent ExecMainStartTimestamp)
v2deb=$(ls "$D"/v2/cronium-agent_*.deb)
t=$(now)
t_rt=$(($(date +%s%N) / 1000))
if run apt install -y "$v2deb" >"$OUT/apt-upgrade.txt" 2>&1; then
	pass "apt install ./v2/$(basename "$v2deb") ($(secs "$t")s: it waits for the agent's restart)"
else
	fail "apt install of the next version: $(tail -3 "$OUT/apt-upgrade.txt" | tr '\n' ' ')"
fi
t_done=$(now)
cat "$OUT/apt-upgrade.txt"
cid_after=$(containers)
same "dpkg: cronium-agent upgraded" "$(dpkg-query -W -f='${Version}' cronium-agent)" "$V2_PKG_VERSION-1"
same "/usr/bin/cronium-agent version" "$(cronium-agent version)" "cronium-agent $V2_BIN_VERSION"
start_after=$(prop cronium-agent ExecMainStartTimestamp)
pid_after=$(prop cronium-agent MainPID)
check "the service was restarted: ExecMainStartTimestamp '$start_before' -> '$start_after', MainPID $pid_before -> $pid_after" \
	test "$start_after" != "$start_before" -a "$pid_after" != "$pid_before" -a "$pid_after" != 0
same "the unit is active again" "$(systemctl is-active cronium-agent)" active
exe=$(readlink "/proc/$pid_after/exe")
same_quiet "the new main process runs the new binary (/proc/PID/exe = /usr/bin/cronium-agent, not deleted, same bytes)" \
	"$exe $(sha256sum <"/proc/$pid_after/exe" | cut -c1-16)" "/usr/bin/cronium-agent $(sha256sum </usr/bin/cronium-agent | cut -c1-16)"
same "the running agent reports the new version (status --json)" "$(cronium-agent status --json 2>/dev/null | jq -r .version)" "$V2_BIN_VERSION"
after_log=$(agent_log_since "$t_rt")
printf 'agent journal since the upgrade began:\n%s\n' "$after_log"
check "the postinst armed a hand-over (journal: 'the next stop hands')" grep -q 'the next stop hands' <<<"$after_log"
check "the old agent handed its job over on the stop (journal: 'handed over')" grep -q 'handed over: every running job is left to the next start' <<<"$after_log"
check "the old agent did not drain (no 'draining: no new claims')" bash -c '! grep -q "draining: no new claims" <<<"$1"' _ "$after_log"
info "containers after the restart: ${cid_after:-none}"
check "the new agent adopted $id2 from the journal (journal: 'recovering a job from the journal ... $id2')" grep -q "recovering a job from the journal.*$id2" <<<"$after_log"
# The job's container stays; a warm sandbox the pool had ready is removed
# at the stop, as every stop does: what is listed after must all have been
# there before, and something must be.
check "its container survived the restart: $cid_after, of $cid_before" \
	bash -c '[[ -n ${1// /} ]] || exit 1; for c in $1; do [[ " $2 " == *" $c "* ]] || exit 1; done' _ "$cid_after" "$cid_before"
check_job "$id2" 30 "job across the upgrade"
info "apt waited $(secs "$t" "$t_done")s for the upgrade and the restart (a drain would have waited for the rest of the 30-line job)"

# ------------------------------------------------------------------ crash
step "kill -9 the agent while a 60-line job runs: Restart=on-failure, KillMode=process, adoption"
id3=$(counting_job 60)
info "job $id3: echo 1..60, a second apart"
if wait_for 180 running_with "$id3" 3; then
	pass "$id3 runs and has printed $(nlines "$id3") lines"
else
	fail "$id3 did not start within 180 s (status $(job_status "$id3"))"
fi
cid=$(containers)
cid=${cid%% *}
task=$(task_of "$cid")
info "container $cid, task (pid status): $task"
pid_before=$(prop cronium-agent MainPID)
restarts_before=$(prop cronium-agent NRestarts)
t=$(now)
t_rt=$(($(date +%s%N) / 1000))
kill -KILL "$pid_before"
sleep 1
same_quiet "with the agent dead, the job's task still runs (same pid $task)" "$(task_of "$cid")" "$task"
if wait_for 180 bash -c '[[ $(systemctl show -p NRestarts --value cronium-agent) -gt '"$restarts_before"' && $(systemctl is-active cronium-agent) == active ]]'; then
	pass "systemd restarted the agent (NRestarts $restarts_before -> $(prop cronium-agent NRestarts)) and it is active again ($(secs "$t")s after the kill; RestartSec=5s)"
else
	fail "the agent was not restarted within 180 s: $(prop cronium-agent ActiveState) NRestarts=$(prop cronium-agent NRestarts)"
fi
now_task=$(task_of "$cid")
if [[ $(job_status "$id3") == running ]]; then
	same "once the new agent is up, the job's container and task are the same" "$cid $now_task" "$cid $task"
else
	info "$id3 already ended ($(job_status "$id3")) when the new agent was up"
fi
crash_log=$(agent_log_since "$t_rt")
printf 'agent journal since the kill:\n%s\n' "$crash_log"
check "the new agent recovered the job from the journal (adoption)" grep -q "recovering a job from the journal.*$id3.*started=true" <<<"$crash_log"
check "the new agent adopted its running container $cid (journal: 'adopted job')" grep -q "adopted job.*container=$cid task=running" <<<"$crash_log"
check_job "$id3" 60 "job across the crash"

# ------------------------------------------------------------------- stop
step "systemctl stop cronium-agent while a 15-line job runs: it drains"
id4=$(counting_job 15)
if wait_for 180 running_with "$id4" 2; then
	pass "$id4 runs and has printed $(nlines "$id4") lines"
else
	fail "$id4 did not start within 180 s (status $(job_status "$id4"))"
fi
left=$((15 - $(nlines "$id4")))
t=$(now)
check "systemctl stop cronium-agent" timeout 600 systemctl stop cronium-agent
info "the stop took $(secs "$t")s, with about ${left}s of the job left"
same "the unit is inactive" "$(systemctl is-active cronium-agent)" inactive
same "the agent exited cleanly" "$(prop cronium-agent Result) $(prop cronium-agent ExecMainStatus)" "success 0"
check_job "$id4" 15 "job across the stop"
same "no container of the agent's is left" "$(containers)" ""
same "no job bridge (crn-*) is left" "$(ls /sys/class/net | grep '^crn-' | tr '\n' ' ')" ""

# ------------------------------------------------------------------ purge
step "apt purge cronium-agent"
t=$(now)
if run apt purge -y cronium-agent >"$OUT/apt-purge.txt" 2>&1; then
	pass "apt purge cronium-agent ($(secs "$t")s)"
else
	fail "apt purge cronium-agent: $(tail -3 "$OUT/apt-purge.txt" | tr '\n' ' ')"
fi
cat "$OUT/apt-purge.txt"
check "/var/lib/cronium-agent is gone" test ! -e /var/lib/cronium-agent
check "/etc/cronium is gone" test ! -e /etc/cronium
check "/etc/default/cronium-agent is gone" test ! -e /etc/default/cronium-agent
check "the enable link is gone" test ! -e /etc/systemd/system/multi-user.target.wants/cronium-agent.service -a ! -L /etc/systemd/system/multi-user.target.wants/cronium-agent.service
same "systemd no longer knows the unit" "$(systemctl show -p LoadState --value cronium-agent)" not-found
same "dpkg: cronium-agent purged" "$(dpkg-query -W -f='${Status}' cronium-agent 2>&1)" "dpkg-query: no packages found matching cronium-agent"

finish

package main

import (
	"strconv"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/doctor"
	"github.com/cronium/cronium-agent/state/admin"
)

// helpPages are the manual pages of `cronium-agent COMMAND --help`, by the
// name of the command's flag set ("exec", "ssh trust"). What they say is
// docs/operations.md's, for one command; keep them together.
var helpPages = map[string]helpPage{
	"run":           runHelp,
	"status":        statusHelp,
	"hand-over":     handOverHelp,
	"jobs":          jobsHelp,
	"logs":          logsHelp,
	"exec":          execHelp,
	"backend":       backendHelp,
	"images":        imagesHelp,
	"images import": imagesImportHelp,
	"images list":   imagesListHelp,
	"gc":            gcHelp,
	"doctor":        doctorHelp,
	"ssh":           sshHelp,
	"ssh trust":     sshTrustHelp,
	"ssh known":     sshKnownHelp,
	"version":       versionHelp,
	"shim-logger":   shimLoggerHelp,
}

// configNote ends the description of the commands that read the
// configuration.
const configNote = `The configuration is the file of --config (absent or empty: all defaults), then the CRONIUM_* variables, which win over it: every key can be set by CRONIUM_ and its path in upper snake case (state.dir: CRONIUM_STATE_DIR). ENVIRONMENT lists the keys this command uses.`

// adminNote ends the description of the commands that ask the running
// agent.
const adminNote = `The configuration (the file of --config, then the CRONIUM_* variables) is read for admin.socket only.`

var (
	logLevelEnv = helpEnv{name: "CRONIUM_LOG_LEVEL", text: "info or debug: log more than warnings and errors (on stderr)"}
	adminEnv    = helpEnv{key: "admin.socket", text: "the running agent's admin socket, mode 0600"}

	exitOK        = helpItem{"0", "success"}
	exitBadArgs   = helpItem{strconv.Itoa(exitUsage), "bad arguments, or a configuration that does not load"}
	exitNotRunner = helpItem{strconv.Itoa(exitAgent), "the agent is not running (or admin.socket points elsewhere), or its answer could not be read"}
)

var runHelp = helpPage{
	summary:  "run the agent: take jobs from the Cronium backend and report them back",
	synopsis: []string{"run [--config FILE]"},
	description: `run is the agent proper: it claims jobs from the backend at backend.url, runs them in containers through containerd (or over SSH, on their servers), and reports them back, until it is told to stop. It needs backend.url and backend.token (the backend's INTERNAL_API_KEY); without them it exits ` + strconv.Itoa(exitConfig) + ` and says which keys to set.

On start it opens the journal and delivers any backlog, imports the runtime images missing from containerd from the archives in runtimes.archiveDir, adopts the runs a previous process left, removes leftovers and sweeps the job networks, opens the admin socket (which status, jobs and logs read), and claims jobs, at most jobs.maxConcurrent running at once. A backend that is down, or refuses the token, is retried with backoff: run never exits for it. Every fact about a run goes through the journal before the backend hears of it, so an outage or a restart loses nothing.

The first SIGTERM or SIGINT drains: no new claims, and running jobs may finish for up to jobs.drainTimeout; then they are stopped (SIGTERM, jobs.killGrace, SIGKILL) and reported cancelled. A second signal stops them at once. Either way every job is reported: run spends up to 10 s delivering what is left and up to 1 min on the runs' cleanup, and what was not delivered stays in the journal for the next start.

Only one agent may use a state directory at a time. run logs to stderr, serves Prometheus metrics, /healthz and /readyz on metrics.listen, and under systemd (Type=notify) says READY=1 once recovery is done and the backend answered (or 30 s after recovery without an answer). Run it as root.

` + configNote,
	env: []helpEnv{
		{key: "backend.url", text: "the backend's base URL"},
		{key: "backend.token", text: "the service token; a secret: better here than in the file"},
		{key: "backend.orchestratorId", text: "the agent's id, instead of the one made once and kept in state.dir"},
		{key: "backend.envEncryptionKey", text: "64 hex characters: decrypts the environment values the deployed backend sends encrypted"},
		{key: "containerd.address", text: "containerd's socket"},
		{key: "state.dir", text: "the journal, keys, run directories and the agent's id"},
		{key: "jobs.maxConcurrent", text: "how many jobs run at once"},
		{key: "jobs.drainTimeout", text: "how long the first signal lets running jobs finish"},
		{key: "jobs.killGrace", text: "between SIGTERM and SIGKILL when a job is stopped"},
		adminEnv,
		{key: "metrics.listen", text: "address of /metrics, /healthz and /readyz; empty turns them off"},
		logLevelEnv,
		{name: "NOTIFY_SOCKET", text: "set by systemd: where READY=1 and STOPPING=1 go"},
	},
	files: []helpItem{
		{config.DefaultPath, "the configuration file (--config)"},
		{"STATE/journal.db", "the journal (STATE is state.dir): claimed jobs, sealed, their progress, and the reports not delivered yet or recently"},
		{"STATE/journal.key", "the key that seals the jobs in the journal: keep it with journal.db, or unfinished jobs cannot be read"},
		{"STATE/orchestrator-id", "the agent's id, made once and bound to this machine (identity.machineIdFile): keep it, or the backend takes this for a new agent; found on another machine, the state is moved to STATE/copied-state-*"},
		{"STATE/runs/", "a directory per live run: its lock, script and captured output"},
	},
	exit: []helpItem{
		{"0", "stopped by a signal; every job reported"},
		exitBadArgs,
		{strconv.Itoa(exitConfig), "no backend configured (backend.url or backend.token is empty); the systemd unit does not restart on it"},
		{strconv.Itoa(exitAgent), "the agent could not start or failed: another agent holds the journal, the journal cannot be unsealed, containerd does not answer, the admin socket or metrics.listen is taken"},
	},
	examples: []string{
		"CRONIUM_BACKEND_URL=https://cronium.example.com CRONIUM_BACKEND_TOKEN=T cronium-agent run",
		"CRONIUM_LOG_LEVEL=info cronium-agent run --config ./agent.yaml",
	},
	seeAlso: []string{"cronium-agent doctor --help", "cronium-agent status --help", "cronium-agent gc --help",
		"docs/operations.md (Running, Signals, Recovery)", "docs/configuration.md"},
}

var statusHelp = helpPage{
	summary:  "show the running agent's backend, backlog, running jobs and journal",
	synopsis: []string{"status [--json] [--config FILE]"},
	description: `status asks the running agent, through its admin socket (admin.socket: only root or the agent's own user may connect), and prints:

  version and orchestrator: the agent's version and id;
  backend: its URL, whether it is reachable, the last contact and error;
  claims: active, or paused while the backend is down with a backlog;
  backlog: the jobs, items and bytes not delivered to the backend yet
    ("log lines" counts undelivered log items, each a batch of lines);
  running: each running job, its execution, attempt and run time;
  journal: its use against journal.budget, the file's size and path.

--json prints the same as one JSON object: version, orchestratorId, backend, backendReachable, lastContact, lastError, backlog, running, journal, claimsPaused.

` + adminNote,
	env:      []helpEnv{adminEnv},
	exit:     []helpItem{exitOK, exitBadArgs, exitNotRunner},
	examples: []string{"cronium-agent status", "cronium-agent status --json | jq .backlog"},
	seeAlso:  []string{"cronium-agent jobs --help", "cronium-agent logs --help", "docs/operations.md (Inspection)"},
}

var handOverHelp = helpPage{
	summary:  "make the running agent's next stop leave its running jobs running for the next start",
	synopsis: []string{"hand-over [--within DURATION] [--json] [--config FILE]"},
	description: `A stop (SIGTERM, systemctl stop or restart) normally drains: the agent claims no more jobs and waits up to jobs.drainTimeout for the running ones to end, then cancels what is left. hand-over makes the next stop, if it comes within --within (default 1m, at most 1h), a hand-over instead: the agent claims no more jobs, lets each running job reach the point where its start is journaled (a job being set up finishes its setup), stops following it without stopping or removing anything, delivers what it journaled and exits, in about a second. The jobs go on: their containers (kept by containerd's shims) and their SSH runs (in sessions of their own on their servers) do not depend on the agent process, and their output is captured meanwhile. The next start adopts each of them from the journal, reads the output it missed, serves the runtime API again and reports each job once.

A package upgrade runs it before it restarts the service, so that an upgrade does not wait for the running jobs. A stop that comes after --within drains as usual. HTTP requests are made by the agent itself: a hand-over waits for them as a drain does (up to jobs.drainTimeout). While no agent runs, a script's calls to the runtime API are refused (the helpers report the error); the new agent serves them again once it has adopted the job.

` + adminNote,
	env:      []helpEnv{adminEnv},
	exit:     []helpItem{exitOK, exitBadArgs, exitNotRunner},
	examples: []string{"cronium-agent hand-over && systemctl restart cronium-agent", "cronium-agent hand-over --within 5m"},
	seeAlso:  []string{"cronium-agent status --help", "docs/operations.md (Upgrades)"},
}

var jobsHelp = helpPage{
	summary:  "list the running agent's recent jobs and their delivery",
	synopsis: []string{"jobs [--limit N] [--json] [--config FILE]"},
	description: `jobs asks the running agent, through its admin socket, for its most recent jobs, newest claim first, and prints one a line:

  JOB EXECUTION STATE STATUS EXIT STARTED DURATION CPU PEAK MEM DELIVERY

STATE is claimed, running, finished or released. DURATION is so far, for a running job. CPU and PEAK MEM are what a container job's last attempt used, read from its cgroup when it ended: the CPU time of all its processes and the most memory its cgroup held at once. "-" means nothing was measured (a job still running, an HTTP request, an SSH job), "unknown" that the kernel did not give the figure (memory.peak needs Linux 5.19). DELIVERY is delivered, or pending with the items left.

Delivered jobs stay listed for journal.retain. --limit takes 1 to ` + strconv.Itoa(admin.MaxJobs) + `; --json prints the list as JSON (measured, cpuSeconds and peakMemoryBytes hold the usage).

` + adminNote,
	env:      []helpEnv{adminEnv},
	exit:     []helpItem{exitOK, {strconv.Itoa(exitUsage), "bad arguments (--limit out of range), or a configuration that does not load"}, exitNotRunner},
	examples: []string{"cronium-agent jobs", "cronium-agent jobs --limit 5", "cronium-agent jobs --json | jq '.[] | select(.delivery != \"delivered\")'"},
	seeAlso:  []string{"cronium-agent status --help", "cronium-agent logs --help", "docs/operations.md (Inspection)"},
}

var logsHelp = helpPage{
	summary:  "print a job's log from the running agent's journal",
	synopsis: []string{"logs [-f] [--raw] [--config FILE] JOB"},
	description: `logs asks the running agent, through its admin socket, for the log of job JOB (its id, as jobs lists it) and prints it: stdout lines as they are, the others prefixed with "[stderr] " or "[system] ", so that one stream keeps their order. Flags may come before or after JOB.

With -f it follows: lines are printed as they come, until the job's log is complete; Ctrl-C stops following. Where the agent dropped the middle of a log to stay within journal.budget, a notice stands in its place.

On a terminal, control characters in the lines show escaped (\x1b), so that a job cannot clear the screen or rewrite lines; with --raw, and to a file or a pipe, the lines are the exact bytes.

` + adminNote,
	env: []helpEnv{adminEnv},
	exit: []helpItem{exitOK, {strconv.Itoa(exitUsage), "bad arguments (no JOB), or a configuration that does not load"},
		{strconv.Itoa(exitAgent), "the agent is not running (or admin.socket points elsewhere), it does not know JOB, or its answer could not be read"}},
	examples: []string{"cronium-agent logs job_123", "cronium-agent logs -f job_123", "cronium-agent logs --raw job_123 > job_123.log"},
	seeAlso:  []string{"cronium-agent jobs --help", "docs/operations.md (Inspection, Job output on a terminal)"},
}

var execHelp = helpPage{
	summary:  "run one script job in a container and stream its output",
	synopsis: []string{"exec (-c CODE | --file FILE) [--runtime RUNTIME] [--env KEY=VALUE]... [--timeout DURATION] [--memory SIZE] [--cpus N] [--pids N] [--image IMAGE] [--input JSON] [--json] [--config FILE]"},
	description: `exec runs one script in a container, without a backend: the quickest check that a host works. The job is made as run makes a job (its user namespace, limits, network, runtime API and helpers) with the id local_ and 12 hex digits, and runs in the runtime's image (runtimes.RUNTIME.image) or --image; an --image that is not there is pulled. What the script stores through the runtime API (variables, results) is kept in local.db in state.dir.

It streams the script's stdout and stderr as they come, then prints on stderr what the script set: "output: ..." and "condition: ...". With --json it prints one JSON object on stdout at the end instead (jobId, executionId, status, exitCode, scriptExitCode, oomKilled, memoryLimit, output, condition, startedAt, finishedAt, durationMs, logEntries).

Limits the script does not get from a flag are resources.defaults'; a flag above resources.max is lowered to it. The timeout is --timeout, else jobs.defaultTimeout, at most jobs.maxTimeout; at the timeout the script gets SIGTERM, and SIGKILL jobs.killGrace later. Ctrl-C or SIGTERM cancels the job the same way. exec needs root and containerd, like run.

` + configNote,
	env: []helpEnv{
		{key: "containerd.address", text: "containerd's socket"},
		{key: "state.dir", text: "the run directories, keys and local.db"},
		{key: "runtimes.bash.image", text: "the image of bash scripts; python and node have theirs"},
		{key: "jobs.defaultTimeout", text: "the timeout without --timeout"},
		{key: "jobs.maxTimeout", text: "the longest timeout"},
		{key: "jobs.killGrace", text: "between SIGTERM and SIGKILL"},
		{key: "resources.defaults.memory", text: "the memory limit without --memory; cpu, pids, tmp and workspace have theirs"},
		{key: "resources.max.memory", text: "the highest memory limit; cpu, pids, tmp and workspace have theirs"},
		{key: "network.egress", text: "the scripts' outbound mode: none (no route out), allowlist (network.allow only) or all; network.dns is their resolv.conf"},
		{key: "registry.plainHTTP", text: "registries an --image is pulled from over plain HTTP; loopback ones always are"},
		logLevelEnv,
	},
	exit: []helpItem{
		{"0", "the script exited 0"},
		{"N", "the script's own exit code N, 1 to 255 (128+n if a signal n killed it)"},
		{strconv.Itoa(exitTimeout), "the script timed out and was stopped"},
		{strconv.Itoa(exitOOM), "the script was killed for running out of memory (its limit)"},
		{"130", "the job was cancelled (Ctrl-C or SIGTERM)"},
		{strconv.Itoa(exitAgent), "the agent could not run it: containerd unreachable, the image missing, ... (a line says what to do)"},
		{strconv.Itoa(exitUsage), "bad arguments, or a configuration that does not load"},
	},
	examples: []string{
		`cronium-agent exec --runtime python -c 'print("hi")'`,
		"cronium-agent exec --file job.sh --env KEY=value --timeout 30s --memory 256MiB --cpus 1 --pids 50",
		"cronium-agent exec --image 127.0.0.1:5000/me/tools:1 -c 'tool --version'",
		`cronium-agent exec --runtime python --input '{"n": 2}' -c 'import cronium; cronium.output(cronium.input()["n"] * 2)'`,
		`cronium-agent exec --json -c 'cronium_output "done"'`,
	},
	seeAlso: []string{"cronium-agent images --help", "cronium-agent gc --help", "docs/operations.md (Exit codes of exec)", "docs/runtime-api.md", "docs/configuration.md"},
}

var backendHelp = helpPage{
	summary:  "alias of cronium-backend, the development backend",
	synopsis: []string{"backend COMMAND [flags]", "backend COMMAND --help"},
	description: backendAlias.Note + ` It runs cronium-backend's commands, with the same flags, environment variables and exit codes; only the name in their messages differs. Each command has its manual page: cronium-agent backend COMMAND --help.

cronium-backend is a standalone backend for trying the agent without a Cronium installation: serve runs it, the other commands operate it.`,
	sections: []helpSection{{title: "COMMANDS", width: 7, gen: backendCommands}},
	env: []helpEnv{
		{name: "CRONIUM_BACKEND_URL", text: "the backend of the client commands, without --backend"},
		{name: "CRONIUM_BACKEND_TOKEN", text: "the service token, without --token"},
	},
	exit: []helpItem{
		{"0", "success"},
		{"*", "the command's own: see cronium-agent backend COMMAND --help"},
		{strconv.Itoa(exitUsage), "no command, or an unknown one"},
	},
	examples: []string{"cronium-agent backend submit --help", "cronium-backend --help"},
	seeAlso:  []string{"cronium-backend --help", "docs/operations.md (The development backend)"},
}

var imagesHelp = helpPage{
	summary:     "import and list runtime images",
	synopsis:    []string{"images import [--config FILE] ARCHIVE...", "images list [--config FILE]"},
	description: `Jobs run in the images named by runtimes.bash.image, runtimes.python.image and runtimes.node.image. Runtime images are never pulled: they are imported from OCI archives into containerd's namespace (containerd.namespace). run imports those missing from the archives of runtimes.archiveDir by itself; images imports and lists them by hand.`,
	sections: []helpSection{{title: "COMMANDS", width: 7, items: []helpItem{
		{"import", "import OCI image archives: cronium-agent images import --help"},
		{"list", "list the images of the namespace (ls too): cronium-agent images list --help"},
	}}},
	exit:     []helpItem{exitOK, {strconv.Itoa(exitUsage), "no command, or an unknown one"}},
	examples: []string{"cronium-agent images import /usr/share/cronium/runtimes/*.tar", "cronium-agent images list"},
	seeAlso:  []string{"cronium-agent doctor --help", "docs/operations.md (Runtime images)"},
}

var imagesEnv = []helpEnv{
	{key: "containerd.address", text: "containerd's socket"},
	{key: "containerd.namespace", text: "the namespace of the agent's images"},
	{key: "containerd.snapshotter", text: "the snapshotter images are unpacked into"},
}

var imagesImportHelp = helpPage{
	summary:  "import runtime images from OCI archives",
	synopsis: []string{"images import [--config FILE] ARCHIVE..."},
	description: `images import loads each OCI image archive (a tar file, as hack/build-images.sh and the cronium-runtimes package make them) into containerd's namespace, in the order given, and prints "imported NAME" for each image it holds. A runtime image, named cronium.local/runtimes/RUNTIME:TAG, is also tagged :latest, which is what the default configuration runs. The first archive that fails stops the command; those before it stay imported.

` + configNote,
	env:      imagesEnv,
	exit:     []helpItem{{"0", "every archive imported"}, {strconv.Itoa(exitUsage), "no ARCHIVE, bad arguments, or a configuration that does not load"}, {strconv.Itoa(exitAgent), "containerd does not answer, or an archive could not be read or imported"}},
	examples: []string{"cronium-agent images import /var/cache/cronium-agent/images/bash-HASH.tar", "cronium-agent images import /usr/share/cronium/runtimes/*.tar"},
	seeAlso:  []string{"cronium-agent images list --help", "docs/operations.md (Runtime images)"},
}

var imagesListHelp = helpPage{
	summary:  "list the images in containerd's namespace",
	synopsis: []string{"images list [--config FILE]", "images ls [--config FILE]"},
	description: `images list prints the images of containerd's namespace (containerd.namespace), by name: NAME, DIGEST ("sha256:" and its first 12 hex digits), SIZE in MiB, and UNPACKED, whether the image is unpacked into the snapshotter.

` + configNote,
	env:      imagesEnv,
	exit:     []helpItem{exitOK, exitBadArgs, {strconv.Itoa(exitAgent), "containerd does not answer, or the list could not be read"}},
	examples: []string{"cronium-agent images list"},
	seeAlso:  []string{"cronium-agent images import --help", "docs/operations.md (Runtime images)"},
}

var gcHelp = helpPage{
	summary:  "remove containers, snapshots, files and cgroups no run owns",
	synopsis: []string{"gc [--all] [--config FILE]"},
	description: `gc removes everything of the agent's that no live run owns; a run is live while a process holds the lock of its run directory. It removes containers labelled as the agent's, with their tasks, snapshots, cgroups and run directories; run directories whose container never got made; run snapshots without a live run; unfinished image remaps older than an hour; remapped snapshots whose image is gone; job cgroups no container has; orphan shims of the namespace whose container is gone; and job networks no live process holds (namespace, bridge, lease, subnet, firewall rules).

It spares live runs, images with their remapped snapshots, the journal, and the runs a stopped agent's journal will adopt at its next start (it prints "kept run ..." for each). It prints "removed ..." for each thing removed, or "nothing to remove".

gc is safe while the agent runs: the agent holds its runs' locks. It removes only runs of its own state.dir (a container's label names its agent's) and runs whose state directory is gone; other agents' are theirs to collect. --all removes the runs the journal would adopt too, and the dead runs other agents' state directories left: the next start then releases their jobs, or runs the attempt again, so a script that already ran may run a second time. gc needs root, containerd, the CNI plugins and iptables, like run.

` + configNote,
	env: []helpEnv{
		{key: "containerd.address", text: "containerd's socket"},
		{key: "state.dir", text: "the run directories and the journal"},
		{key: "network.runDir", text: "the job networks' records, leases and locks"},
		logLevelEnv,
	},
	exit:     []helpItem{{"0", "everything found was removed (or nothing was found)"}, exitBadArgs, {strconv.Itoa(exitAgent), "containerd does not answer, or something could not be removed (what was removed is printed)"}},
	examples: []string{"cronium-agent gc", "cronium-agent gc --all"},
	seeAlso:  []string{"cronium-agent run --help", "docs/operations.md (Garbage collection, Leftovers)"},
}

var doctorHelp = helpPage{
	summary:  "check this host for what jobs need, with a fix for each problem",
	synopsis: []string{"doctor [--json] [--config FILE]"},
	description: `doctor checks this host against the agent's configuration (the file, then the CRONIUM_* variables) and prints one table: a row per check with its status and what it found, and under every WARN or FAIL the fix.

  PASS  all is well.
  WARN  jobs run, but something will bite, or was not checked because
        another check failed.
  FAIL  jobs cannot run, or would run unsafely.

doctor only looks: it creates no file or directory, loads no module, imports no image, and sends the backend two reads (its health probe and a variable that does not exist), never a heartbeat or a claim. It is safe to run beside a running agent. Run it as root, as the agent runs: as another user, containerd's socket and the state directory fail.

A shell does not read the service's environment file: run doctor with it, or it checks the file's defaults.`,
	sections: []helpSection{{title: "CHECKS", width: 12, gen: doctorChecks}},
	env: []helpEnv{
		{key: "backend.url", text: "the backend checked"},
		{key: "backend.token", text: "the token checked"},
		{key: "containerd.address", text: "containerd's socket"},
		{key: "state.dir", text: "the state directory checked"},
		{name: "PATH", text: "where runc and iptables are looked for"},
	},
	exit: []helpItem{
		{"0", "no check failed (warnings allowed)"},
		{strconv.Itoa(exitChecksFailed), "at least one check failed"},
		{strconv.Itoa(exitUsage), "bad arguments or a configuration that does not load"},
		{strconv.Itoa(exitAgent), "doctor itself could not run"},
	},
	examples: []string{
		"cronium-agent doctor",
		"cronium-agent doctor --json | jq '.checks[] | select(.status != \"PASS\")'",
		"(set -a; . /etc/default/cronium-agent; cronium-agent doctor)",
		"CRONIUM_CONTAINERD_ADDRESS=/run/cronium-containerd/containerd.sock cronium-agent doctor",
	},
	seeAlso: []string{"docs/operations.md (Checking a host)", "docs/configuration.md"},
}

const sshKeysNote = `A server's key is looked up in ssh.knownHosts, the agent's own file (empty: known_hosts in state.dir), and in ssh.systemKnownHosts, which is only read. Both are OpenSSH known_hosts files.`

var sshHelp = helpPage{
	summary:  "trust and list the host keys of SSH jobs' servers",
	synopsis: []string{"ssh trust HOST[:PORT] [flags]", "ssh known [flags]"},
	description: `SSH jobs reach only servers whose host key the agent knows. With ssh.hostKeyPolicy tofu (the default) the first connection to a server records its key; with strict, a job on a server neither file knows fails until ssh trust records its key. A changed key always fails, whatever the policy.

` + sshKeysNote,
	sections: []helpSection{{title: "COMMANDS", width: 7, items: []helpItem{
		{"trust", "fetch a server's host key, show its fingerprint, record it: cronium-agent ssh trust --help"},
		{"known", "list the known host keys: cronium-agent ssh known --help"},
	}}},
	exit:     []helpItem{exitOK, {strconv.Itoa(exitUsage), "no command, or an unknown one"}},
	examples: []string{"cronium-agent ssh trust 192.0.2.5", "cronium-agent ssh known"},
	seeAlso:  []string{"docs/operations.md (SSH host keys)"},
}

var sshEnv = []helpEnv{
	{key: "ssh.knownHosts", text: "the agent's known_hosts file; empty: known_hosts in state.dir"},
	{key: "ssh.systemKnownHosts", text: "a known_hosts file read too, never written; empty: none"},
	{key: "state.dir", text: "where the agent's file is by default"},
}

var sshTrustHelp = helpPage{
	summary:  "fetch a server's host key, show its fingerprint and record it",
	synopsis: []string{"ssh trust HOST[:PORT] [--yes] [--replace] [--config FILE]"},
	description: `ssh trust connects to HOST's sshd (port 22 unless PORT), without logging in, within ssh.dialTimeout, and prints the host, the key type and the SHA256 fingerprint. Compare them with what ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub (or the key file of the type shown) prints on the server. If the host is known with this key already, it says so and records nothing.

On a terminal it asks before recording the key in the agent's file; otherwise it needs --yes, or it records nothing and exits 2. A running agent sees the key at its next connection, without a restart.

If the host is known with another key, trust refuses: someone may be intercepting the connection. If the server's key was changed on purpose (it was reinstalled), check the new fingerprint and pass --replace: the host's old lines leave the agent's file and the new key is recorded. --replace refuses when the old key is in the system file, or a wildcard line names the host: edit those by hand.

` + sshKeysNote + `

` + configNote,
	env: append(append([]helpEnv(nil), sshEnv...), helpEnv{key: "ssh.dialTimeout", text: "bound on connecting and the SSH handshake"}),
	exit: []helpItem{
		{"0", "the key is recorded, or was known already"},
		{strconv.Itoa(exitUsage), "not recorded: declined, no terminal to ask on without --yes, or the host is known with another key without --replace; or bad arguments, or a configuration that does not load"},
		{strconv.Itoa(exitAgent), "the server's key could not be fetched (unreachable, no sshd), --replace refused, or the file could not be written"},
	},
	examples: []string{"cronium-agent ssh trust 192.0.2.5", "cronium-agent ssh trust web-1.example.com:2222 --yes", "cronium-agent ssh trust 192.0.2.5 --replace"},
	seeAlso:  []string{"cronium-agent ssh known --help", "ssh-keygen(1)", "docs/operations.md (SSH host keys)"},
}

var sshKnownHelp = helpPage{
	summary:  "list the known host keys of SSH jobs' servers",
	synopsis: []string{"ssh known [--json] [--config FILE]"},
	description: `ssh known lists the host keys the agent knows, those of its own file first, then the system file's: HOST (the entry's host patterns), TYPE (with its @marker, if any), FINGERPRINT (SHA256) and SOURCE (agent or system). On a terminal, control characters in the files show escaped. --json prints the entries as a JSON array.

` + sshKeysNote + `

` + configNote,
	env:      sshEnv,
	exit:     []helpItem{exitOK, exitBadArgs, {strconv.Itoa(exitAgent), "a file could not be read"}},
	examples: []string{"cronium-agent ssh known", "cronium-agent ssh known --json"},
	seeAlso:  []string{"cronium-agent ssh trust --help", "ssh-keygen(1)", "docs/operations.md (SSH host keys)"},
}

var versionHelp = helpPage{
	summary:     "print the version",
	synopsis:    []string{"version"},
	description: `version prints "cronium-agent VERSION" on stdout: the version the binary was built with (make build sets it), or dev.`,
	exit:        []helpItem{exitOK, {strconv.Itoa(exitUsage), "bad arguments"}},
	examples:    []string{"cronium-agent version"},
	seeAlso:     []string{"cronium-agent status --help (the running agent's version)"},
}

var shimLoggerHelp = helpPage{
	summary:     "(internal) capture a container's output; started by the containerd shim",
	synopsis:    []string{"shim-logger PATH", "shim-logger BUDGET:PATH"},
	description: `Not for use by hand. containerd's shim starts shim-logger for each job's container (its logging URI is binary://AGENT?shim-logger=ARG), with the container's stdout on fd 3 and stderr on fd 4. It signals ready by closing fd 5, and captures the output into the file PATH (absolute), dropping the middle past BUDGET bytes when one is given (jobs.outputBudget). It depends on nothing of the agent's, so that a job's output is captured while the agent is down; on SIGTERM, which the shim sends when the task is deleted, it drains and exits.`,
	exit:        []helpItem{exitOK, {strconv.Itoa(exitUsage), "not exactly one argument"}, {strconv.Itoa(exitAgent), "a bad argument, or the output could not be captured"}},
	examples:    []string{"cronium-agent shim-logger --help"},
	seeAlso:     []string{"docs/architecture.md"},
}

// doctorChecks are the checks doctor runs, from the doctor package, so
// that the page lists what really runs.
func doctorChecks() []helpItem {
	var items []helpItem
	for _, c := range doctor.Checks(config.Default()) {
		items = append(items, helpItem{c.Name, c.About})
	}
	return items
}

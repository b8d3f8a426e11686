package cli

import (
	"strconv"
	"strings"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// helpPages are the manual pages of `{prog} COMMAND --help`, by the name of
// the command's flag set ("submit", "servers add"); "{prog}" in their text
// is the program's name: cronium-backend, or cronium-agent backend. What
// they say is docs/operations.md's (The development backend), for one
// command; keep them together.
var helpPages = map[string]command.HelpPage{
	"serve":        serveHelp,
	"submit":       submitHelp,
	"jobs":         jobsHelp,
	"show":         showHelp,
	"logs":         logsHelp,
	"cancel":       cancelHelp,
	"agents":       agentsHelp,
	"servers":      serversHelp,
	"servers add":  serversAddHelp,
	"servers list": serversListHelp,
	"servers rm":   serversRmHelp,
	"version":      versionHelp,
}

// clientNote ends the description of the client commands.
const clientNote = `It speaks to the backend at --backend (default $` + EnvURL + `) with the token --token (default $` + EnvToken + `). Flags may come before or after the arguments.`

// terminalNote is for the commands printing a job's output.
const terminalNote = `On a terminal, control characters of the job's output show escaped (\x1b), so that a job cannot clear the screen or rewrite lines; with --raw, and to a file or a pipe, the output is the exact bytes.`

var (
	clientEnv = []command.HelpItem{
		{Term: EnvURL, Text: "the backend, without --backend"},
		{Term: EnvToken, Text: "the service token, without --token"},
	}

	exitRefused     = command.HelpItem{Term: "1", Text: "the backend refused the request (an unknown job or server, an invalid job)"}
	exitClientUsage = command.HelpItem{Term: strconv.Itoa(command.ExitUsage), Text: "bad arguments; no backend URL or token; or the backend refused the token"}
	exitUnreachable = command.HelpItem{Term: strconv.Itoa(command.ExitFailure), Text: "the backend is unreachable, or failed"}
	exitInterrupted = command.HelpItem{Term: strconv.Itoa(exitJobCancelled), Text: "interrupted (Ctrl-C) before the backend answered"}
)

// clientExit are the exit codes of a client command that succeeds with 0.
var clientExit = []command.HelpItem{{Term: "0", Text: "success"}, exitRefused, exitClientUsage, exitUnreachable, exitInterrupted}

var serveHelp = command.HelpPage{
	Summary:  "run the development backend until interrupted",
	Synopsis: []string{"serve [--token TOKEN] --data DIR [--listen ADDR] [--no-logs-endpoint] [--allow-remote] [--lost-after D]"},
	Description: `serve runs the development backend: a standalone implementation of the Cronium backend contract, for trying and testing the agent without a Cronium installation. It keeps its jobs, executions and servers in DIR/` + devserver.DBFile + ` (DIR is made if missing), and answers both the agents (an agent's backend.url and backend.token are this address and token) and the client commands: submit, jobs, show, logs, cancel and servers.

It listens on --listen, on loopback only unless --allow-remote: it speaks plain HTTP, with one shared token. Once it listens it prints "cronium dev backend listening on URL (data DIR)" on stdout (with port 0, URL has the port picked), and it serves until SIGINT or SIGTERM, then stops within 5 s.

Its API is under /api/ (bearer token). Everything else is the web console: open URL/ in a browser and log in with the token (a session cookie; docs/console.md). Once listening it also prints "web console: URL/".

It offers long-poll claims: an idle agent's claim is held for up to the agent's jobs.longPoll, and answered the moment a job is queued. With --no-logs-endpoint it answers 404 on the agents' live-log endpoint (jobs/{id}/logs), like the deployed backend: the agents then deliver output with the completion only.

An agent not heard from (heartbeat or claim) for --lost-after (default 15m; 0 never) is lost: its claimed jobs go back to the queue; its running jobs fail with "agent lost" (exit -1), or, when their retry policy (execution.retryPolicy.maxAttempts) allows another attempt, go back to the queue with attempts counted, for another agent (the lost one gets them back only when no other agent is online). Each transition is in the job's history (show). An agent that returns is online again; its reports on the jobs taken from it are refused with 409 (job_superseded), and its heartbeat's answer names those it still runs, which it stops. Until then, after three missed heartbeats it is only disconnected: its jobs keep their state, since it may be running them offline.`,
	Env: []command.HelpItem{
		{Term: EnvToken, Text: "the token, without --token"},
		{Term: "CRONIUM_LOG_LEVEL", Text: "info or debug: log more than warnings and errors (on stderr)"},
	},
	Exit: []command.HelpItem{
		{Term: "0", Text: "stopped by SIGINT or SIGTERM"},
		{Term: strconv.Itoa(command.ExitUsage), Text: "bad arguments: no token, no --data, or a --listen address that is not loopback without --allow-remote"},
		{Term: strconv.Itoa(command.ExitFailure), Text: "the data directory or the address could not be opened"},
	},
	Examples: []string{
		"{prog} serve --token T --data /tmp/devbackend",
		"CRONIUM_BACKEND_TOKEN=T {prog} serve --data /tmp/devbackend --listen 127.0.0.1:0",
		"CRONIUM_API_ENDPOINT=http://127.0.0.1:5001 CRONIUM_API_TOKEN=T cronium-agent run",
	},
	SeeAlso: []string{"{prog} submit --help", "cronium-agent run --help", "docs/operations.md (The development backend)", "docs/console.md", "docs/backend-contract.md"},
}

var submitHelp = command.HelpPage{
	Summary: "submit a job; with --wait, follow it and exit with its exit code",
	Synopsis: []string{"submit (-c CODE | --file FILE) [--runtime RUNTIME] [--env KEY=VALUE]... [--input JSON] [--timeout DURATION] [--priority N] [--user ID] [--name NAME] [--server ID[,ID...]] [--wait] [--backend URL] [--token TOKEN]",
		"submit --raw FILE [--wait] [--backend URL] [--token TOKEN]",
		"submit --tool TOOL [--action ACTION] [--param KEY=VALUE]... [--credential NAME|KEY=VALUE]... [--input JSON] [--timeout DURATION] [--priority N] [--user ID] [--name NAME] [--wait] [--backend URL] [--token TOKEN]"},
	Description: `submit queues a job on the backend. Its script is -c CODE, or the content of --file FILE, run by --runtime; --env, --input, --timeout (else the agent's jobs.defaultTimeout), --priority (higher runs first), --user (variables are per user) and --name (the event's name) complete it. --raw FILE instead submits a complete wire job (JSON, as in the backend contract's fixtures) as it is. Exactly one of -c, --file and --raw is given.

--tool TOOL instead makes a TOOL_ACTION job (an agent runs it with jobs.toolActions on): TOOL is webhook, slack, discord, teams or email, --action its action (default send-message), each --param KEY=VALUE one of its parameters (a VALUE that is a JSON object or array is sent as JSON, any other as a string: --param channel=#ops --param text=hi), and --credential names the agent's tools.credentials entry to use (NAME) or gives a credential field of the job's own (KEY=VALUE: webhookUrl, token, baseUrl, host, port, username, password, tls). The job carries execution.toolAction {"toolType","config":{"actionId","parameters","credential"|"credentials"}}, as the contract's plan has it.

--server ID[,ID...] makes an SSH job on servers registered with servers add, as the deployed backend builds it: one id makes a job of type ssh with the server's details and credentials inline in execution.target, several a multi-server job (metadata.servers, multiServer, serverCount). It applies to script jobs only, not to --raw; an unknown id is refused.

Without --wait, submit prints the job's id on stdout. With --wait it prints "submitted ID" on stderr, follows the job's live log until the job ends (stdout lines on stdout, the others on stderr; the final output if the job sent no live line), and exits with the job's exit code. Ctrl-C stops waiting, not the job. On a terminal, control characters of the job's output show escaped (\x1b), so that a job cannot clear the screen or rewrite lines; to a file or a pipe it is the exact bytes (submit's --raw names a job file, not this).

` + clientNote,
	Env: clientEnv,
	Exit: []command.HelpItem{
		{Term: "0", Text: "submitted (without --wait), or the job exited 0 (with --wait)"},
		{Term: "N", Text: "with --wait: the job's own exit code N, 1 to 255"},
		{Term: strconv.Itoa(exitJobFailed), Text: "with --wait: the job failed without an exit code of its own; or the backend refused the job (an unknown server, an invalid job)"},
		exitClientUsage,
		{Term: strconv.Itoa(exitTimeout), Text: "with --wait: the job timed out"},
		exitUnreachable,
		{Term: strconv.Itoa(exitJobCancelled), Text: "with --wait: the job was cancelled, or Ctrl-C stopped waiting (the job goes on)"},
	},
	Examples: []string{
		"{prog} submit -c 'echo hi'",
		`{prog} submit --runtime python -c 'print("hi")' --wait`,
		"{prog} submit --file job.sh --env KEY=value --timeout 30s --priority 5",
		"{prog} submit --tool slack --param channel=#ops --param text='backup done' --credential ops-slack --wait",
		"{prog} submit -c 'uname -a' --server 1,2 --wait",
		"{prog} submit --raw job.json",
	},
	SeeAlso: []string{"{prog} show --help", "{prog} logs --help", "{prog} servers --help", "docs/operations.md (The development backend)", "docs/backend-contract.md"},
}

var jobsHelp = command.HelpPage{
	Summary:  "list the jobs",
	Synopsis: []string{"jobs [--status STATUS] [--json] [--backend URL] [--token TOKEN]"},
	Description: `jobs lists the backend's jobs, one a line: ID, STATUS, TYPE (with the runtime, and "(ssh)" for an SSH job), PRIORITY, EXIT, CREATED and AGENT, the agent that claimed it. An EXIT flagged "(N completions!)" got more than one completing call. --status keeps the jobs of one status: ` + strings.Join([]string{devserver.StatusQueued, devserver.StatusClaimed, devserver.StatusRunning, devserver.StatusCompleted, devserver.StatusFailed, devserver.StatusTimeout, devserver.StatusCancelled}, ", ") + `. --json prints the list as JSON.

` + clientNote,
	Env:      clientEnv,
	Exit:     clientExit,
	Examples: []string{"{prog} jobs", "{prog} jobs --status running", "{prog} jobs --json | jq '.[].id'"},
	SeeAlso:  []string{"{prog} show --help", "docs/operations.md (The development backend)"},
}

var showHelp = command.HelpPage{
	Summary:  "show a job: status, exit code, output, condition, timings",
	Synopsis: []string{"show [--json] [--raw] [--backend URL] [--token TOKEN] JOB"},
	Description: `show prints what the backend knows of job JOB: its status and exit code (and whether a cancel was requested, and delivered), type, priority, agent, message and error; its timings (created, scheduled, claimed, started, completed, and the duration the agent reported); its completions (more than one completing call is flagged); its executions with their phase durations; its log lines, condition and output; then its final stdout and stderr. --json prints everything the backend knows, as JSON.

` + terminalNote + `

` + clientNote,
	Env:      clientEnv,
	Exit:     clientExit,
	Examples: []string{"{prog} show job_123", "{prog} show job_123 --json | jq .status"},
	SeeAlso:  []string{"{prog} jobs --help", "{prog} logs --help", "docs/operations.md (The development backend, Job output on a terminal)"},
}

var logsHelp = command.HelpPage{
	Summary:  "print a job's live log lines",
	Synopsis: []string{"logs [-f] [--after SEQ] [--raw] [--backend URL] [--token TOKEN] JOB"},
	Description: `logs prints job JOB's live log lines, those its agent sent while it ran: stdout lines on stdout, stderr lines on stderr, and the others on stderr prefixed with their stream ("[system] ..."). --after SEQ prints only the lines after that one. With -f it follows: new lines are printed as they come, until the job ends; Ctrl-C stops following.

` + terminalNote + `

` + clientNote,
	Env: clientEnv,
	Exit: []command.HelpItem{{Term: "0", Text: "success, or Ctrl-C stopped following"}, exitRefused, exitClientUsage, exitUnreachable,
		{Term: strconv.Itoa(exitJobCancelled), Text: "interrupted (Ctrl-C) before the backend answered, without -f"}},
	Examples: []string{"{prog} logs job_123", "{prog} logs -f job_123", "{prog} logs --after 100 --raw job_123 > tail.log"},
	SeeAlso:  []string{"{prog} show --help", "docs/operations.md (The development backend, Job output on a terminal)"},
}

var cancelHelp = command.HelpPage{
	Summary:  "cancel a job",
	Synopsis: []string{"cancel [--backend URL] [--token TOKEN] JOB"},
	Description: `cancel cancels job JOB. A queued job is cancelled at once ("JOB cancelled"); a running one is stopped by its agent, which hears of it at its next heartbeat ("cancel requested"), and ends cancelled. A job that has ended already is refused.

` + clientNote,
	Env: clientEnv,
	Exit: []command.HelpItem{{Term: "0", Text: "cancelled, or the cancel requested"}, {Term: "1", Text: "the backend refused: an unknown job, or one that has ended"},
		exitClientUsage, exitUnreachable, exitInterrupted},
	Examples: []string{"{prog} cancel job_123"},
	SeeAlso:  []string{"{prog} show --help", "docs/operations.md (The development backend)"},
}

var serversHelp = command.HelpPage{
	Summary:  "register, list and remove the SSH servers of submit --server",
	Synopsis: []string{"servers add --name NAME --host HOST [--port PORT] --user USER (--key FILE | --password-stdin)", "servers list [--json]", "servers rm ID"},
	Description: `The backend keeps a list of SSH servers, as the deployed backend does. A server's id is what {prog} submit --server ID[,ID...] takes: one id makes an ssh job with the server's details in execution.target.serverDetails, several a multi-server job (metadata.servers, multiServer, serverCount). The agents' servers/{id} and servers/{id}/credentials calls are answered from the same list.

Each command takes --backend URL and --token TOKEN (default $` + EnvURL + `, $` + EnvToken + `).`,
	Sections: []command.HelpSection{{Title: "COMMANDS", Width: 5, Items: []command.HelpItem{
		{Term: "add", Text: "register a server; prints its id: {prog} servers add --help"},
		{Term: "list", Text: "list the servers, never their secrets: {prog} servers list --help"},
		{Term: "rm", Text: "remove a server: {prog} servers rm --help"},
	}}},
	Env:      clientEnv,
	Exit:     []command.HelpItem{{Term: "0", Text: "success"}, {Term: strconv.Itoa(command.ExitUsage), Text: "no command, or an unknown one"}, {Term: "*", Text: "the command's own: see {prog} servers COMMAND --help"}},
	Examples: []string{"{prog} servers list", "{prog} servers add --help"},
	SeeAlso:  []string{"{prog} submit --help", "docs/operations.md (The development backend, SSH jobs)"},
}

var serversAddHelp = command.HelpPage{
	Summary:  "register an SSH server; prints its id",
	Synopsis: []string{"servers add --name NAME --host HOST [--port PORT] --user USER (--key FILE | --password-stdin) [--backend URL] [--token TOKEN]"},
	Description: `servers add registers a server for SSH jobs, and prints its id on stdout. --name, --host and --user are required, and exactly one of --key FILE (an unencrypted private key, checked before it is sent, then kept byte for byte) or --password-stdin (one line read from standard input; a password is never taken from the command line or the environment).

` + clientNote,
	Env: clientEnv,
	Exit: []command.HelpItem{{Term: "0", Text: "registered"}, {Term: "1", Text: "the backend refused the server (a blank in the host, ...)"},
		{Term: strconv.Itoa(command.ExitUsage), Text: "bad arguments (a missing field, a bad port, a key file that is no private key, no password on stdin); no backend URL or token; or the backend refused the token"},
		exitUnreachable, exitInterrupted},
	Examples: []string{
		"{prog} servers add --name web-1 --host 192.0.2.5 --user deploy --key ~/.ssh/id_ed25519",
		"{prog} servers add --name web-2 --host 192.0.2.6 --port 2222 --user deploy --password-stdin < web-2.password",
	},
	SeeAlso: []string{"{prog} servers list --help", "{prog} submit --help", "docs/operations.md (The development backend, What a server needs)"},
}

var serversListHelp = command.HelpPage{
	Summary:  "list the SSH servers",
	Synopsis: []string{"servers list [--json] [--backend URL] [--token TOKEN]"},
	Description: `servers list prints the registered servers, one a line: ID, NAME, ADDRESS (user@host:port) and AUTH (key or password). It never prints a key or a password: --json says hasKey and hasPassword.

` + clientNote,
	Env:      clientEnv,
	Exit:     clientExit,
	Examples: []string{"{prog} servers list", "{prog} servers list --json"},
	SeeAlso:  []string{"{prog} servers add --help", "docs/operations.md (The development backend)"},
}

var serversRmHelp = command.HelpPage{
	Summary:  "remove an SSH server",
	Synopsis: []string{"servers rm [--backend URL] [--token TOKEN] ID"},
	Description: `servers rm removes server ID from the list. Jobs already queued keep the details they were built with.

` + clientNote,
	Env:      clientEnv,
	Exit:     []command.HelpItem{{Term: "0", Text: "removed"}, {Term: "1", Text: "the backend refused: an unknown server"}, exitClientUsage, exitUnreachable, exitInterrupted},
	Examples: []string{"{prog} servers rm 2"},
	SeeAlso:  []string{"{prog} servers list --help", "docs/operations.md (The development backend)"},
}

var versionHelp = command.HelpPage{
	Summary:     "print the version",
	Synopsis:    []string{"version"},
	Description: `version prints "{prog} VERSION" on stdout: the version the binary was built with (make build sets it), or dev.`,
	Exit:        []command.HelpItem{{Term: "0", Text: "success"}, {Term: strconv.Itoa(command.ExitUsage), Text: "bad arguments"}},
	Examples:    []string{"{prog} version"},
	SeeAlso:     []string{"{prog} --help"},
}

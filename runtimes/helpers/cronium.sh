# cronium.sh: Cronium runtime helpers for bash scripts.
#
# The agent sets BASH_ENV to this file, so the functions are defined before a
# bash script starts; sourcing it again is harmless. It only defines
# functions: it prints nothing, changes no shell option and never fails.
#
#   input=$(cronium_input)                  # the step input, as JSON
#   cronium_output '{"ok": true}'           # JSON if it parses, else sent as a string
#   key=$(cronium_get_variable API_KEY)     # strings raw, other values as JSON; missing: nothing
#   cronium_set_variable COUNTER 3          # JSON if it parses, else a string
#   cronium_set_condition true              # true/false, 1/0, yes/no, on/off (any case)
#   info=$(cronium_event)                   # the execution context, as JSON
#
# Tool actions, run by the agent; each prints the result
# {"success":...,"data":...,"error":...} as one line of JSON:
#
#   cronium_send_email TO SUBJECT BODY      # TO: an address or a comma-separated list
#   cronium_send_slack_message TEXT [CHANNEL]
#   cronium_send_discord_message CONTENT
#   cronium_send_teams_message TEXT [TITLE]
#   cronium_execute_tool_action TOOL ACTION ['{"json":"object"}' | -] [key=text | key:=json ...]
#
# Each also has its dotted name: cronium.input, cronium.output,
# cronium.getVariable, cronium.setVariable, cronium.setCondition,
# cronium.event, cronium.executeToolAction, cronium.sendEmail,
# cronium.sendSlackMessage, cronium.sendDiscordMessage,
# cronium.sendTeamsMessage. On failure a function returns a non-zero status
# (1 for a failed call or a tool action that failed, 2 for wrong arguments)
# with a one-line message on stderr; a failed tool action still prints its
# result. A tool action is never sent twice.
#
# The work is done by the helper program "${CRONIUM_HELPER:-/cronium/bin/cronium}",
# so the image needs no curl or jq.

_cronium_helper() {
    local _cronium_h="${CRONIUM_HELPER:-/cronium/bin/cronium}"
    if ! command -v -- "$_cronium_h" >/dev/null 2>&1; then
        if [ -z "${CRONIUM_RUNTIME_API:-}" ]; then
            printf '%s\n' 'cronium runtime not available: CRONIUM_RUNTIME_API is not set' >&2
        else
            printf 'cronium: helper program %s not found\n' "$_cronium_h" >&2
        fi
        return 1
    fi
    "$_cronium_h" "$@"
}

cronium_input() { _cronium_helper input "$@"; }
cronium_output() { _cronium_helper output "$@"; }
cronium_get_variable() { _cronium_helper get-variable "$@"; }
cronium_set_variable() { _cronium_helper set-variable "$@"; }
cronium_set_condition() { _cronium_helper set-condition "$@"; }
cronium_event() { _cronium_helper event "$@"; }
cronium_execute_tool_action() { _cronium_helper execute-tool-action "$@"; }
cronium_send_email() { _cronium_helper send-email "$@"; }
cronium_send_slack_message() { _cronium_helper send-slack-message "$@"; }
cronium_send_discord_message() { _cronium_helper send-discord-message "$@"; }
cronium_send_teams_message() { _cronium_helper send-teams-message "$@"; }

# Names from earlier Cronium documentation (and the same style for the tool
# actions).
cronium_getVariable() { _cronium_helper get-variable "$@"; }
cronium_setVariable() { _cronium_helper set-variable "$@"; }
cronium_setCondition() { _cronium_helper set-condition "$@"; }
cronium_executeToolAction() { _cronium_helper execute-tool-action "$@"; }
cronium_sendEmail() { _cronium_helper send-email "$@"; }
cronium_sendSlackMessage() { _cronium_helper send-slack-message "$@"; }
cronium_sendDiscordMessage() { _cronium_helper send-discord-message "$@"; }
cronium_sendTeamsMessage() { _cronium_helper send-teams-message "$@"; }

# Dotted names are not valid in POSIX mode (or in other shells), so they are
# defined only in bash's default mode; eval keeps other shells from parsing them.
if [ -n "${BASH_VERSION:-}" ] && ! shopt -oq posix; then
    eval '
cronium.input() { _cronium_helper input "$@"; }
cronium.output() { _cronium_helper output "$@"; }
cronium.getVariable() { _cronium_helper get-variable "$@"; }
cronium.setVariable() { _cronium_helper set-variable "$@"; }
cronium.setCondition() { _cronium_helper set-condition "$@"; }
cronium.event() { _cronium_helper event "$@"; }
cronium.executeToolAction() { _cronium_helper execute-tool-action "$@"; }
cronium.sendEmail() { _cronium_helper send-email "$@"; }
cronium.sendSlackMessage() { _cronium_helper send-slack-message "$@"; }
cronium.sendDiscordMessage() { _cronium_helper send-discord-message "$@"; }
cronium.sendTeamsMessage() { _cronium_helper send-teams-message "$@"; }
'
fi

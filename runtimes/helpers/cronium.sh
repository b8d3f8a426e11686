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
# Each also has its dotted name: cronium.input, cronium.output,
# cronium.getVariable, cronium.setVariable, cronium.setCondition,
# cronium.event. On failure a function returns a non-zero status (1 for a
# failed call, 2 for wrong arguments) with a one-line message on stderr.
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

# Names from earlier Cronium documentation.
cronium_getVariable() { _cronium_helper get-variable "$@"; }
cronium_setVariable() { _cronium_helper set-variable "$@"; }
cronium_setCondition() { _cronium_helper set-condition "$@"; }

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
'
fi

"""Cronium runtime helpers for Python scripts.

    import cronium

    data = cronium.input()                # the step input (any JSON value)
    cronium.output({"ok": True})          # the step output
    key = cronium.get_variable("API_KEY") # None when the variable is not set
    cronium.set_variable("COUNTER", 3)
    cronium.set_condition(True)           # workflow condition
    info = cronium.event()                # execution context (also: context())

    # tool actions (the agent runs them; each returns {success, data, error})
    r = cronium.send_slack_message("backup done", channel="#ops")
    r = cronium.send_email("ops@example.com", "Report", "All fine")
    r = cronium.send_discord_message("deployed")
    r = cronium.send_teams_message("deployed", title="CI")
    r = cronium.execute_tool_action("webhook", "send", {"url": "https://example.com/hook"})

Every function also has its camelCase name (getVariable, setVariable,
setCondition, executeToolAction, sendEmail, ...). Calls talk to the job's
runtime API (CRONIUM_RUNTIME_API); transport errors and 5xx replies are
retried 3 times (0.2 s, 0.4 s, 0.8 s), 4xx replies raise CroniumError at
once. A tool action is never sent twice: it is retried only when the
connection was refused (so the request never left), and a failed action is
a result with success false, not an exception. Importing this module never
fails, even outside a Cronium job: only a call raises. Standard library only.
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

try:  # http.client is always there; the guard only keeps import from failing
    import http.client as _http_client

    _HTTP_EXCEPTIONS = (_http_client.HTTPException,)
except Exception:  # pragma: no cover
    _HTTP_EXCEPTIONS = ()

__all__ = [
    "CroniumError",
    "input",
    "output",
    "get_variable",
    "getVariable",
    "set_variable",
    "setVariable",
    "set_condition",
    "setCondition",
    "event",
    "context",
    "execute_tool_action",
    "executeToolAction",
    "send_email",
    "sendEmail",
    "send_slack_message",
    "sendSlackMessage",
    "send_discord_message",
    "sendDiscordMessage",
    "send_teams_message",
    "sendTeamsMessage",
]

#: Waits before each retry of a call that failed with a transport error or a
#: 5xx reply; one retry per entry. Tests may replace it.
RETRY_DELAYS = (0.2, 0.4, 0.8)

#: Timeout of one attempt, in seconds.
TIMEOUT = 30.0

#: Timeout of a tool action, in seconds: the agent gives an action up to 60 s,
#: and a call cut short could leave an action half done, so the helper waits
#: longer than the agent does.
TOOL_TIMEOUT = 90.0

NOT_AVAILABLE = "cronium runtime not available: CRONIUM_RUNTIME_API is not set"

_sleep = time.sleep

# Never go through an HTTP proxy from the environment: the runtime API is
# always reached directly.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CroniumError(Exception):
    """A runtime API call failed.

    ``status`` is the HTTP status of the reply (None for a transport error or
    when the runtime is not available), ``error`` the reply's error field.
    """

    def __init__(self, message, status=None, error=None):
        super(CroniumError, self).__init__(message)
        self.message = message
        self.status = status
        self.error = error


class _Retry(Exception):
    # refused: the connection was refused, so the request never left
    def __init__(self, err, refused=False):
        Exception.__init__(self, str(err))
        self.err = err
        self.refused = refused


def _quote(segment):
    # every byte but the unreserved characters is percent-encoded
    return urllib.parse.quote(segment, safe="").replace("%7E", "~")


def _runtime():
    """Return the runtime API's base URL, the execution's base URL and the token."""
    base = os.environ.get("CRONIUM_RUNTIME_API", "").strip()
    if not base:
        raise CroniumError(NOT_AVAILABLE)
    exec_id = os.environ.get("CRONIUM_EXECUTION_ID", "")
    if not exec_id:
        raise CroniumError("cronium runtime not available: CRONIUM_EXECUTION_ID is not set")
    token = os.environ.get("CRONIUM_EXECUTION_TOKEN", "")
    if not token:
        raise CroniumError("cronium runtime not available: CRONIUM_EXECUTION_TOKEN is not set")
    base = base.rstrip("/")
    return base, base + "/executions/" + _quote(exec_id), token


def _error_message(status, raw):
    try:
        body = json.loads(raw.decode("utf-8"))
    except Exception:
        body = None
    message = error = None
    if isinstance(body, dict):
        message = body.get("message") or None
        error = body.get("error") or None
    if not message:
        message = error
    if not message:
        message = "HTTP %d" % status
        text = raw.decode("utf-8", "replace").strip()
        if text and len(text) < 200:
            message += ": " + text
    return " ".join(str(message).split()), error


def _refused(e):
    reason = getattr(e, "reason", None)
    return isinstance(e, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError)


def _once(method, url, token, body, timeout):
    headers = {"Authorization": "Bearer " + token, "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        resp = _opener.open(req, timeout=timeout)
        try:
            status = resp.status
            raw = resp.read()
        finally:
            resp.close()
    except urllib.error.HTTPError as e:
        try:
            raw = e.read()
        except Exception:
            raw = b""
        message, error = _error_message(e.code, raw or b"")
        err = CroniumError(message, status=e.code, error=error)
        if e.code >= 500:
            raise _Retry(err)
        raise err
    except ValueError as e:  # a malformed CRONIUM_RUNTIME_API
        raise CroniumError("invalid runtime API URL %r: %s" % (url, e))
    except (urllib.error.URLError, OSError) + _HTTP_EXCEPTIONS as e:
        reason = getattr(e, "reason", None) or e
        raise _Retry(CroniumError("%s %s: %s" % (method, url, reason)), refused=_refused(e))
    if not raw.strip():
        return None
    try:
        reply = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        raise CroniumError("invalid reply from runtime API (HTTP %d): %s" % (status, e), status=status)
    if isinstance(reply, dict):
        return reply.get("data")
    return None


def _call(method, path, payload=None, tool=False):
    """Make one runtime API call, with retries, and return the reply's data.

    path is under /executions/{id}, or under the API's root when tool is
    true: a tool action, which is retried only when the connection was
    refused (the request never left: any other failure may come after the
    action had its effect) and waits TOOL_TIMEOUT.
    """
    root, base, token = _runtime()
    body = None
    if payload is not None:
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise CroniumError("value is not JSON-serializable: %s" % e)
    url = (root if tool else base) + path
    timeout = max(TIMEOUT, TOOL_TIMEOUT) if tool else TIMEOUT
    delays = list(RETRY_DELAYS)
    attempt = 0
    while True:
        try:
            return _once(method, url, token, body, timeout)
        except _Retry as r:
            if attempt >= len(delays) or (tool and not r.refused):
                err = r.err
                if err.status is None and attempt > 0:
                    err = CroniumError("%s (after %d attempts)" % (err.message, attempt + 1))
                raise err
            _sleep(delays[attempt])
            attempt += 1


def _key_path(key):
    if not isinstance(key, str) or key == "":
        raise CroniumError("variable key must be a non-empty string, got %r" % (key,))
    return "/variables/" + _quote(key)


def input():  # noqa: A001 - the contract's name
    """Return the step input: any JSON value (None when there is none)."""
    return _call("GET", "/input")


def output(value):
    """Set the step output to a JSON-serializable value (the last call wins)."""
    _call("POST", "/output", {"data": value})


def get_variable(key):
    """Return a variable's value, or None when it is not set."""
    try:
        data = _call("GET", _key_path(key))
    except CroniumError as e:
        if e.status == 404:
            return None
        raise
    if isinstance(data, dict):
        return data.get("value")
    return None


def set_variable(key, value):
    """Set a variable to a JSON-serializable value."""
    _call("PUT", _key_path(key), {"value": value})


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def set_condition(condition):
    """Set the workflow condition.

    A string is read as true/false, 1/0, yes/no or on/off (any case); any
    other value by its truth value.
    """
    if isinstance(condition, str):
        s = condition.strip().lower()
        if s in _TRUE:
            condition = True
        elif s in _FALSE:
            condition = False
        else:
            raise CroniumError("condition %r is not a boolean (use true/false, 1/0, yes/no or on/off)" % (condition,))
    _call("POST", "/condition", {"condition": bool(condition)})


def event():
    """Return the execution context: executionId, jobId, eventId, eventName,
    eventType, userId, startTime, trigger, metadata."""
    return _call("GET", "/context")


def execute_tool_action(tool, action, params=None):
    """Run a tool action in the agent and return its result.

    tool is webhook, slack, discord, teams or email; action the tool's action
    ("send-message"; "send" for webhook; None or "" for the tool's default);
    params a dict of the action's parameters. The result is the dict the agent
    answers, {"success": bool, "data": ..., "error": "..."}, returned as it
    is: a failed action (success False) is not raised, since it may have had
    its effect. CroniumError is raised when the runtime API refuses the
    request (400: unknown tool or action, a missing parameter or credential;
    nothing was sent), when tool actions are off on the agent (501), or when
    the call fails. The request is never sent twice (see _call).
    """
    if not isinstance(tool, str) or not tool.strip():
        raise CroniumError("tool must be a non-empty string, got %r" % (tool,))
    if action is not None and not isinstance(action, str):
        raise CroniumError("action must be a string, got %r" % (action,))
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise CroniumError("params must be a dict, got %s" % type(params).__name__)
    request = {"tool": tool}
    if action:
        request["action"] = action
    request["params"] = params
    result = _call("POST", "/tool-actions/execute", request, tool=True)
    if not isinstance(result, dict):
        raise CroniumError("invalid reply from runtime API: no tool action result", status=200)
    return result


def _with(params, **fields):
    # fields given (not None) first, then the options
    out = {k: v for k, v in fields.items() if v is not None}
    out.update(params)
    return out


def send_email(to, subject, body, **options):
    """Send an email with the agent's SMTP credential.

    to is an address, a comma-separated string or a list; options are more
    parameters: cc, bcc, html (a string, or True to send body as HTML),
    from_ (or "from" through **{"from": ...}), replyTo. Returns the result
    dict as execute_tool_action does.
    """
    if "from_" in options:
        options["from"] = options.pop("from_")
    return execute_tool_action("email", "send-message", _with(options, to=to, subject=subject, body=body))


def send_slack_message(text, channel=None, **options):
    """Send a Slack message: text, a channel (needed with a bot token), and
    options such as username, icon_emoji, icon_url, thread_ts, blocks,
    attachments (or webhookUrl / token to use a credential of the script's).
    Returns the result dict as execute_tool_action does."""
    return execute_tool_action("slack", "send-message", _with(options, text=text, channel=channel))


def send_discord_message(content, **options):
    """Send a Discord message: content, and options such as username,
    avatar_url, tts, embeds, allowed_mentions (or webhookUrl). Returns the
    result dict as execute_tool_action does."""
    return execute_tool_action("discord", "send-message", _with(options, content=content))


def send_teams_message(text, title=None, **options):
    """Send a Microsoft Teams message (an Adaptive Card): text, a title, and
    options such as card (a whole Adaptive Card) or webhookUrl. Returns the
    result dict as execute_tool_action does."""
    return execute_tool_action("teams", "send-message", _with(options, text=text, title=title))


getVariable = get_variable
setVariable = set_variable
setCondition = set_condition
context = event
executeToolAction = execute_tool_action
sendEmail = send_email
sendSlackMessage = send_slack_message
sendDiscordMessage = send_discord_message
sendTeamsMessage = send_teams_message

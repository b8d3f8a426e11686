"""Tests of cronium.py against a fake runtime API on 127.0.0.1.

Run: python3 -m unittest discover -s runtimes/helpers -p 'test_*.py'
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cronium  # noqa: E402

EXEC_ID = "exec_job1_1700000000"
TOKEN = "test-token"
NOT_AVAILABLE = "cronium runtime not available: CRONIUM_RUNTIME_API is not set"
NO_TOOLS = ("tool actions are not enabled on this agent: its configuration must set "
            "jobs.toolActions: true (CRONIUM_JOBS_TOOL_ACTIONS=true)")
TOOLS = ("webhook", "slack", "discord", "teams", "email")
ENV_KEYS = ("CRONIUM_RUNTIME_API", "CRONIUM_EXECUTION_ID", "CRONIUM_EXECUTION_TOKEN",
            "CRONIUM_JOB_ID", "CRONIUM_EVENT_ID", "CRONIUM_EXECUTION_MODE",
            "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


class FakeAPI(object):
    """An in-memory runtime API for one execution.

    It checks the bearer token and execution id, keeps input, output,
    variables, condition and context, answers POST /tool-actions/execute with
    tool_result (501 when tools_off, 400 for an unknown tool), records every
    request as (method, raw path, decoded key, body), and answers queued
    replies ((status, body), "drop" to close the connection, or ("hang", s)
    to wait s seconds first) before normal handling.
    """

    def __init__(self, port=0):
        self.input = None
        self.context = {"executionId": EXEC_ID, "jobId": "job1", "eventId": "42",
                        "eventName": "demo", "eventType": "PYTHON", "userId": "u1",
                        "startTime": "2024-01-01T00:00:00Z", "trigger": "MANUAL",
                        "metadata": {"k": "v"}}
        self.variables = {}
        self.output = "<unset>"
        self.condition = None
        self.tool_result = {"success": True, "data": {"ok": True}}
        self.tools_off = False
        self.requests = []
        self.queue = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, obj=None, raw=None):
                body = raw if raw is not None else json.dumps(obj).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up ("hang")

            def fail(self, status, message):
                self.reply(status, {"error": "Error %d" % status, "message": message})

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = self.path.lstrip("/").split("/")
                key = None
                if len(parts) == 4 and parts[2] == "variables":
                    key = urllib.parse.unquote(parts[3])
                with api.lock:
                    api.requests.append({"method": self.command, "path": self.path, "key": key,
                                         "body": body.decode("utf-8"),
                                         "auth": self.headers.get("Authorization")})
                    queued = api.queue.pop(0) if api.queue else None
                if isinstance(queued, tuple) and queued[0] == "hang":
                    time.sleep(queued[1])
                    queued = None
                if queued == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if queued is not None:
                    status, raw = queued
                    self.reply(status, raw=raw.encode("utf-8"))
                    return
                if self.headers.get("Authorization") != "Bearer " + TOKEN:
                    return self.fail(401, "missing or invalid token")
                if self.path == "/tool-actions/execute" and self.command == "POST":
                    if api.tools_off:
                        return self.fail(501, NO_TOOLS)
                    try:
                        tool = json.loads(body.decode("utf-8")).get("tool")
                    except Exception:
                        return self.fail(400, "the request must be a JSON object")
                    if tool not in TOOLS:
                        return self.fail(400, 'tool: unknown tool "%s": want one of %s' % (tool, ", ".join(TOOLS)))
                    with api.lock:
                        return self.reply(200, {"success": True, "data": api.tool_result})
                if len(parts) < 3 or parts[0] != "executions":
                    return self.fail(404, "not found")
                if urllib.parse.unquote(parts[1]) != EXEC_ID:
                    return self.fail(403, "execution ID mismatch")
                what = parts[2]
                with api.lock:
                    if len(parts) == 3 and what == "input" and self.command == "GET":
                        return self.reply(200, {"success": True, "data": api.input})
                    if len(parts) == 3 and what == "context" and self.command == "GET":
                        return self.reply(200, {"success": True, "data": api.context})
                    if len(parts) == 3 and what == "output" and self.command == "POST":
                        api.output = json.loads(body.decode("utf-8")).get("data")
                        return self.reply(200, {"success": True})
                    if len(parts) == 3 and what == "condition" and self.command == "POST":
                        c = json.loads(body.decode("utf-8")).get("condition")
                        if not isinstance(c, bool):
                            return self.fail(400, "condition must be a boolean")
                        api.condition = c
                        return self.reply(200, {"success": True})
                    if len(parts) == 4 and what == "variables" and key:
                        if self.command == "GET":
                            return self.reply(200, {"success": True, "data": {
                                "key": key, "value": api.variables.get(key)}})
                        if self.command == "PUT":
                            api.variables[key] = json.loads(body.decode("utf-8")).get("value")
                            return self.reply(200, {"success": True})
                self.fail(404, "not found")

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def env(self):
        return {"CRONIUM_RUNTIME_API": self.url, "CRONIUM_EXECUTION_ID": EXEC_ID,
                "CRONIUM_EXECUTION_TOKEN": TOKEN, "CRONIUM_JOB_ID": "job1",
                "CRONIUM_EVENT_ID": "42", "CRONIUM_EXECUTION_MODE": "container"}


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Base(unittest.TestCase):
    def setUp(self):
        self.saved_env = {k: os.environ.get(k) for k in ENV_KEYS}
        self.saved_delays = cronium.RETRY_DELAYS
        self.saved_timeouts = (cronium.TIMEOUT, cronium.TOOL_TIMEOUT)
        self.saved_sleep = cronium._sleep
        self.sleeps = []
        cronium.RETRY_DELAYS = (0.001, 0.002, 0.003)

        def sleep(d):
            self.sleeps.append(d)
            self.saved_sleep(d)

        cronium._sleep = sleep
        self.api = FakeAPI()
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        os.environ.update(self.api.env())

    def tearDown(self):
        self.api.close()
        cronium.RETRY_DELAYS = self.saved_delays
        cronium.TIMEOUT, cronium.TOOL_TIMEOUT = self.saved_timeouts
        cronium._sleep = self.saved_sleep
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TestFunctions(Base):
    def test_names(self):
        self.assertIs(cronium.getVariable, cronium.get_variable)
        self.assertIs(cronium.setVariable, cronium.set_variable)
        self.assertIs(cronium.setCondition, cronium.set_condition)
        self.assertIs(cronium.context, cronium.event)
        self.assertTrue(issubclass(cronium.CroniumError, Exception))
        for name in cronium.__all__:
            self.assertTrue(hasattr(cronium, name), name)

    def test_input_round_trip(self):
        for value in ({"a": 1, "b": [True, None, {"c": "d"}]}, [1, "two", 3.5], "hello", 42, 4.25,
                      12345678901234567890, 0, "", False, None, {}, []):
            self.api.input = value
            got = cronium.input()
            self.assertEqual(got, value)
            self.assertIs(type(got), type(value))
        req = self.api.requests[0]
        self.assertEqual((req["method"], req["path"]), ("GET", "/executions/%s/input" % EXEC_ID))
        self.assertEqual(req["auth"], "Bearer " + TOKEN)

    def test_output(self):
        for value in ({"a": 1}, [1, 2], "text", 7, 0, "", False, None, {"nested": {"x": [1]}}):
            self.assertIsNone(cronium.output(value))
            self.assertEqual(self.api.output, value)
            self.assertIs(type(self.api.output), type(value))
        req = self.api.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/executions/%s/output" % EXEC_ID))
        self.assertEqual(json.loads(req["body"]), {"data": {"a": 1}})

    def test_output_not_serializable(self):
        for bad in (object(), float("nan"), {1, 2}):
            with self.assertRaises(cronium.CroniumError):
                cronium.output(bad)
        self.assertEqual(self.api.requests, [])

    def test_variables_both_names(self):
        for setter, getter in ((cronium.set_variable, cronium.get_variable),
                               (cronium.setVariable, cronium.getVariable),
                               (cronium.set_variable, cronium.getVariable),
                               (cronium.setVariable, cronium.get_variable)):
            for value in ("text", {"a": [1, 2]}, [1], 3.5, 0, "", False, True):
                setter("K", value)
                self.assertEqual(self.api.variables["K"], value)
                got = getter("K")
                self.assertEqual(got, value)
                self.assertIs(type(got), type(value))
        put = [r for r in self.api.requests if r["method"] == "PUT"][0]
        self.assertEqual(put["path"], "/executions/%s/variables/K" % EXEC_ID)
        self.assertEqual(json.loads(put["body"]), {"value": "text"})

    def test_missing_variable(self):
        self.assertIsNone(cronium.get_variable("nope"))
        self.assertIsNone(cronium.getVariable("nope"))
        self.api.queue.append((404, '{"error":"Not Found","message":"variable not found"}'))
        self.assertIsNone(cronium.get_variable("gone"))

    def test_bad_key(self):
        for key in ("", None, 5):
            with self.assertRaises(cronium.CroniumError):
                cronium.get_variable(key)
            with self.assertRaises(cronium.CroniumError):
                cronium.set_variable(key, 1)
        self.assertEqual(self.api.requests, [])

    def test_key_encoding(self):
        key = "a/b c?d#e%f+\u00fc!*'()~._-"
        enc = "a%2Fb%20c%3Fd%23e%25f%2B%C3%BC%21%2A%27%28%29~._-"
        cronium.set_variable(key, "v")
        self.assertEqual(cronium.get_variable(key), "v")
        self.assertEqual(self.api.variables, {key: "v"})
        for r in self.api.requests:
            self.assertEqual(r["path"], "/executions/%s/variables/%s" % (EXEC_ID, enc))
            self.assertEqual(r["key"], key)

    def test_condition_both_names(self):
        for fn in (cronium.set_condition, cronium.setCondition):
            for value, want in ((True, True), (False, False), ("true", True), ("FALSE", False),
                                ("yes", True), ("No", False), ("on", True), ("OFF", False),
                                ("1", True), ("0", False), (1, True), (0, False), (None, False)):
                self.api.condition = None
                self.assertIsNone(fn(value))
                self.assertIs(self.api.condition, want, (fn, value))
        req = self.api.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/executions/%s/condition" % EXEC_ID))
        self.assertEqual(json.loads(req["body"]), {"condition": True})
        n = len(self.api.requests)
        with self.assertRaises(cronium.CroniumError):
            cronium.set_condition("maybe")
        self.assertEqual(len(self.api.requests), n)

    def test_event_both_names(self):
        self.assertEqual(cronium.event(), self.api.context)
        self.assertEqual(cronium.context(), self.api.context)
        self.assertEqual(self.api.requests[0]["path"], "/executions/%s/context" % EXEC_ID)

    def test_proxy_env_ignored(self):
        os.environ["http_proxy"] = os.environ["HTTP_PROXY"] = "http://127.0.0.1:%d" % closed_port()
        self.api.input = {"direct": True}
        self.assertEqual(cronium.input(), {"direct": True})

    def test_base_url_trailing_slash(self):
        os.environ["CRONIUM_RUNTIME_API"] = self.api.url + "/"
        self.api.input = 1
        self.assertEqual(cronium.input(), 1)


class TestErrors(Base):
    def test_5xx_retried_then_ok(self):
        self.api.queue += [(503, '{"error":"Service Unavailable","message":"down"}')] * 2
        self.api.input = {"ok": 1}
        self.assertEqual(cronium.input(), {"ok": 1})
        self.assertEqual(len(self.api.requests), 3)
        self.assertEqual(self.sleeps, [0.001, 0.002])

    def test_5xx_gives_up_after_3_retries(self):
        self.api.queue += [(503, '{"error":"Service Unavailable","message":"backend down"}')] * 4
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.output(1)
        self.assertEqual(str(cm.exception), "backend down")
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(len(self.api.requests), 4)
        self.assertEqual(self.sleeps, [0.001, 0.002, 0.003])

    def test_4xx_raised_at_once(self):
        for status in (400, 401, 403, 413, 429):
            self.api.requests[:] = []
            self.api.queue.append((status, '{"error":"X","message":"refused %d"}' % status))
            with self.assertRaises(cronium.CroniumError) as cm:
                cronium.set_variable("k", 1)
            self.assertEqual(str(cm.exception), "refused %d" % status)
            self.assertEqual(cm.exception.status, status)
            self.assertEqual(cm.exception.error, "X")
            self.assertEqual(len(self.api.requests), 1)
        self.assertEqual(self.sleeps, [])

    def test_4xx_without_json(self):
        self.api.queue.append((413, ""))
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.output("x")
        self.assertEqual(str(cm.exception), "HTTP 413")

    def test_execution_mismatch(self):
        os.environ["CRONIUM_EXECUTION_ID"] = "exec_other_1"
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.input()
        self.assertEqual(str(cm.exception), "execution ID mismatch")
        self.assertEqual(cm.exception.status, 403)

    def test_dropped_connection_retried(self):
        self.api.queue += ["drop", "drop"]
        cronium.set_condition(True)
        self.assertIs(self.api.condition, True)
        self.assertEqual(len(self.api.requests), 3)

    def test_transport_error_retried(self):
        os.environ["CRONIUM_RUNTIME_API"] = "http://127.0.0.1:%d" % closed_port()
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.get_variable("k")
        self.assertIsNone(cm.exception.status)
        self.assertIn("after 4 attempts", str(cm.exception))
        self.assertEqual(self.sleeps, [0.001, 0.002, 0.003])

    def test_no_retries_with_empty_delays(self):
        cronium.RETRY_DELAYS = ()
        self.api.queue.append((500, "{}"))
        with self.assertRaises(cronium.CroniumError):
            cronium.input()
        self.assertEqual(len(self.api.requests), 1)

    def test_not_available(self):
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        calls = (cronium.input, lambda: cronium.output(1), lambda: cronium.get_variable("k"),
                 lambda: cronium.getVariable("k"), lambda: cronium.set_variable("k", 1),
                 lambda: cronium.setVariable("k", 1), lambda: cronium.set_condition(True),
                 lambda: cronium.setCondition(True), cronium.event, cronium.context)
        for call in calls:
            with self.assertRaises(cronium.CroniumError) as cm:
                call()
            self.assertEqual(str(cm.exception), NOT_AVAILABLE)
        self.assertEqual(self.api.requests, [])


class TestToolActions(Base):
    def last_body(self):
        self.assertEqual(len(self.api.requests), 1)
        req = self.api.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/tool-actions/execute"))
        self.assertEqual(req["auth"], "Bearer " + TOKEN)
        return json.loads(req["body"])

    def test_names(self):
        self.assertIs(cronium.executeToolAction, cronium.execute_tool_action)
        self.assertIs(cronium.sendEmail, cronium.send_email)
        self.assertIs(cronium.sendSlackMessage, cronium.send_slack_message)
        self.assertIs(cronium.sendDiscordMessage, cronium.send_discord_message)
        self.assertIs(cronium.sendTeamsMessage, cronium.send_teams_message)
        self.assertEqual(cronium.TOOL_TIMEOUT, 90.0)

    def test_execute_tool_action(self):
        self.api.tool_result = {"success": True, "data": {"ts": "1.2", "n": 12345678901234567890}}
        for fn in (cronium.execute_tool_action, cronium.executeToolAction):
            self.api.requests[:] = []
            got = fn("slack", "send-message", {"text": "hi", "blocks": [{"type": "section"}]})
            self.assertEqual(got, {"success": True, "data": {"ts": "1.2", "n": 12345678901234567890}})
            self.assertEqual(self.last_body(), {"tool": "slack", "action": "send-message",
                                                "params": {"text": "hi", "blocks": [{"type": "section"}]}})
        for action in (None, ""):
            self.api.requests[:] = []
            cronium.execute_tool_action("webhook", action)
            self.assertEqual(self.last_body(), {"tool": "webhook", "params": {}})

    def test_wrappers(self):
        cases = (
            (lambda: cronium.send_email("a@example.com", "Report", "All fine"),
             {"tool": "email", "action": "send-message",
              "params": {"to": "a@example.com", "subject": "Report", "body": "All fine"}}),
            (lambda: cronium.sendEmail(["a@example.com", "b@example.com"], "S", "B", cc="c@example.com",
                                       html="<p>B</p>", from_="me@example.com"),
             {"tool": "email", "action": "send-message",
              "params": {"to": ["a@example.com", "b@example.com"], "subject": "S", "body": "B",
                         "cc": "c@example.com", "html": "<p>B</p>", "from": "me@example.com"}}),
            (lambda: cronium.send_email("a@example.com", "S", "B", **{"from": "me@example.com"}),
             {"tool": "email", "action": "send-message",
              "params": {"to": "a@example.com", "subject": "S", "body": "B", "from": "me@example.com"}}),
            (lambda: cronium.send_slack_message("backup done"),
             {"tool": "slack", "action": "send-message", "params": {"text": "backup done"}}),
            (lambda: cronium.sendSlackMessage("backup done", "#ops", icon_emoji=":ok:", blocks=[1]),
             {"tool": "slack", "action": "send-message",
              "params": {"text": "backup done", "channel": "#ops", "icon_emoji": ":ok:", "blocks": [1]}}),
            (lambda: cronium.send_slack_message(channel="#ops", text="kw"),
             {"tool": "slack", "action": "send-message", "params": {"text": "kw", "channel": "#ops"}}),
            (lambda: cronium.send_discord_message("deployed", embeds=[{"title": "x"}]),
             {"tool": "discord", "action": "send-message",
              "params": {"content": "deployed", "embeds": [{"title": "x"}]}}),
            (lambda: cronium.sendDiscordMessage("deployed"),
             {"tool": "discord", "action": "send-message", "params": {"content": "deployed"}}),
            (lambda: cronium.send_teams_message("deployed"),
             {"tool": "teams", "action": "send-message", "params": {"text": "deployed"}}),
            (lambda: cronium.sendTeamsMessage("deployed", "CI", webhookUrl="https://example.com/w"),
             {"tool": "teams", "action": "send-message",
              "params": {"text": "deployed", "title": "CI", "webhookUrl": "https://example.com/w"}}),
        )
        for call, want in cases:
            self.api.requests[:] = []
            self.assertEqual(call(), {"success": True, "data": {"ok": True}})
            self.assertEqual(self.last_body(), want)

    def test_failed_action_is_returned(self):
        self.api.tool_result = {"success": False, "error": "slack: POST hooks.slack.com: HTTP 500"}
        self.assertEqual(cronium.send_slack_message("hi"), self.api.tool_result)
        self.assertEqual(cronium.execute_tool_action("slack", "send-message", {"text": "hi"}), self.api.tool_result)
        self.assertEqual(len(self.api.requests), 2)

    def test_reply_without_result(self):
        for bad in (None, "text", [1]):
            self.api.tool_result = bad
            with self.assertRaises(cronium.CroniumError) as cm:
                cronium.send_discord_message("x")
            self.assertIn("no tool action result", str(cm.exception))

    def test_400_raised(self):
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.execute_tool_action("fax", "send", {})
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(str(cm.exception), 'tool: unknown tool "fax": want one of webhook, slack, discord, teams, email')
        self.assertEqual(len(self.api.requests), 1)

    def test_501_raised(self):
        self.api.tools_off = True
        for call in (lambda: cronium.send_email("a@example.com", "s", "b"), lambda: cronium.send_slack_message("x"),
                     lambda: cronium.send_discord_message("x"), lambda: cronium.send_teams_message("x"),
                     lambda: cronium.execute_tool_action("webhook", "send", {})):
            with self.assertRaises(cronium.CroniumError) as cm:
                call()
            self.assertEqual(cm.exception.status, 501)
            self.assertEqual(str(cm.exception), NO_TOOLS)
        self.assertEqual(len(self.api.requests), 5)
        self.assertEqual(self.sleeps, [])

    def test_5xx_not_retried(self):
        for status in (500, 502, 503):
            self.api.requests[:] = []
            self.api.queue[:] = [(status, '{"error":"X","message":"failed %d"}' % status)] * 4
            with self.assertRaises(cronium.CroniumError) as cm:
                cronium.send_slack_message("hi")
            self.assertEqual(cm.exception.status, status)
            self.assertEqual(str(cm.exception), "failed %d" % status)
            self.assertEqual(len(self.api.requests), 1)
        self.assertEqual(self.sleeps, [])
        # other calls still retry them
        self.api.queue[:] = [(503, "{}")]
        cronium.output(1)
        self.assertEqual(self.sleeps, [0.001])

    def test_dropped_connection_not_retried(self):
        self.api.queue[:] = ["drop", "drop"]
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.send_teams_message("hi")
        self.assertIsNone(cm.exception.status)
        self.assertNotIn("attempts", str(cm.exception))
        self.assertEqual(len(self.api.requests), 1)
        self.assertEqual(self.sleeps, [])

    def test_timeout_not_retried_and_tool_timeout_used(self):
        cronium.TIMEOUT = 0.1
        cronium.TOOL_TIMEOUT = 0.1
        self.api.queue[:] = [("hang", 0.5)]
        with self.assertRaises(cronium.CroniumError):
            cronium.send_discord_message("hi")
        self.assertEqual(len(self.api.requests), 1)
        self.assertEqual(self.sleeps, [])
        # a tool action waits TOOL_TIMEOUT, not TIMEOUT
        time.sleep(0.5)
        self.api.requests[:] = []
        cronium.TOOL_TIMEOUT = 5.0
        self.api.queue[:] = [("hang", 0.3)]
        self.assertEqual(cronium.send_discord_message("hi"), {"success": True, "data": {"ok": True}})
        self.assertEqual(len(self.api.requests), 1)

    def test_connection_refused_retried(self):
        port = closed_port()
        os.environ["CRONIUM_RUNTIME_API"] = "http://127.0.0.1:%d" % port
        with self.assertRaises(cronium.CroniumError) as cm:
            cronium.send_email("a@example.com", "s", "b")
        self.assertIsNone(cm.exception.status)
        self.assertIn("after 4 attempts", str(cm.exception))
        self.assertEqual(self.sleeps, [0.001, 0.002, 0.003])

        # refused, then the agent is back on its port: sent once
        self.sleeps[:] = []
        started = []

        def sleep(d):
            self.sleeps.append(d)
            if not started:
                started.append(FakeAPI(port=port))

        cronium._sleep = sleep
        try:
            self.assertEqual(cronium.send_slack_message("hi"), {"success": True, "data": {"ok": True}})
            self.assertEqual(self.sleeps, [0.001])
            self.assertEqual(len(started[0].requests), 1)
        finally:
            for a in started:
                a.close()

    def test_bad_arguments(self):
        for call in (lambda: cronium.execute_tool_action("", "send", {}),
                     lambda: cronium.execute_tool_action(None, "send", {}),
                     lambda: cronium.execute_tool_action("slack", 5, {}),
                     lambda: cronium.execute_tool_action("slack", "send-message", [1]),
                     lambda: cronium.execute_tool_action("slack", "send-message", "text=hi"),
                     lambda: cronium.send_slack_message(float("nan")),
                     lambda: cronium.send_discord_message(object())):
            with self.assertRaises(cronium.CroniumError):
                call()
        self.assertEqual(self.api.requests, [])

    def test_not_available(self):
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        for call in (lambda: cronium.execute_tool_action("slack", "send-message", {}),
                     lambda: cronium.send_email("a", "s", "b"), lambda: cronium.sendSlackMessage("x"),
                     lambda: cronium.send_discord_message("x"), lambda: cronium.sendTeamsMessage("x")):
            with self.assertRaises(cronium.CroniumError) as cm:
                call()
            self.assertEqual(str(cm.exception), NOT_AVAILABLE)
        self.assertEqual(self.api.requests, [])


class TestImport(unittest.TestCase):
    def test_import_without_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRONIUM_")}
        env["PYTHONPATH"] = HERE
        script = ("import cronium\n"
                  "assert cronium.RETRY_DELAYS == (0.2, 0.4, 0.8), cronium.RETRY_DELAYS\n"
                  "try:\n"
                  "    cronium.input()\n"
                  "except cronium.CroniumError as e:\n"
                  "    print('raised:' + str(e))\n")
        p = subprocess.run([sys.executable, "-c", script], env=env, cwd="/",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout.decode(), "raised:" + NOT_AVAILABLE + "\n")
        self.assertEqual(p.stderr.decode(), "")


if __name__ == "__main__":
    unittest.main()

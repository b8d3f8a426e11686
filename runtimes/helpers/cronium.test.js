'use strict';
// Tests of cronium.js against a fake runtime API on 127.0.0.1.
// Run: node --test runtimes/helpers/cronium.test.js

const { describe, test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const cronium = require(path.join(__dirname, 'cronium.js'));

const EXEC_ID = 'exec_job1_1700000000';
const TOKEN = 'test-token';
const NOT_AVAILABLE = 'cronium runtime not available: CRONIUM_RUNTIME_API is not set';
const NO_TOOLS = 'tool actions are not enabled on this agent: its configuration must set jobs.toolActions: true (CRONIUM_JOBS_TOOL_ACTIONS=true)';
const TOOLS = ['webhook', 'slack', 'discord', 'teams', 'email'];
const OK = { success: true, data: { ok: true } };
const ENV_KEYS = ['CRONIUM_RUNTIME_API', 'CRONIUM_EXECUTION_ID', 'CRONIUM_EXECUTION_TOKEN',
  'CRONIUM_JOB_ID', 'CRONIUM_EVENT_ID', 'CRONIUM_EXECUTION_MODE'];

// FakeAPI is an in-memory runtime API for one execution: it checks the bearer
// token and execution id, keeps input, output, variables, condition and
// context, answers POST /tool-actions/execute with toolResult (501 when
// toolsOff, 400 for an unknown tool), records every request ({method, path,
// key, body, auth}), and answers queued replies ({status, body}, 'drop' to
// destroy the socket, or {hang: ms} to wait first) first.
class FakeAPI {
  constructor() {
    this.input = null;
    this.context = { executionId: EXEC_ID, jobId: 'job1', eventId: '42', eventName: 'demo', eventType: 'NODEJS', userId: 'u1', startTime: '2024-01-01T00:00:00Z', trigger: 'MANUAL', metadata: { k: 'v' } };
    this.variables = new Map();
    this.output = '<unset>';
    this.condition = null;
    this.toolResult = OK;
    this.toolsOff = false;
    this.requests = [];
    this.queue = [];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  start(port) {
    return new Promise((resolve) => this.server.listen(port || 0, '127.0.0.1', () => {
      this.url = 'http://127.0.0.1:' + this.server.address().port;
      resolve(this);
    }));
  }

  stop() {
    if (this.server.closeAllConnections) this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  env() {
    return { CRONIUM_RUNTIME_API: this.url, CRONIUM_EXECUTION_ID: EXEC_ID, CRONIUM_EXECUTION_TOKEN: TOKEN, CRONIUM_JOB_ID: 'job1', CRONIUM_EVENT_ID: '42', CRONIUM_EXECUTION_MODE: 'container' };
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parts = req.url.replace(/^\//, '').split('/');
      const key = parts.length === 4 && parts[2] === 'variables' ? decodeURIComponent(parts[3]) : null;
      this.requests.push({ method: req.method, path: req.url, key, body, auth: req.headers.authorization });
      const q = this.queue.length ? this.queue.shift() : null;
      if (q && q.hang) {
        setTimeout(() => {
          if (!res.destroyed) this.answer(req, res, parts, key, body, null);
        }, q.hang);
        return;
      }
      this.answer(req, res, parts, key, body, q);
    });
  }

  answer(req, res, parts, key, body, q) {
    const send = (status, obj, raw) => {
      const b = raw !== undefined ? raw : JSON.stringify(obj);
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
      res.end(b);
    };
    const fail = (status, message) => send(status, { error: 'Error ' + status, message });
    if (q) {
      if (q === 'drop') {
        req.socket.destroy();
        return;
      }
      send(q.status, null, q.body);
      return;
    }
    if (req.headers.authorization !== 'Bearer ' + TOKEN) return fail(401, 'missing or invalid token');
    if (req.url === '/tool-actions/execute' && req.method === 'POST') {
      if (this.toolsOff) return fail(501, NO_TOOLS);
      let tool;
      try {
        tool = JSON.parse(body).tool;
      } catch (e) {
        return fail(400, 'the request must be a JSON object');
      }
      if (!TOOLS.includes(tool)) return fail(400, `tool: unknown tool "${tool}": want one of ${TOOLS.join(', ')}`);
      return send(200, { success: true, data: this.toolResult });
    }
    if (parts.length < 3 || parts[0] !== 'executions') return fail(404, 'not found');
    if (decodeURIComponent(parts[1]) !== EXEC_ID) return fail(403, 'execution ID mismatch');
    const what = parts[2];
    if (parts.length === 3 && what === 'input' && req.method === 'GET') return send(200, { success: true, data: this.input });
    if (parts.length === 3 && what === 'context' && req.method === 'GET') return send(200, { success: true, data: this.context });
    if (parts.length === 3 && what === 'output' && req.method === 'POST') {
      this.output = JSON.parse(body).data;
      return send(200, { success: true });
    }
    if (parts.length === 3 && what === 'condition' && req.method === 'POST') {
      const c = JSON.parse(body).condition;
      if (typeof c !== 'boolean') return fail(400, 'condition must be a boolean');
      this.condition = c;
      return send(200, { success: true });
    }
    if (parts.length === 4 && what === 'variables' && key) {
      if (req.method === 'GET') {
        const value = this.variables.has(key) ? this.variables.get(key) : null;
        return send(200, { success: true, data: { key, value } });
      }
      if (req.method === 'PUT') {
        this.variables.set(key, JSON.parse(body).value);
        return send(200, { success: true });
      }
    }
    return fail(404, 'not found');
  }
}

// A port nothing listens on.
function closedPort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

let api;
let savedEnv;
let savedDelays;

beforeEach(async () => {
  savedEnv = {};
  for (const k of ENV_KEYS) savedEnv[k] = process.env[k];
  savedDelays = cronium.RETRY_DELAYS_MS;
  cronium.RETRY_DELAYS_MS = [1, 2, 3];
  api = await new FakeAPI().start();
  for (const k of ENV_KEYS) delete process.env[k];
  Object.assign(process.env, api.env());
});

afterEach(async () => {
  await api.stop();
  cronium.RETRY_DELAYS_MS = savedDelays;
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

describe('functions', () => {
  test('both name styles exist and return Promises', () => {
    assert.equal(cronium.get_variable, cronium.getVariable);
    assert.equal(cronium.set_variable, cronium.setVariable);
    assert.equal(cronium.set_condition, cronium.setCondition);
    assert.equal(cronium.context, cronium.event);
    assert.ok(new cronium.CroniumError('x') instanceof Error);
    assert.equal(new cronium.CroniumError('x').name, 'CroniumError');
    const p = cronium.input();
    assert.ok(p instanceof Promise);
    return p;
  });

  test('input round-trips any JSON value', async () => {
    for (const value of [{ a: 1, b: [true, null, { c: 'd' }] }, [1, 'two', 3.5], 'hello', 42, 4.25, 0, '', false, null, {}, []]) {
      api.input = value;
      assert.deepEqual(await cronium.input(), value);
    }
    assert.equal(api.requests[0].method, 'GET');
    assert.equal(api.requests[0].path, `/executions/${EXEC_ID}/input`);
    assert.equal(api.requests[0].auth, 'Bearer ' + TOKEN);
  });

  test('output', async () => {
    for (const value of [{ a: 1 }, [1, 2], 'text', 7, 0, '', false, null, { nested: { x: [1] } }]) {
      assert.equal(await cronium.output(value), undefined);
      assert.deepEqual(api.output, value);
    }
    await cronium.output(undefined);
    assert.equal(api.output, null);
    assert.equal(api.requests[0].method, 'POST');
    assert.equal(api.requests[0].path, `/executions/${EXEC_ID}/output`);
    assert.deepEqual(JSON.parse(api.requests[0].body), { data: { a: 1 } });
  });

  test('output of a value JSON cannot encode', async () => {
    const circular = {};
    circular.self = circular;
    await assert.rejects(cronium.output(circular), cronium.CroniumError);
    await assert.rejects(cronium.output(10n), cronium.CroniumError);
    assert.equal(api.requests.length, 0);
  });

  test('variables in both name styles, falsy values kept', async () => {
    const pairs = [[cronium.setVariable, cronium.getVariable], [cronium.set_variable, cronium.get_variable],
      [cronium.setVariable, cronium.get_variable], [cronium.set_variable, cronium.getVariable]];
    for (const [set, get] of pairs) {
      for (const value of ['text', { a: [1, 2] }, [1], 3.5, 0, '', false, true]) {
        await set('K', value);
        assert.deepEqual(api.variables.get('K'), value);
        const got = await get('K');
        assert.deepEqual(got, value);
        assert.equal(typeof got, typeof value);
      }
    }
    const put = api.requests.find((r) => r.method === 'PUT');
    assert.equal(put.path, `/executions/${EXEC_ID}/variables/K`);
    assert.deepEqual(JSON.parse(put.body), { value: 'text' });
  });

  test('missing variable is null', async () => {
    assert.equal(await cronium.getVariable('nope'), null);
    assert.equal(await cronium.get_variable('nope'), null);
    api.queue.push({ status: 404, body: '{"error":"Not Found","message":"variable not found"}' });
    assert.equal(await cronium.getVariable('gone'), null);
  });

  test('bad keys', async () => {
    for (const key of ['', null, undefined, 5]) {
      await assert.rejects(cronium.getVariable(key), cronium.CroniumError);
      await assert.rejects(cronium.setVariable(key, 1), cronium.CroniumError);
    }
    assert.equal(api.requests.length, 0);
  });

  test('keys are percent-encoded', async () => {
    const key = "a/b c?d#e%f+\u00fc!*'()~._-";
    const enc = 'a%2Fb%20c%3Fd%23e%25f%2B%C3%BC%21%2A%27%28%29~._-';
    await cronium.setVariable(key, 'v');
    assert.equal(await cronium.getVariable(key), 'v');
    assert.deepEqual([...api.variables.keys()], [key]);
    for (const r of api.requests) {
      assert.equal(r.path, `/executions/${EXEC_ID}/variables/${enc}`);
      assert.equal(r.key, key);
    }
  });

  test('condition in both name styles', async () => {
    const cases = [[true, true], [false, false], ['true', true], ['FALSE', false], ['yes', true], ['No', false],
      ['on', true], ['OFF', false], ['1', true], ['0', false], [1, true], [0, false], [null, false]];
    for (const fn of [cronium.setCondition, cronium.set_condition]) {
      for (const [value, want] of cases) {
        api.condition = null;
        assert.equal(await fn(value), undefined);
        assert.equal(api.condition, want, `${fn.name}(${JSON.stringify(value)})`);
      }
    }
    assert.equal(api.requests[0].path, `/executions/${EXEC_ID}/condition`);
    assert.deepEqual(JSON.parse(api.requests[0].body), { condition: true });
    const n = api.requests.length;
    await assert.rejects(cronium.setCondition('maybe'), cronium.CroniumError);
    assert.equal(api.requests.length, n);
  });

  test('event and context', async () => {
    assert.deepEqual(await cronium.event(), api.context);
    assert.deepEqual(await cronium.context(), api.context);
    assert.equal(api.requests[0].path, `/executions/${EXEC_ID}/context`);
  });

  test('base URL with a trailing slash', async () => {
    process.env.CRONIUM_RUNTIME_API = api.url + '/';
    api.input = 1;
    assert.equal(await cronium.input(), 1);
  });
});

describe('errors', () => {
  test('5xx retried, then ok', async () => {
    api.queue.push({ status: 503, body: '{"error":"Service Unavailable","message":"down"}' }, { status: 503, body: '{}' });
    api.input = { ok: 1 };
    assert.deepEqual(await cronium.input(), { ok: 1 });
    assert.equal(api.requests.length, 3);
  });

  test('5xx gives up after 3 retries', async () => {
    for (let i = 0; i < 4; i++) api.queue.push({ status: 503, body: '{"error":"Service Unavailable","message":"backend down"}' });
    await assert.rejects(cronium.output(1), (err) => {
      assert.ok(err instanceof cronium.CroniumError);
      assert.equal(err.message, 'backend down');
      assert.equal(err.status, 503);
      return true;
    });
    assert.equal(api.requests.length, 4);
  });

  test('4xx rejects at once', async () => {
    for (const status of [400, 401, 403, 413, 429]) {
      api.requests.length = 0;
      api.queue.push({ status, body: JSON.stringify({ error: 'X', message: 'refused ' + status }) });
      await assert.rejects(cronium.setVariable('k', 1), (err) => {
        assert.ok(err instanceof cronium.CroniumError);
        assert.equal(err.message, 'refused ' + status);
        assert.equal(err.status, status);
        assert.equal(err.error, 'X');
        return true;
      });
      assert.equal(api.requests.length, 1);
    }
  });

  test('4xx without a JSON body', async () => {
    api.queue.push({ status: 413, body: '' });
    await assert.rejects(cronium.output('x'), { name: 'CroniumError', message: 'HTTP 413' });
  });

  test('execution id mismatch', async () => {
    process.env.CRONIUM_EXECUTION_ID = 'exec_other_1';
    await assert.rejects(cronium.input(), { name: 'CroniumError', message: 'execution ID mismatch', status: 403 });
  });

  test('dropped connections are retried', async () => {
    api.queue.push('drop', 'drop');
    await cronium.setCondition(true);
    assert.equal(api.condition, true);
    assert.equal(api.requests.length, 3);
  });

  test('transport errors retried 3 times, then rejected', async () => {
    // A server that accepts and at once closes every connection: countable.
    let accepted = 0;
    const dropper = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise((resolve) => dropper.listen(0, '127.0.0.1', resolve));
    try {
      process.env.CRONIUM_RUNTIME_API = 'http://127.0.0.1:' + dropper.address().port;
      await assert.rejects(cronium.getVariable('k'), (err) => {
        assert.ok(err instanceof cronium.CroniumError);
        assert.equal(err.status, null);
        assert.match(err.message, /after 4 attempts/);
        return true;
      });
      assert.equal(accepted, 4);
    } finally {
      await new Promise((resolve) => dropper.close(resolve));
    }

    // A closed port.
    process.env.CRONIUM_RUNTIME_API = 'http://127.0.0.1:' + (await closedPort());
    await assert.rejects(cronium.input(), (err) => {
      assert.ok(err instanceof cronium.CroniumError);
      assert.match(err.message, /ECONNREFUSED.*after 4 attempts/);
      return true;
    });
  });

  test('no retries with empty delays', async () => {
    cronium.RETRY_DELAYS_MS = [];
    api.queue.push({ status: 500, body: '{}' });
    await assert.rejects(cronium.input(), cronium.CroniumError);
    assert.equal(api.requests.length, 1);
  });

  test('runtime not available', async () => {
    for (const k of ENV_KEYS) delete process.env[k];
    const calls = [() => cronium.input(), () => cronium.output(1), () => cronium.getVariable('k'), () => cronium.get_variable('k'),
      () => cronium.setVariable('k', 1), () => cronium.set_variable('k', 1), () => cronium.setCondition(true),
      () => cronium.set_condition(true), () => cronium.event(), () => cronium.context()];
    for (const call of calls) {
      const p = call();
      assert.ok(p instanceof Promise);
      await assert.rejects(p, { name: 'CroniumError', message: NOT_AVAILABLE });
    }
    assert.equal(api.requests.length, 0);
  });
});

test('require("cronium") through NODE_PATH works without the runtime env', () => {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CRONIUM_') && !k.startsWith('NODE_')) env[k] = v;
  env.NODE_PATH = __dirname;
  const script = `
    const c = require('cronium');
    if (JSON.stringify(c.RETRY_DELAYS_MS) !== '[200,400,800]') throw new Error('defaults: ' + c.RETRY_DELAYS_MS);
    c.input().then(() => console.log('resolved'), (e) => console.log('rejected:' + e.name + ':' + e.message));`;
  const r = spawnSync(process.execPath, ['-e', script], { env, cwd: '/', encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'rejected:CroniumError:' + NOT_AVAILABLE + '\n');
  assert.equal(r.stderr, '');
});

describe('tool actions', () => {
  const bodyOf = () => {
    assert.equal(api.requests.length, 1);
    const r = api.requests[0];
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/tool-actions/execute');
    assert.equal(r.auth, 'Bearer ' + TOKEN);
    return JSON.parse(r.body);
  };

  test('both name styles', () => {
    assert.equal(cronium.execute_tool_action, cronium.executeToolAction);
    assert.equal(cronium.send_email, cronium.sendEmail);
    assert.equal(cronium.send_slack_message, cronium.sendSlackMessage);
    assert.equal(cronium.send_discord_message, cronium.sendDiscordMessage);
    assert.equal(cronium.send_teams_message, cronium.sendTeamsMessage);
    assert.equal(cronium.TOOL_TIMEOUT_MS, 90000);
  });

  test('executeToolAction sends the request and resolves to the result', async () => {
    api.toolResult = { success: true, data: { ts: '1.2' } };
    for (const fn of [cronium.executeToolAction, cronium.execute_tool_action]) {
      api.requests.length = 0;
      assert.deepEqual(await fn('slack', 'send-message', { text: 'hi', blocks: [{ type: 'section' }] }), { success: true, data: { ts: '1.2' } });
      assert.deepEqual(bodyOf(), { tool: 'slack', action: 'send-message', params: { text: 'hi', blocks: [{ type: 'section' }] } });
    }
    for (const action of [undefined, null, '']) {
      api.requests.length = 0;
      await cronium.executeToolAction('webhook', action);
      assert.deepEqual(bodyOf(), { tool: 'webhook', params: {} });
    }
  });

  test('wrappers, positional and with an object', async () => {
    const cases = [
      [() => cronium.sendEmail('a@example.com', 'Report', 'All fine'),
        { tool: 'email', action: 'send-message', params: { to: 'a@example.com', subject: 'Report', body: 'All fine' } }],
      [() => cronium.send_email(['a@example.com', 'b@example.com'], 'S', 'B', { cc: 'c@example.com', from: 'me@example.com' }),
        { tool: 'email', action: 'send-message', params: { to: ['a@example.com', 'b@example.com'], subject: 'S', body: 'B', cc: 'c@example.com', from: 'me@example.com' } }],
      [() => cronium.sendEmail({ to: 'a@example.com', subject: 'S', body: 'B', html: true }),
        { tool: 'email', action: 'send-message', params: { to: 'a@example.com', subject: 'S', body: 'B', html: true } }],
      [() => cronium.sendSlackMessage('backup done'),
        { tool: 'slack', action: 'send-message', params: { text: 'backup done' } }],
      [() => cronium.send_slack_message('backup done', '#ops', { icon_emoji: ':ok:' }),
        { tool: 'slack', action: 'send-message', params: { text: 'backup done', channel: '#ops', icon_emoji: ':ok:' } }],
      [() => cronium.sendSlackMessage('x', null, { username: 'bot' }),
        { tool: 'slack', action: 'send-message', params: { text: 'x', username: 'bot' } }],
      [() => cronium.sendSlackMessage({ channel: '#ops', text: 'obj' }),
        { tool: 'slack', action: 'send-message', params: { channel: '#ops', text: 'obj' } }],
      [() => cronium.sendDiscordMessage('deployed'),
        { tool: 'discord', action: 'send-message', params: { content: 'deployed' } }],
      [() => cronium.send_discord_message('deployed', { embeds: [{ title: 'x' }] }),
        { tool: 'discord', action: 'send-message', params: { content: 'deployed', embeds: [{ title: 'x' }] } }],
      [() => cronium.sendDiscordMessage({ content: 'obj' }),
        { tool: 'discord', action: 'send-message', params: { content: 'obj' } }],
      [() => cronium.sendTeamsMessage('deployed'),
        { tool: 'teams', action: 'send-message', params: { text: 'deployed' } }],
      [() => cronium.send_teams_message('deployed', 'CI'),
        { tool: 'teams', action: 'send-message', params: { text: 'deployed', title: 'CI' } }],
      [() => cronium.sendTeamsMessage({ text: 'obj', title: 'T' }),
        { tool: 'teams', action: 'send-message', params: { text: 'obj', title: 'T' } }],
    ];
    for (const [call, want] of cases) {
      api.requests.length = 0;
      assert.deepEqual(await call(), OK);
      assert.deepEqual(bodyOf(), want);
    }
  });

  test('a failed action resolves to its result', async () => {
    api.toolResult = { success: false, error: 'slack: POST hooks.slack.com: HTTP 500' };
    assert.deepEqual(await cronium.sendSlackMessage('hi'), api.toolResult);
    assert.deepEqual(await cronium.executeToolAction('slack', 'send-message', { text: 'hi' }), api.toolResult);
    assert.equal(api.requests.length, 2);
  });

  test('a reply without a result rejects', async () => {
    for (const bad of [null, 'text', [1]]) {
      api.toolResult = bad;
      await assert.rejects(cronium.sendDiscordMessage('x'), { name: 'CroniumError', message: /no tool action result/ });
    }
  });

  test('400 rejects with the message', async () => {
    await assert.rejects(cronium.executeToolAction('fax', 'send', {}), {
      name: 'CroniumError', status: 400, message: 'tool: unknown tool "fax": want one of webhook, slack, discord, teams, email',
    });
    assert.equal(api.requests.length, 1);
  });

  test('501 rejects with the message', async () => {
    api.toolsOff = true;
    for (const call of [() => cronium.sendEmail('a@example.com', 's', 'b'), () => cronium.sendSlackMessage('x'),
      () => cronium.sendDiscordMessage('x'), () => cronium.sendTeamsMessage('x'), () => cronium.executeToolAction('webhook', 'send', {})]) {
      await assert.rejects(call(), { name: 'CroniumError', status: 501, message: NO_TOOLS });
    }
    assert.equal(api.requests.length, 5);
  });

  test('5xx is not retried', async () => {
    for (const status of [500, 502, 503]) {
      api.requests.length = 0;
      api.queue = Array(4).fill({ status, body: JSON.stringify({ error: 'X', message: 'failed ' + status }) });
      await assert.rejects(cronium.sendSlackMessage('hi'), { name: 'CroniumError', status, message: 'failed ' + status });
      assert.equal(api.requests.length, 1);
    }
    // other calls still retry them
    api.requests.length = 0;
    api.queue = [{ status: 503, body: '{}' }];
    await cronium.output(1);
    assert.equal(api.requests.length, 2);
  });

  test('a dropped connection is not retried', async () => {
    api.queue = ['drop', 'drop'];
    await assert.rejects(cronium.sendTeamsMessage('hi'), (err) => {
      assert.ok(err instanceof cronium.CroniumError);
      assert.equal(err.status, null);
      assert.doesNotMatch(err.message, /attempts/);
      return true;
    });
    assert.equal(api.requests.length, 1);
  });

  test('a timeout is not retried; tool actions wait TOOL_TIMEOUT_MS', async () => {
    const saved = [cronium.TIMEOUT_MS, cronium.TOOL_TIMEOUT_MS];
    try {
      cronium.TIMEOUT_MS = 100;
      cronium.TOOL_TIMEOUT_MS = 100;
      api.queue = [{ hang: 400 }];
      await assert.rejects(cronium.sendDiscordMessage('hi'), { name: 'CroniumError', message: /no reply within 100 ms/ });
      assert.equal(api.requests.length, 1);
      api.requests.length = 0;
      cronium.TOOL_TIMEOUT_MS = 5000;
      api.queue = [{ hang: 300 }];
      assert.deepEqual(await cronium.sendDiscordMessage('hi'), OK);
      assert.equal(api.requests.length, 1);
    } finally {
      [cronium.TIMEOUT_MS, cronium.TOOL_TIMEOUT_MS] = saved;
    }
  });

  test('a refused connection is retried', async () => {
    const port = await closedPort();
    process.env.CRONIUM_RUNTIME_API = 'http://127.0.0.1:' + port;
    await assert.rejects(cronium.sendEmail('a@example.com', 's', 'b'), (err) => {
      assert.ok(err instanceof cronium.CroniumError);
      assert.equal(err.status, null);
      assert.match(err.message, /ECONNREFUSED.*after 4 attempts/);
      return true;
    });

    // Refused, then the agent is back on its port: sent once.
    cronium.RETRY_DELAYS_MS = [300, 300, 300];
    const later = new FakeAPI();
    const started = new Promise((resolve) => setTimeout(() => later.start(port).then(resolve), 100));
    try {
      assert.deepEqual(await cronium.sendSlackMessage('hi'), OK);
      assert.equal(later.requests.length, 1);
    } finally {
      await started;
      await later.stop();
    }
  });

  test('bad arguments reject before any call', async () => {
    const circular = {};
    circular.self = circular;
    for (const call of [() => cronium.executeToolAction('', 'send', {}), () => cronium.executeToolAction(null, 'send', {}),
      () => cronium.executeToolAction('slack', 5, {}), () => cronium.executeToolAction('slack', 'send-message', [1]),
      () => cronium.executeToolAction('slack', 'send-message', 'text=hi'), () => cronium.sendSlackMessage('x', '#c', 'bad'),
      () => cronium.sendDiscordMessage('x', circular)]) {
      const p = call();
      assert.ok(p instanceof Promise);
      await assert.rejects(p, cronium.CroniumError);
    }
    assert.equal(api.requests.length, 0);
  });

  test('runtime not available', async () => {
    for (const k of ENV_KEYS) delete process.env[k];
    for (const call of [() => cronium.executeToolAction('slack', 'send-message', {}), () => cronium.sendEmail('a', 's', 'b'),
      () => cronium.send_slack_message('x'), () => cronium.sendDiscordMessage('x'), () => cronium.send_teams_message('x')]) {
      await assert.rejects(call(), { name: 'CroniumError', message: NOT_AVAILABLE });
    }
    assert.equal(api.requests.length, 0);
  });
});

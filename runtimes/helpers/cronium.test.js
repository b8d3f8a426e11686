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
const ENV_KEYS = ['CRONIUM_RUNTIME_API', 'CRONIUM_EXECUTION_ID', 'CRONIUM_EXECUTION_TOKEN',
  'CRONIUM_JOB_ID', 'CRONIUM_EVENT_ID', 'CRONIUM_EXECUTION_MODE'];

// FakeAPI is an in-memory runtime API for one execution: it checks the bearer
// token and execution id, keeps input, output, variables, condition and
// context, records every request ({method, path, key, body, auth}), and answers
// queued replies ({status, body} or 'drop' to destroy the socket) first.
class FakeAPI {
  constructor() {
    this.input = null;
    this.context = { executionId: EXEC_ID, jobId: 'job1', eventId: '42', eventName: 'demo', eventType: 'NODEJS', userId: 'u1', startTime: '2024-01-01T00:00:00Z', trigger: 'MANUAL', metadata: { k: 'v' } };
    this.variables = new Map();
    this.output = '<unset>';
    this.condition = null;
    this.requests = [];
    this.queue = [];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  start() {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
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
      const send = (status, obj, raw) => {
        const b = raw !== undefined ? raw : JSON.stringify(obj);
        res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
        res.end(b);
      };
      const fail = (status, message) => send(status, { error: 'Error ' + status, message });
      if (this.queue.length) {
        const q = this.queue.shift();
        if (q === 'drop') {
          req.socket.destroy();
          return;
        }
        send(q.status, null, q.body);
        return;
      }
      if (req.headers.authorization !== 'Bearer ' + TOKEN) return fail(401, 'missing or invalid token');
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
    });
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

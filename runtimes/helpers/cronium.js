'use strict';
/**
 * Cronium runtime helpers for Node.js scripts.
 *
 *   const cronium = require('cronium');
 *   const data = await cronium.input();            // the step input (any JSON value)
 *   await cronium.output({ ok: true });            // the step output
 *   const key = await cronium.getVariable('KEY');  // null when the variable is not set
 *   await cronium.setVariable('COUNTER', 3);
 *   await cronium.setCondition(true);              // workflow condition
 *   const info = await cronium.event();            // execution context (also: context())
 *
 *   // tool actions (the agent runs them; each resolves to {success, data, error})
 *   await cronium.sendSlackMessage('backup done', '#ops');
 *   await cronium.sendEmail('ops@example.com', 'Report', 'All fine');  // or sendEmail({ to, subject, body })
 *   await cronium.sendDiscordMessage('deployed');
 *   await cronium.sendTeamsMessage('deployed', 'CI');
 *   await cronium.executeToolAction('webhook', 'send', { url: 'https://example.com/hook' });
 *
 * Every function also has its snake_case name (get_variable, set_variable,
 * set_condition, execute_tool_action, send_email, ...) and returns a Promise.
 * Calls talk to the job's runtime API (CRONIUM_RUNTIME_API); transport errors
 * and 5xx replies are retried 3 times (0.2 s, 0.4 s, 0.8 s), 4xx replies
 * reject with a CroniumError at once. A tool action is never sent twice: it
 * is retried only when the connection was refused (the request never left),
 * and a failed action resolves to a result with success false. Loading this
 * module never fails, even outside a Cronium job: only a call rejects.
 * Standard library only (http, https).
 */

const http = require('http');
const https = require('https');

const NOT_AVAILABLE = 'cronium runtime not available: CRONIUM_RUNTIME_API is not set';

/**
 * A runtime API call failed. `status` is the HTTP status of the reply (null
 * for a transport error or when the runtime is not available), `error` the
 * reply's error field.
 */
class CroniumError extends Error {
  constructor(message, status, error) {
    super(message);
    this.name = 'CroniumError';
    this.status = status === undefined ? null : status;
    this.error = error === undefined ? null : error;
  }
}

function oneLine(s) {
  return String(s).split(/\s+/).filter(Boolean).join(' ');
}

// Every byte but the unreserved characters (A-Z a-z 0-9 - . _ ~) is
// percent-encoded, so '/' becomes %2F.
function encodeSegment(s) {
  let enc;
  try {
    enc = encodeURIComponent(s);
  } catch (e) {
    throw new CroniumError('cannot encode ' + JSON.stringify(s) + ': ' + e.message);
  }
  return enc.replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function runtime() {
  const env = process.env;
  const base = (env.CRONIUM_RUNTIME_API || '').trim();
  if (!base) throw new CroniumError(NOT_AVAILABLE);
  const execId = env.CRONIUM_EXECUTION_ID || '';
  if (!execId) throw new CroniumError('cronium runtime not available: CRONIUM_EXECUTION_ID is not set');
  const token = env.CRONIUM_EXECUTION_TOKEN || '';
  if (!token) throw new CroniumError('cronium runtime not available: CRONIUM_EXECUTION_TOKEN is not set');
  const root = base.replace(/\/+$/, '');
  return { root, base: root + '/executions/' + encodeSegment(execId), token };
}

function errorMessage(status, raw) {
  let body = null;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    body = null;
  }
  let message = null;
  let error = null;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    if (body.message) message = String(body.message);
    if (body.error) error = String(body.error);
  }
  if (!message) message = error;
  if (!message) {
    message = 'HTTP ' + status;
    const text = raw.trim();
    if (text && text.length < 200) message += ': ' + text;
  }
  return { message: oneLine(message), error };
}

function retryable(err, refused) {
  err.retry = true;
  // refused: the connection was refused, so the request never left
  if (refused) err.refused = true;
  return err;
}

// once makes one attempt; a rejection with .retry set may be retried.
function once(method, url, token, body, timeoutMs) {
  return new Promise((resolve, reject) => {
    let u;
    try {
      u = new URL(url);
    } catch (e) {
      reject(new CroniumError('invalid runtime API URL ' + JSON.stringify(url) + ': ' + e.message));
      return;
    }
    const mod = u.protocol === 'https:' ? https : http;
    const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
    if (body !== null) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    let done = false;
    const fail = (err) => {
      if (!done) {
        done = true;
        reject(err);
      }
    };
    const transport = (e) => fail(retryable(new CroniumError(method + ' ' + url + ': ' + (e && e.message ? e.message : e)),
      Boolean(e && e.code === 'ECONNREFUSED')));
    let req;
    try {
      req = mod.request(u, { method, headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', transport);
        res.on('aborted', () => transport(new Error('connection aborted')));
        res.on('end', () => {
          if (done) return;
          const raw = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode;
          if (status < 200 || status > 299) {
            const m = errorMessage(status, raw);
            const err = new CroniumError(m.message, status, m.error);
            fail(status >= 500 ? retryable(err) : err);
            return;
          }
          done = true;
          if (!raw.trim()) {
            resolve(null);
            return;
          }
          let reply;
          try {
            reply = JSON.parse(raw);
          } catch (e) {
            reject(new CroniumError('invalid reply from runtime API (HTTP ' + status + '): ' + e.message, status));
            return;
          }
          resolve(reply && typeof reply === 'object' && reply.data !== undefined ? reply.data : null);
        });
      });
    } catch (e) {
      fail(new CroniumError(method + ' ' + url + ': ' + e.message));
      return;
    }
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error('no reply within ' + timeoutMs + ' ms'));
    });
    req.on('error', transport);
    req.end(body === null ? undefined : body);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// call makes one runtime API call, with retries, and returns the reply's
// data. path is under /executions/{id}, or under the API's root for a tool
// action (opts.tool), which is retried only when the connection was refused
// (the request never left: any other failure may come after the action had
// its effect) and waits TOOL_TIMEOUT_MS.
async function call(method, path, payload, opts) {
  const tool = Boolean(opts && opts.tool);
  const rt = runtime();
  let body = null;
  if (payload !== undefined) {
    try {
      body = JSON.stringify(payload);
    } catch (e) {
      throw new CroniumError('value is not JSON-serializable: ' + e.message);
    }
  }
  const url = (tool ? rt.root : rt.base) + path;
  const timeoutMs = tool ? Math.max(module.exports.TIMEOUT_MS, module.exports.TOOL_TIMEOUT_MS) : module.exports.TIMEOUT_MS;
  const delays = Array.from(module.exports.RETRY_DELAYS_MS || []);
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(method, url, rt.token, body, timeoutMs);
    } catch (err) {
      if (!err.retry || attempt >= delays.length || (tool && !err.refused)) {
        const retried = err.retry && attempt > 0;
        delete err.retry;
        delete err.refused;
        if (retried && err.status === null) {
          err.message += ' (after ' + (attempt + 1) + ' attempts)';
        }
        throw err;
      }
      await sleep(delays[attempt]);
    }
  }
}

function keyPath(key) {
  if (typeof key !== 'string' || key === '') {
    throw new CroniumError('variable key must be a non-empty string, got ' + (typeof key === 'string' ? '""' : typeof key));
  }
  return '/variables/' + encodeSegment(key);
}

function json(value) {
  return value === undefined ? null : value;
}

/** The step input: any JSON value (null when there is none). */
async function input() {
  return call('GET', '/input');
}

/** Set the step output to a JSON-serializable value (the last call wins). */
async function output(value) {
  await call('POST', '/output', { data: json(value) });
}

/** A variable's value, or null when it is not set. */
async function getVariable(key) {
  const path = keyPath(key);
  let data;
  try {
    data = await call('GET', path);
  } catch (err) {
    if (err instanceof CroniumError && err.status === 404) return null;
    throw err;
  }
  if (data && typeof data === 'object' && data.value !== undefined) return data.value;
  return null;
}

/** Set a variable to a JSON-serializable value. */
async function setVariable(key, value) {
  await call('PUT', keyPath(key), { value: json(value) });
}

/**
 * Set the workflow condition. A string is read as true/false, 1/0, yes/no
 * or on/off (any case); any other value by its truthiness.
 */
async function setCondition(condition) {
  let b;
  if (typeof condition === 'string') {
    const s = condition.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) b = true;
    else if (['false', '0', 'no', 'off'].includes(s)) b = false;
    else {
      throw new CroniumError('condition ' + JSON.stringify(condition) + ' is not a boolean (use true/false, 1/0, yes/no or on/off)');
    }
  } else {
    b = Boolean(condition);
  }
  await call('POST', '/condition', { condition: b });
}

/** The execution context: executionId, jobId, eventId, eventName, eventType, userId, startTime, trigger, metadata. */
async function event() {
  return call('GET', '/context');
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Run a tool action in the agent and resolve to its result,
 * {success, data, error}, as the agent answers it: a failed action (success
 * false) resolves, it does not reject, since it may have had its effect.
 * tool is webhook, slack, discord, teams or email; action the tool's action
 * ('send-message'; 'send' for webhook; null or '' for the tool's default);
 * params an object of the action's parameters. Rejects with a CroniumError
 * when the runtime API refuses the request (400: unknown tool or action, a
 * missing parameter or credential; nothing was sent), when tool actions are
 * off on the agent (501), or when the call fails. Never sent twice.
 */
async function executeToolAction(tool, action, params) {
  if (typeof tool !== 'string' || !tool.trim()) {
    throw new CroniumError('tool must be a non-empty string, got ' + (typeof tool === 'string' ? '""' : typeof tool));
  }
  if (action !== undefined && action !== null && typeof action !== 'string') {
    throw new CroniumError('action must be a string, got ' + typeof action);
  }
  if (params === undefined || params === null) params = {};
  if (!isPlainObject(params)) {
    throw new CroniumError('params must be an object, got ' + (Array.isArray(params) ? 'array' : typeof params));
  }
  const request = { tool };
  if (action) request.action = action;
  request.params = params;
  const result = await call('POST', '/tool-actions/execute', request, { tool: true });
  if (!isPlainObject(result)) {
    throw new CroniumError('invalid reply from runtime API: no tool action result', 200);
  }
  return result;
}

// fields given (not undefined or null) first, then the options
function withFields(fields, options) {
  if (options !== undefined && options !== null && !isPlainObject(options)) {
    throw new CroniumError('options must be an object, got ' + (Array.isArray(options) ? 'array' : typeof options));
  }
  const out = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) out[k] = v;
  return Object.assign(out, options || {});
}

/**
 * Send an email with the agent's SMTP credential: sendEmail(to, subject,
 * body, options) or sendEmail({ to, subject, body, ...options }). to is an
 * address, a comma-separated string or an array; options: cc, bcc, html (a
 * string, or true to send body as HTML), from, replyTo.
 */
async function sendEmail(to, subject, body, options) {
  if (isPlainObject(to)) return executeToolAction('email', 'send-message', withFields({}, to));
  return executeToolAction('email', 'send-message', withFields({ to, subject, body }, options));
}

/**
 * Send a Slack message: sendSlackMessage(text, channel, options) or
 * sendSlackMessage({ text, channel, ...options }); options: username,
 * icon_emoji, icon_url, thread_ts, blocks, attachments, webhookUrl, token.
 */
async function sendSlackMessage(text, channel, options) {
  if (isPlainObject(text)) return executeToolAction('slack', 'send-message', withFields({}, text));
  return executeToolAction('slack', 'send-message', withFields({ text, channel }, options));
}

/**
 * Send a Discord message: sendDiscordMessage(content, options) or
 * sendDiscordMessage({ content, ...options }); options: username,
 * avatar_url, tts, embeds, allowed_mentions, webhookUrl.
 */
async function sendDiscordMessage(content, options) {
  if (isPlainObject(content)) return executeToolAction('discord', 'send-message', withFields({}, content));
  return executeToolAction('discord', 'send-message', withFields({ content }, options));
}

/**
 * Send a Microsoft Teams message (an Adaptive Card): sendTeamsMessage(text,
 * title, options) or sendTeamsMessage({ text, title, ...options }); options:
 * card (a whole Adaptive Card), webhookUrl.
 */
async function sendTeamsMessage(text, title, options) {
  if (isPlainObject(text)) return executeToolAction('teams', 'send-message', withFields({}, text));
  return executeToolAction('teams', 'send-message', withFields({ text, title }, options));
}

module.exports = {
  CroniumError,
  input,
  output,
  getVariable,
  get_variable: getVariable,
  setVariable,
  set_variable: setVariable,
  setCondition,
  set_condition: setCondition,
  event,
  context: event,
  executeToolAction,
  execute_tool_action: executeToolAction,
  sendEmail,
  send_email: sendEmail,
  sendSlackMessage,
  send_slack_message: sendSlackMessage,
  sendDiscordMessage,
  send_discord_message: sendDiscordMessage,
  sendTeamsMessage,
  send_teams_message: sendTeamsMessage,
  /** Waits before each retry (milliseconds), one retry per entry; tests may replace it. */
  RETRY_DELAYS_MS: [200, 400, 800],
  /** Timeout of one attempt, in milliseconds. */
  TIMEOUT_MS: 30000,
  /** Timeout of a tool action, in milliseconds: longer than the agent's 60 s bound on an action. */
  TOOL_TIMEOUT_MS: 90000,
  NOT_AVAILABLE,
};

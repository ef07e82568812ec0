// Integration-test harness for rebuyd: real binary, real HTTP, real PostgreSQL.
//
// Environment (set by tests/run.sh):
//   REBUY_BIN          path to rebuyd (default: <repo>/build/src/rebuyd)
//   PGHOST/PGPORT/PGUSER  shared throwaway cluster (superuser). When PGHOST is
//                      unset, a private cluster is started for this process.
//   PG_BINDIR          default /usr/lib/postgresql/15/bin
//   REBUY_TEST_RUNAS   user to run initdb/postgres as (e.g. "postgres" when root)
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import pg from 'pg';
import { validateResponse } from './contract.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
export const REBUY_BIN = process.env.REBUY_BIN || path.join(REPO, 'build/src/rebuyd');
export const PG_BINDIR = process.env.PG_BINDIR || '/usr/lib/postgresql/15/bin';
// initdb/postgres refuse to run as root
const RUNAS = process.env.REBUY_TEST_RUNAS || (process.getuid?.() === 0 ? 'postgres' : '');

export const SANITIZER_MARKERS = ['AddressSanitizer', 'LeakSanitizer', 'runtime error:'];
export const KEY_RE = /^rb_[a-z2-7]{8}_[A-Za-z0-9]{43}$/;
export const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;
export const REQUEST_ID_RE = /^[0-9a-f]{16}$/;
// extension members: quota, used, remaining (quota_exceeded); principal, bonus_available,
// available (insufficient_funds) — the contract allows each on its own code only
const PROBLEM_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'code', 'pointer', 'request_id',
  'quota', 'used', 'remaining', 'principal', 'bonus_available', 'available', 'uses_left', 'min_spend']);

// Processes we started; killed hard if this test process exits abruptly.
const children = new Set();
const exitCleanups = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const fn of exitCleanups) {
    try { fn(); } catch { /* best effort */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export function uniqueName(prefix = 'rebuy_t') {
  return `${prefix}_${process.pid}_${randomBytes(5).toString('hex')}`;
}

export function assertNoSanitizerReport(text, what = 'process') {
  for (const m of SANITIZER_MARKERS) {
    const i = text.indexOf(m);
    assert.equal(i, -1, `${what}: stderr contains sanitizer report "${m}":\n${text.slice(Math.max(0, i - 2000), i + 4000)}`);
  }
}

function quoteConninfo(v) {
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function conninfo({ host, port, user }, dbname) {
  const parts = [];
  if (host) parts.push(`host=${quoteConninfo(host)}`);
  if (port) parts.push(`port=${quoteConninfo(port)}`);
  if (user) parts.push(`user=${quoteConninfo(user)}`);
  parts.push(`dbname=${quoteConninfo(dbname)}`);
  return parts.join(' ');
}

// ---------------------------------------------------------------------------
// Processes

function spawnChild(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs a command to completion; resolves {code, signal, stdout, stderr}. */
export function run(cmd, args, { env, timeoutMs = 60000, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawnChild(cmd, args, {
      env: { ...process.env, ...(env || {}) },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    if (input !== undefined) child.stdin.end(input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    // 'exit', not 'close': pg_ctl leaves a daemon that may hold inherited fds.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // give the pipes a moment to drain
      setTimeout(() => resolve({ code, signal, stdout, stderr }), 20);
    });
  });
}

/** Runs the rebuyd CLI; asserts no sanitizer report. */
export async function rebuyCli(args, opts = {}) {
  const r = await run(REBUY_BIN, args, opts);
  assertNoSanitizerReport(r.stderr, `rebuyd ${args.join(' ')}`);
  return r;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------
// PostgreSQL clusters

function asRunas(cmd, args) {
  return RUNAS ? ['runuser', ['-u', RUNAS, '--', cmd, ...args]] : [cmd, args];
}

/**
 * A private PostgreSQL cluster (unix socket only) in a temp dir.
 * Returns {host, port, user, url(dbname), start(), stop(), destroy(), running}.
 */
export async function startCluster({ port = 5432 } = {}) {
  const dir = fs.mkdtempSync(path.join('/tmp', 'rebuy-pg-'));
  const data = path.join(dir, 'data');
  const sock = path.join(dir, 'sock');
  const logfile = path.join(dir, 'postgres.log');
  fs.mkdirSync(sock);
  if (RUNAS) {
    const r = spawnSync('chown', ['-R', `${RUNAS}:`, dir]);
    if (r.status !== 0) throw new Error(`chown ${dir} failed: ${r.stderr}`);
  }
  const pgRun = async (bin, args, what) => {
    const [c, a] = asRunas(path.join(PG_BINDIR, bin), args);
    const r = await run(c, a, { timeoutMs: 60000 });
    if (r.code !== 0) {
      let log = '';
      try { log = fs.readFileSync(logfile, 'utf8'); } catch { /* none */ }
      throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}\n${log}`);
    }
    return r;
  };
  await pgRun('initdb', ['-D', data, '-A', 'trust', '--nosync', '-U', 'postgres', '-E', 'UTF8', '--locale=C'], 'initdb');

  const cluster = {
    dir,
    host: sock,
    port,
    user: 'postgres',
    running: false,
    url: (dbname = 'postgres') => conninfo(cluster, dbname),
    async start() {
      await pgRun('pg_ctl', ['-w', '-t', '60', '-D', data, '-l', logfile, '-o',
        `-k ${sock} -p ${port} -c listen_addresses='' -c fsync=off`,
        'start'], 'pg_ctl start');
      cluster.running = true;
    },
    async stop(mode = 'fast') {
      await pgRun('pg_ctl', ['-w', '-t', '60', '-D', data, '-m', mode, 'stop'], 'pg_ctl stop');
      cluster.running = false;
    },
    async destroy() {
      exitCleanups.delete(syncCleanup);
      if (cluster.running) {
        try { await cluster.stop('immediate'); } catch { /* ignore */ }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
    log: () => { try { return fs.readFileSync(logfile, 'utf8'); } catch { return ''; } },
  };
  const syncCleanup = () => {
    const [c, a] = asRunas(path.join(PG_BINDIR, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
    spawnSync(c, a, { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  exitCleanups.add(syncCleanup);
  await cluster.start();
  return cluster;
}

let defaultClusterPromise = null;
/** The shared cluster from PG* env, or (when unset) a private one for this process. */
export function defaultCluster() {
  if (process.env.PGHOST) {
    return Promise.resolve({
      host: process.env.PGHOST,
      port: Number(process.env.PGPORT || 5432),
      user: process.env.PGUSER || 'postgres',
    });
  }
  if (!defaultClusterPromise) defaultClusterPromise = startCluster();
  return defaultClusterPromise;
}

export async function adminQuery(cluster, sql, params) {
  const c = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, database: 'postgres' });
  await c.connect();
  try {
    return await c.query(sql, params);
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------
// The service

/**
 * Starts rebuyd on a fresh database.
 * opts: cluster ({host,port,user}), args (extra serve args), env, workers (4),
 *       bodyLimit, migrate (true), platformKey (true), startTimeoutMs.
 */
export async function startService(opts = {}) {
  const cluster = opts.cluster || await defaultCluster();
  const dbName = uniqueName('rebuy_t');
  await adminQuery(cluster, `CREATE DATABASE "${dbName}"`);
  const databaseUrl = conninfo(cluster, dbName);
  const baseEnv = { ...(opts.env || {}) };

  let platformKey = null;
  try {
    if (opts.migrate !== false) {
      const m = await rebuyCli(['migrate', '--database-url', databaseUrl], { env: baseEnv });
      assert.equal(m.code, 0, `rebuyd migrate failed: ${m.stdout}\n${m.stderr}`);
    }
    if (opts.migrate !== false && opts.platformKey !== false) {
      const k = await rebuyCli(['keys', 'create-platform', '--database-url', databaseUrl, '--name', 'test platform'], { env: baseEnv });
      assert.equal(k.code, 0, `rebuyd keys create-platform failed: ${k.stdout}\n${k.stderr}`);
      const lines = k.stdout.split('\n').filter((l) => l.length);
      assert.equal(lines.length, 1, `keys create-platform must print the key alone on one line, got: ${JSON.stringify(k.stdout)}`);
      platformKey = lines[0].trim();
      assert.match(platformKey, KEY_RE, 'platform key format');
    }
  } catch (e) {
    await adminQuery(cluster, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    throw e;
  }

  const svc = {
    cluster, dbName, databaseUrl, platformKey,
    url: null, port: null, proc: null, db: null,
    stopped: false,
  };
  let stderr = '';
  let stdout = '';
  let exitInfo = null;
  let exitPromise = null;

  const launch = async () => {
    const port = await freePort();
    let args;
    const env = { ...process.env, ...baseEnv };
    if (opts.configViaEnv) {
      // exercise the REBUY_* environment fallbacks instead of flags
      args = ['serve'];
      env.REBUY_LISTEN = `127.0.0.1:${port}`;
      env.REBUY_DATABASE_URL = databaseUrl;
      env.REBUY_WORKERS = String(opts.workers ?? 4);
    } else {
      args = ['serve', '--listen', `127.0.0.1:${port}`, '--database-url', databaseUrl,
        '--workers', String(opts.workers ?? 4)];
    }
    if (opts.bodyLimit !== undefined) args.push('--body-limit', String(opts.bodyLimit));
    args.push(...(opts.args || []));
    stderr = '';
    stdout = '';
    exitInfo = null;
    const proc = spawnChild(REBUY_BIN, args, { env });
    proc.on('error', (e) => { stderr += `\n[harness] spawn error: ${e.message}\n`; });
    proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    exitPromise = new Promise((resolve) => {
      // 'close' fires after the process exited and its stdio pipes drained.
      proc.on('close', (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
      proc.on('error', (e) => {
        if (proc.pid === undefined) { exitInfo = { code: -1, signal: null, error: e.message }; resolve(exitInfo); }
      });
    });
    svc.proc = proc;
    svc.port = port;
    svc.url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30000);
    for (;;) {
      if (exitInfo) return false;
      try {
        const r = await fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        if (r.status === 200) return true;
      } catch { /* not yet */ }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exitPromise;
        throw new Error(`rebuyd did not become healthy in time; stderr:\n${stderr}`);
      }
      await sleep(50);
    }
  };

  let ok = false;
  for (let attempt = 0; attempt < 3 && !ok; attempt++) {
    ok = await launch();
    if (!ok && !/in use|bind|EADDRINUSE/i.test(stderr)) break; // not a port race
  }
  if (!ok) {
    await adminQuery(cluster, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    throw new Error(`rebuyd serve exited during startup (${JSON.stringify(exitInfo)}); stderr:\n${stderr}`);
  }

  svc.db = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, database: dbName });
  svc.db.on('error', () => { /* cluster may be stopped on purpose */ });
  await svc.db.connect();

  svc.logs = () => stderr;
  svc.stdout = () => stdout;
  svc.logEntries = () => parseLogLines(stderr);
  svc.exited = () => exitInfo;
  svc.waitExit = (timeoutMs = 45000) => {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`rebuyd did not exit within ${timeoutMs} ms; stderr tail:\n${stderr.slice(-3000)}`)), timeoutMs);
    });
    return Promise.race([exitPromise, timeout]).finally(() => clearTimeout(timer));
  };
  svc.signal = (sig) => svc.proc.kill(sig);
  svc.cli = (args, o = {}) => rebuyCli([...args, '--database-url', databaseUrl], { env: baseEnv, ...o });

  /**
   * SIGTERM (or given signal), wait for exit, assert exit 0 and no sanitizer
   * report, drop the database. Safe to call twice.
   */
  svc.stop = async ({ signal = 'SIGTERM', timeoutMs = 45000, expectCode = 0 } = {}) => {
    if (svc.stopped) return exitInfo;
    svc.stopped = true;
    let err = null;
    try {
      if (!exitInfo && signal) svc.proc.kill(signal);
      let info;
      try {
        info = await svc.waitExit(timeoutMs);
      } catch (e) {
        svc.proc.kill('SIGKILL');
        await exitPromise;
        throw e;
      }
      assertNoSanitizerReport(stderr, 'rebuyd serve');
      if (expectCode !== null) {
        assert.deepEqual(info, { code: expectCode, signal: null },
          `rebuyd serve exit status after ${signal}; stderr tail:\n${stderr.slice(-3000)}`);
      }
    } catch (e) {
      err = e;
    } finally {
      try {
        let t;
        await Promise.race([svc.db.end(), new Promise((r) => { t = setTimeout(r, 3000); })]);
        clearTimeout(t);
      } catch { /* ignore */ }
      await adminQuery(cluster, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    }
    if (err) throw err;
    return exitInfo;
  };
  return svc;
}

export function parseLogLines(text) {
  return text.split('\n').filter((l) => l.trim().length).map((l) => {
    try {
      const v = JSON.parse(l);
      return v && typeof v === 'object' && !Array.isArray(v) ? v : { __raw: l };
    } catch {
      return { __raw: l };
    }
  });
}

// ---------------------------------------------------------------------------
// HTTP client

export function headersToObject(h) {
  const o = {};
  for (const [k, v] of h) o[k.toLowerCase()] = v;
  return o;
}

/** Asserts the RFC 9457 problem shape required by api.md for every 4xx/5xx. */
export function assertProblemShape(res, where = '') {
  const ctx = `${where} ${res.status} ${res.text?.slice(0, 500)}`;
  assert.match(res.headers['content-type'] || '', /^application\/problem\+json\b/, `problem content-type ${ctx}`);
  const b = res.body;
  assert.ok(b && typeof b === 'object' && !Array.isArray(b), `problem body must be an object ${ctx}`);
  for (const k of Object.keys(b)) assert.ok(PROBLEM_MEMBERS.has(k), `unexpected problem member "${k}" ${ctx}`);
  for (const k of ['type', 'title', 'status', 'detail', 'code', 'request_id']) {
    assert.ok(k in b, `problem member "${k}" missing ${ctx}`);
  }
  assert.equal(b.status, res.status, `problem.status equals HTTP status ${ctx}`);
  assert.equal(typeof b.code, 'string', ctx);
  assert.equal(typeof b.title, 'string', ctx);
  assert.equal(typeof b.detail, 'string', ctx);
  assert.equal(b.type, `https://rebuy.dev/problems/${b.code}`, `problem.type ${ctx}`);
  if ('pointer' in b) assert.equal(typeof b.pointer, 'string', ctx);
  assert.match(b.request_id, REQUEST_ID_RE, ctx);
  // a replayed (idempotent) response repeats the original body, request_id included
  if (res.headers['idempotent-replayed'] !== 'true') {
    assert.equal(b.request_id, res.headers['x-request-id'], `problem.request_id equals X-Request-Id ${ctx}`);
  }
  if (res.status === 401) assert.match(res.headers['www-authenticate'] || '', /^Bearer\b/, `401 needs WWW-Authenticate: Bearer ${ctx}`);
  if (res.status === 405) assert.ok(res.headers.allow, `405 needs Allow ${ctx}`);
  if (res.status === 503) assert.equal(res.headers['retry-after'], '1', `503 needs Retry-After: 1 ${ctx}`);
}

/** Asserts a problem response with status/code and (optionally) pointer. pointer may be a RegExp. */
export function assertProblem(res, status, code, pointer) {
  const ctx = `${res.method} ${res.path} -> ${res.status} ${res.text?.slice(0, 500)}`;
  assert.equal(res.status, status, `status: ${ctx}`);
  assertProblemShape(res, ctx);
  assert.equal(res.body.code, code, `code: ${ctx}`);
  if (pointer instanceof RegExp) assert.match(res.body.pointer ?? '<none>', pointer, `pointer: ${ctx}`);
  else if (pointer !== undefined) assert.equal(res.body.pointer, pointer, `pointer: ${ctx}`);
}

/**
 * HTTP client bound to a service. Every response is checked against the
 * OpenAPI contract (validateResponse) unless validate:false, and against the
 * api.md invariants (X-Request-Id, problem shape).
 */
export function api(svc) {
  async function req(method, p, opts = {}) {
    const headers = {};
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    let body;
    if (opts.body !== undefined) {
      body = Buffer.from(JSON.stringify(opts.body), 'utf8');
      headers['content-type'] = 'application/json';
    } else if (opts.rawBody !== undefined) {
      body = Buffer.isBuffer(opts.rawBody) ? opts.rawBody : Buffer.from(opts.rawBody, 'utf8');
      headers['content-type'] = 'application/json';
    }
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    for (const [k, v] of Object.entries(opts.headers || {})) {
      if (v === null) delete headers[k.toLowerCase()];
      else headers[k.toLowerCase()] = v;
    }
    const t0 = performance.now();
    let r;
    try {
      r = await fetch(svc.url + p, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(opts.timeoutMs ?? 20000),
      });
    } catch (e) {
      // say why: a crashed service (sanitizer report) is the usual reason
      const ex = svc.exited?.();
      const logs = svc.logs?.() || '';
      const san = SANITIZER_MARKERS.map((m) => logs.indexOf(m)).filter((i) => i >= 0);
      const detail = ex
        ? `rebuyd has exited (${JSON.stringify(ex)}); ${san.length ? `sanitizer report:\n${logs.slice(Math.max(0, Math.min(...san) - 300), Math.min(...san) + 3000)}` : `stderr tail:\n${logs.slice(-1500)}`}`
        : 'rebuyd is still running';
      throw new Error(`${method} ${p}: request failed (${e.cause?.code || e.name}: ${e.cause?.message || e.message}); ${detail}`);
    }
    const buf = Buffer.from(await r.arrayBuffer());
    const ms = performance.now() - t0;
    const text = buf.toString('utf8');
    const res = { method, path: p, status: r.status, headers: headersToObject(r.headers), text, ms, body: null };
    const ct = res.headers['content-type'] || '';
    if (/json/.test(ct) && text.length) {
      try { res.body = JSON.parse(text); } catch (e) {
        assert.fail(`${method} ${p}: response declared ${ct} but is not JSON: ${text.slice(0, 300)}`);
      }
    }
    assert.match(res.headers['x-request-id'] || '', REQUEST_ID_RE, `${method} ${p}: X-Request-Id header on every response`);
    if (res.status >= 400) assertProblemShape(res, `${method} ${p}`);
    if (opts.validate !== false) {
      try {
        validateResponse({ method, path: p, status: res.status, headers: res.headers, body: text });
      } catch (e) {
        e.message = `contract violation for ${method} ${p} -> ${res.status}: ${e.message}\nbody: ${text.slice(0, 1000)}`;
        throw e;
      }
    }
    return res;
  }
  const c = {
    req,
    get: (p, o) => req('GET', p, o),
    put: (p, body, o = {}) => req('PUT', p, { ...o, body }),
    post: (p, body, o = {}) => req('POST', p, { ...o, body }),
    patch: (p, body, o = {}) => req('PATCH', p, { ...o, body }),
    del: (p, o) => req('DELETE', p, o),
  };
  return c;
}

/**
 * Raw HTTP/1.1 over a socket, for requests fetch cannot express. Sends
 * `data`, reads one response (Content-Length or until close).
 * Resolves {status, headers, text, body, raw} or {closed:true, raw} when the
 * server closed without a response.
 */
export function rawHttp(svc, data, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(svc.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (v, err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(v);
    };
    const timer = setTimeout(() => finish(null, new Error(`raw request timed out; got: ${buf.toString('latin1').slice(0, 500)}`)), timeoutMs);
    const tryParse = (final) => {
      const r = parseHttpResponse(buf, final);
      if (r) return finish(r);
      if (final) finish({ closed: true, raw: buf.toString('latin1') });
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); tryParse(false); });
    sock.on('end', () => tryParse(true));
    sock.on('close', () => tryParse(true));
    sock.on('error', (e) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') tryParse(true);
      else finish(null, e);
    });
    sock.on('connect', () => {
      sock.write(data, (e) => { if (e) tryParse(true); });
    });
  });
}

export function parseHttpResponse(buf, final = false) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) return { status: 0, headers: {}, text: '', raw: buf.toString('latin1') };
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : null;
  let bodyBuf = buf.subarray(end + 4);
  if (len === null) {
    // no Content-Length: body runs to close (or is chunked)
    if (!final) return null;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) bodyBuf = dechunk(bodyBuf);
  } else if (bodyBuf.length < len) {
    return null;
  } else {
    bodyBuf = bodyBuf.subarray(0, len);
  }
  const text = bodyBuf.toString('utf8');
  let body = null;
  if (/json/.test(headers['content-type'] || '') && text) {
    try { body = JSON.parse(text); } catch { /* leave null */ }
  }
  return { status: Number(m[1]), headers, text, body, raw: buf.toString('latin1') };
}

function dechunk(b) {
  const out = [];
  let i = 0;
  for (;;) {
    const nl = b.indexOf('\r\n', i);
    if (nl < 0) break;
    const size = parseInt(b.subarray(i, nl).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(b.subarray(nl + 2, nl + 2 + size));
    i = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/**
 * Opens a request that is sent in two parts: everything except the last
 * `holdBack` body bytes now, the rest when finish() is called. Resolves once
 * the first part has been written. finish() resolves with the parsed response.
 */
export function slowRequest(svc, { method = 'PUT', path: p, key, body, holdBack = 5, timeoutMs = 30000 }) {
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  const head = `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1:${svc.port}\r\n` +
    (key ? `Authorization: Bearer ${key}\r\n` : '') +
    `Content-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
  const first = Buffer.concat([Buffer.from(head, 'latin1'), payload.subarray(0, payload.length - holdBack)]);
  const rest = payload.subarray(payload.length - holdBack);
  return new Promise((resolveOpen, rejectOpen) => {
    const sock = net.connect(svc.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let resolveResp;
    let rejectResp;
    const resp = new Promise((a, b) => { resolveResp = a; rejectResp = b; });
    resp.catch(() => {});
    const done = (final) => {
      const r = parseHttpResponse(buf, final);
      if (r) { resolveResp(r); sock.destroy(); } else if (final) resolveResp({ closed: true, raw: buf.toString('latin1') });
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); done(false); });
    sock.on('end', () => done(true));
    sock.on('close', () => done(true));
    sock.on('error', (e) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') done(true); else { rejectResp(e); rejectOpen(e); } });
    sock.on('connect', () => {
      sock.write(first, () => resolveOpen({
        earlyResponse: () => parseHttpResponse(buf),
        finish: () => {
          const timer = setTimeout(() => { rejectResp(new Error('slow request: no response in time')); sock.destroy(); }, timeoutMs);
          sock.write(rest, () => {});
          return resp.finally(() => clearTimeout(timer));
        },
        abort: () => sock.destroy(),
      }));
    });
  });
}

// ---------------------------------------------------------------------------
// Domain helpers

let seq = 0;
export function uniq(prefix = 'x') {
  seq += 1;
  return `${prefix}-${process.pid}-${seq}-${randomBytes(3).toString('hex')}`;
}

/** POST /v1/shops with the platform key; returns {shop, shopId, adminKey, adminKeyId, res}. */
export async function createShop(svc, { name, currency = 'CNY', timezone = 'Asia/Shanghai', key, idempotencyKey } = {}) {
  const res = await api(svc).post('/v1/shops',
    { name: name ?? uniq('Shop'), currency, timezone },
    { key: key ?? svc.platformKey, idempotencyKey });
  assert.equal(res.status, 201, `create shop: ${res.text}`);
  assert.equal(res.headers.location, `/v1/shops/${res.body.shop.id}`);
  assert.match(res.body.admin_key.key, KEY_RE);
  return { shop: res.body.shop, shopId: res.body.shop.id, adminKey: res.body.admin_key.key, adminKeyId: res.body.admin_key.id, res };
}

/** POST /v1/api-keys with an admin key; returns {key, id, res}. */
export async function createKey(svc, adminKey, scope, name) {
  const res = await api(svc).post('/v1/api-keys', { name: name ?? `${scope} key`, scope }, { key: adminKey });
  assert.equal(res.status, 201, `create ${scope} key: ${res.text}`);
  assert.equal(res.body.scope, scope);
  assert.match(res.body.key, KEY_RE);
  return { key: res.body.key, id: res.body.id, res };
}

/** A shop with one key of each shop scope: {shopId, shop, keys:{admin,storefront,readonly}, keyIds:{...}}. */
export async function setupShop(svc, opts = {}) {
  const s = await createShop(svc, opts);
  const sf = await createKey(svc, s.adminKey, 'storefront');
  const ro = await createKey(svc, s.adminKey, 'readonly');
  return {
    shop: s.shop,
    shopId: s.shopId,
    keys: { admin: s.adminKey, storefront: sf.key, readonly: ro.key },
    keyIds: { admin: s.adminKeyId, storefront: sf.id, readonly: ro.id },
  };
}

// ---------------------------------------------------------------------------
// Database inspection

export async function userTables(db) {
  const r = await db.query(`SELECT table_schema, table_name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1, 2`);
  return r.rows.map((x) => ({ schema: x.table_schema, name: x.table_name }));
}

const qi = (s) => `"${s.replace(/"/g, '""')}"`;

/** Every row of every user table as text: [{table, text}]. */
export async function allRowsAsText(db, { exclude = () => false } = {}) {
  const out = [];
  for (const t of await userTables(db)) {
    if (exclude(t.name)) continue;
    const r = await db.query(`SELECT t::text AS txt FROM ${qi(t.schema)}.${qi(t.name)} t`);
    for (const row of r.rows) out.push({ table: `${t.schema}.${t.name}`, text: row.txt });
  }
  return out;
}

/** Rows (any user table) whose text form contains needle. */
export async function findInDb(db, needle, opts) {
  return (await allRowsAsText(db, opts)).filter((r) => r.text.includes(needle));
}

/**
 * Snapshot of all user tables except idempotency bookkeeping:
 * {table: [sorted row JSON texts]}. Columns that legitimately change on a
 * read (last_used_at of keys) are left out.
 */
export async function snapshotDb(db, { exclude = (n) => /idempot/i.test(n), volatile = /^last_used/ } = {}) {
  const snap = {};
  for (const t of await userTables(db)) {
    if (exclude(t.name)) continue;
    const r = await db.query(`SELECT row_to_json(t)::text AS txt FROM ${qi(t.schema)}.${qi(t.name)} t`);
    snap[`${t.schema}.${t.name}`] = r.rows.map((x) => {
      const o = JSON.parse(x.txt);
      for (const k of Object.keys(o)) if (volatile.test(k)) delete o[k];
      return JSON.stringify(o);
    }).sort();
  }
  return snap;
}

/** First user table having all the given columns (e.g. shops: currency+timezone). */
export async function tableWithColumns(db, cols) {
  const r = await db.query(`SELECT table_schema, table_name FROM information_schema.columns
    WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND column_name = ANY($1)
    GROUP BY 1, 2 HAVING count(DISTINCT column_name) = $2 ORDER BY 2`, [cols, cols.length]);
  assert.ok(r.rows.length >= 1, `no table with columns ${cols.join(', ')}`);
  return `${qi(r.rows[0].table_schema)}.${qi(r.rows[0].table_name)}`;
}

export async function countRows(db, table) {
  const r = await db.query(`SELECT count(*)::int AS n FROM ${table}`);
  return r.rows[0].n;
}

/** Name of the table holding rows that mention the given id (e.g. customers). */
export async function tablesMentioning(db, needle) {
  return [...new Set((await findInDb(db, needle)).map((r) => r.table))];
}

// ---------------------------------------------------------------------------
// Misc

/** RFC 3339 timestamp → BigInt microseconds since epoch (exact). */
export function tsMicros(s) {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  assert.ok(m, `not an RFC 3339 timestamp: ${s}`);
  const secs = Date.parse(`${m[1]}${m[3]}`);
  assert.ok(Number.isFinite(secs), `bad timestamp ${s}`);
  const frac = (m[2] || '').padEnd(6, '0');
  return BigInt(secs) * 1000n + BigInt(frac);
}

export function assertServerTs(s, what = 'timestamp') {
  assert.equal(typeof s, 'string', `${what} must be a string, got ${JSON.stringify(s)}`);
  assert.match(s, TS_RE, `${what} must be UTC RFC 3339 (Z): ${s}`);
  return tsMicros(s);
}

/** Parses Prometheus text exposition: {types: Map, samples: [{name, labels, value}]}. */
export function parseMetrics(text) {
  const types = new Map();
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    assert.ok(m, `unparseable metrics line: ${line}`);
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;
      let lm;
      let consumed = 0;
      while ((lm = re.exec(m[3]))) {
        labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        consumed = re.lastIndex;
      }
      assert.equal(consumed, m[3].length, `bad label set in metrics line: ${line}`);
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    assert.ok(!Number.isNaN(v) || m[4] === 'NaN', `bad sample value: ${line}`);
    samples.push({ name: m[1], labels, value: v });
  }
  return { types, samples };
}

/** Sum of samples named `name` whose labels include all of `match`. */
export function metricSum(parsed, name, match = {}) {
  let s = 0;
  for (const x of parsed.samples) {
    if (x.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

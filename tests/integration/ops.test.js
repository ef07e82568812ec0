// Operations: health, readiness, metrics, request ids, access logs,
// graceful shutdown, CLI.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startService, api, setupShop, assertProblem, parseMetrics, metricSum, slowRequest, parseHttpResponse, rawHttp, freePort,
  rebuyCli, waitFor, sleep, uniq, REPO, REQUEST_ID_RE, KEY_RE, adminQuery, defaultCluster, conninfo,
  uniqueName,
} from '../lib/harness.js';

describe('health, readiness, metrics, request ids, logs', () => {
  let svc;
  let c;
  let S;
  before(async () => {
    svc = await startService();
    c = api(svc);
    S = await setupShop(svc);
    assert.equal((await c.put('/v1/customers/ops-1', { name: 'Ops' }, { key: S.keys.admin })).status, 201);
  });
  after(async () => { await svc?.stop(); });

  test('GET /healthz → 200 {"status":"ok"}', async () => {
    const r = await c.get('/healthz');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(r.body, { status: 'ok' });
  });

  test('GET /readyz → 200 {"status":"ready","schema_version":N}', async () => {
    const r = await c.get('/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body).sort(), ['schema_version', 'status']);
    assert.equal(r.body.status, 'ready');
    assert.ok(Number.isInteger(r.body.schema_version) && r.body.schema_version >= 1, JSON.stringify(r.body));
    const dir = path.join(REPO, 'migrations');
    const versions = fs.existsSync(dir)
      ? fs.readdirSync(dir).map((f) => /^(\d+)[_-].*\.sql$/.exec(f)).filter(Boolean).map((m) => Number(m[1]))
      : [];
    if (versions.length) assert.equal(r.body.schema_version, Math.max(...versions), 'schema_version = newest migration');
  });

  test('every response carries a distinct X-Request-Id', async () => {
    const ids = new Set();
    const reqs = [];
    for (let i = 0; i < 20; i++) {
      reqs.push(c.get('/healthz'), c.get('/v1/customers/ops-1', { key: S.keys.admin }),
        c.get('/v1/customers/nobody', { key: S.keys.admin }), c.get('/v1/customers', {}),
        c.get('/nope', { validate: false }));
    }
    for (const r of await Promise.all(reqs)) {
      assert.match(r.headers['x-request-id'], REQUEST_ID_RE);
      ids.add(r.headers['x-request-id']);
    }
    assert.equal(ids.size, reqs.length, 'request ids are unique');
  });

  function families(m) {
    const fam = { counters: [], gauges: [], histograms: [] };
    for (const [name, type] of m.types) {
      if (type === 'counter') fam.counters.push(name);
      if (type === 'gauge') fam.gauges.push(name);
      if (type === 'histogram') fam.histograms.push(name);
    }
    return fam;
  }
  const ROUTE_LABELS = ['route', 'path', 'handler'];
  const STATUS_LABELS = ['status', 'code', 'status_code'];
  const labelOf = (labels, names) => names.find((n) => n in labels);

  async function scrape() {
    const r = await c.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; ?version=0\.0\.4/);
    return parseMetrics(r.text);
  }

  test('GET /metrics: request counter by route+status, latency histogram, db error counter, pool gauge', async () => {
    const m0 = await scrape();
    const fam = families(m0);
    const reqCounter = fam.counters.find((n) => m0.samples.some((s) => s.name === n
      && labelOf(s.labels, ROUTE_LABELS) && labelOf(s.labels, STATUS_LABELS)));
    assert.ok(reqCounter, `no counter labelled by route and status among ${fam.counters.join(', ')}`);
    const sample = m0.samples.find((s) => s.name === reqCounter && labelOf(s.labels, ROUTE_LABELS));
    const RL = labelOf(sample.labels, ROUTE_LABELS);
    const SL = labelOf(sample.labels, STATUS_LABELS);

    const histo = fam.histograms.find((n) => m0.samples.some((s) => s.name === `${n}_bucket` && 'le' in s.labels));
    assert.ok(histo, `no latency histogram among ${[...m0.types].map((x) => x.join(':')).join(', ')}`);
    const dbErr = fam.counters.find((n) => /db|database|pg|sql/i.test(n) && /err|fail/i.test(n));
    assert.ok(dbErr, `no database error counter among ${fam.counters.join(', ')}`);
    assert.ok(m0.samples.some((s) => s.name === dbErr), 'db error counter has a sample (even if 0)');
    const pool = fam.gauges.find((n) => /pool|conn/i.test(n));
    assert.ok(pool, `no pool gauge among ${fam.gauges.join(', ')}`);
    assert.ok(m0.samples.some((s) => s.name === pool && Number.isFinite(s.value)));

    const ROUTE = '/v1/customers/{id}';
    const count = (m, status) => metricSum(m, reqCounter, { [RL]: ROUTE, [SL]: status });
    const histoHasRoute = m0.samples.some((s) => s.name === `${histo}_count` && RL in s.labels);
    const hcount = (m) => metricSum(m, `${histo}_count`, histoHasRoute ? { [RL]: ROUTE } : {});
    const before = { ok: count(m0, '200'), nf: count(m0, '404'), cr: count(m0, '201'), h: hcount(m0) };

    for (let i = 0; i < 7; i++) assert.equal((await c.get('/v1/customers/ops-1', { key: S.keys.admin })).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await c.get(`/v1/customers/none-${i}`, { key: S.keys.admin })).status, 404);
    for (let i = 0; i < 2; i++) assert.equal((await c.put(`/v1/customers/${uniq('m')}`, {}, { key: S.keys.admin })).status, 201);

    // counters may be updated just after the response is flushed: poll briefly
    let m1;
    await waitFor(async () => {
      m1 = await scrape();
      return count(m1, '200') - before.ok >= 7 && count(m1, '404') - before.nf >= 3
        && count(m1, '201') - before.cr >= 2 && hcount(m1) - before.h >= 12;
    }, { timeoutMs: 3000, what: 'metrics to reflect the requests' }).catch(() => {});
    assert.equal(count(m1, '200') - before.ok, 7, `${reqCounter}{${RL}="${ROUTE}",${SL}="200"} +7`);
    assert.equal(count(m1, '404') - before.nf, 3, '404s counted');
    assert.equal(count(m1, '201') - before.cr, 2, '201s counted');
    if (histoHasRoute) assert.equal(hcount(m1) - before.h, 12, 'histogram count +12 for the route');
    else assert.ok(hcount(m1) - before.h >= 12, 'histogram count grew');

    // histogram consistency: cumulative buckets, +Inf bucket == _count
    const series = new Map();
    for (const s of m1.samples.filter((x) => x.name === `${histo}_bucket`)) {
      const { le, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      if (!series.has(k)) series.set(k, []);
      series.get(k).push([le === '+Inf' ? Infinity : Number(le), s.value]);
    }
    assert.ok(series.size >= 1);
    for (const [k, buckets] of series) {
      buckets.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], `non-cumulative buckets ${k}`);
      assert.equal(buckets.at(-1)[0], Infinity, `+Inf bucket present ${k}`);
      const labels = Object.fromEntries(JSON.parse(k));
      assert.equal(buckets.at(-1)[1], metricSum(m1, `${histo}_count`, labels), `+Inf bucket equals _count ${k}`);
    }
  });

  test('one JSON access-log line per request with request_id, method, route, status, duration_ms', async () => {
    const sent = [
      [await c.get('/v1/customers/ops-1', { key: S.keys.admin }), 'GET', '/v1/customers/{id}', 200],
      [await c.get('/v1/customers/ops-missing', { key: S.keys.readonly }), 'GET', '/v1/customers/{id}', 404],
      [await c.put('/v1/customers/ops-2', { name: 'x' }, { key: S.keys.admin }), 'PUT', '/v1/customers/{id}', 201],
      [await c.get('/v1/customers?limit=5', { key: S.keys.admin }), 'GET', '/v1/customers', 200],
      [await c.get('/v1/customers?limit=0', { key: S.keys.admin }), 'GET', '/v1/customers', 400],
      [await c.get('/v1/api-keys', {}), 'GET', '/v1/api-keys', 401],
      [await c.get(`/v1/shops/${S.shopId}`, { key: S.keys.readonly }), 'GET', '/v1/shops/{id}', 200],
      [await c.req('DELETE', '/healthz', { validate: false }), 'DELETE', null, 405],
      [await c.get('/healthz'), 'GET', '/healthz', 200],
    ];
    await waitFor(() => sent.every(([r]) => svc.logs().includes(r.headers['x-request-id'])),
      { timeoutMs: 5000, what: 'access log lines' });
    const entries = svc.logEntries();
    const raw = entries.filter((e) => e.__raw);
    assert.deepEqual(raw, [], 'every stderr line is a JSON object');
    for (const [r, method, route, status] of sent) {
      const id = r.headers['x-request-id'];
      const lines = entries.filter((e) => e.msg === 'request' && e.request_id === id);
      assert.equal(lines.length, 1, `exactly one access-log line for ${method} ${r.path} (${id})`);
      const l = lines[0];
      assert.equal(l.level, 'info');
      assert.ok(l.ts !== undefined, 'ts present');
      assert.equal(l.method, method);
      if (route) assert.equal(l.route, route, 'route is the template, not the raw path');
      assert.equal(l.status, status);
      assert.equal(typeof l.duration_ms, 'number');
      assert.ok(l.duration_ms >= 0 && l.duration_ms < 10000);
    }
    assert.ok(entries.some((e) => e.msg === 'listening'), 'a "listening" line at startup');
  });
});

// ---------------------------------------------------------------------------
// Graceful shutdown

/** A keep-alive HTTP connection that can carry several sequential requests. */
function openConn(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const waiting = [];
    let closed = false;
    const pump = () => {
      while (waiting.length) {
        const r = parseHttpResponse(buf, closed);
        if (!r) break;
        const end = buf.indexOf('\r\n\r\n') + 4 + Number(r.headers['content-length'] || 0);
        buf = buf.subarray(end);
        waiting.shift().resolve(r);
      }
      if (closed) while (waiting.length) waiting.shift().reject(new Error(`connection closed before a response; got ${buf.toString('latin1').slice(0, 200)}`));
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); pump(); });
    sock.on('close', () => { closed = true; pump(); });
    sock.on('error', () => { closed = true; pump(); });
    sock.on('connect', () => resolve({
      request(data) {
        return new Promise((res, rej) => { waiting.push({ resolve: res, reject: rej }); sock.write(data); });
      },
      close: () => sock.destroy(),
    }));
    sock.once('error', reject);
  });
}

describe('graceful shutdown', () => {
  test('SIGTERM while slow uploads are in flight: they complete, new connections are not served, exit 0', async () => {
    const svc = await startService();
    try {
      const S = await setupShop(svc);
      const slow = [];
      for (let i = 0; i < 3; i++) {
        slow.push(await slowRequest(svc, { path: `/v1/customers/slow-${i}`, key: S.keys.admin, body: { name: `Slow ${i}`, attributes: { pad: 'p'.repeat(2000) } } }));
      }
      await sleep(300); // headers are in, bodies incomplete
      svc.signal('SIGTERM');
      await sleep(500);
      assert.equal(svc.exited(), null, 'must not exit while requests are in flight');
      for (const s of slow) assert.equal(s.earlyResponse(), null, 'no premature response');

      // a request on a NEW connection during the drain must not be served
      const fresh = rawHttp(svc, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 1500 })
        .then((r) => (r.closed ? 'closed' : r.status), (e) => `error: ${e.code || e.message}`);

      const results = await Promise.all(slow.map((s) => s.finish()));
      for (const r of results) {
        assert.ok(!r.closed, `in-flight request was cut off: ${r.raw}`);
        assert.equal(r.status, 201, r.raw);
        assert.match(r.headers['x-request-id'] || '', REQUEST_ID_RE);
      }
      const f = await fresh;
      assert.ok(typeof f === 'string' || f === 503, `a new connection during drain was served with ${f}`);
      const rows = await svc.db.query("SELECT 1 FROM pg_class WHERE relname = 'pg_class'");
      assert.equal(rows.rowCount, 1);
    } finally {
      await svc.stop({ signal: null });
    }
  });

  test('SIGTERM with many concurrent in-flight GETs: all complete with 2xx, exit 0', async () => {
    const svc = await startService();
    try {
      const S = await setupShop(svc);
      for (let i = 0; i < 100; i++) {
        assert.equal((await api(svc).put(`/v1/customers/g-${i}`, { name: `G ${i}`, attributes: { pad: 'x'.repeat(1500) } }, { key: S.keys.admin })).status, 201);
      }
      const N = 24;
      const conns = await Promise.all(Array.from({ length: N }, () => openConn(svc.port)));
      const get = (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${S.keys.admin}\r\n\r\n`;
      // warm up: each connection is accepted and has been served once
      for (const r of await Promise.all(conns.map((k) => k.request(get('/healthz'))))) assert.equal(r.status, 200);
      let doneBeforeSignal = 0;
      let signalled = false;
      const inflight = conns.map((k) => k.request(get('/v1/customers?limit=100')).then((r) => {
        if (!signalled) doneBeforeSignal += 1;
        return r;
      }));
      await sleep(10);
      signalled = true;
      svc.signal('SIGTERM');
      const settled = await Promise.allSettled(inflight);
      const bad = settled.filter((s) => s.status === 'rejected' || s.value.status < 200 || s.value.status > 299);
      assert.deepEqual(bad.map((s) => s.reason?.message ?? `${s.value.status} ${s.value.text.slice(0, 200)}`), [],
        `${bad.length}/${N} in-flight GETs did not complete with 2xx`);
      for (const s of settled) assert.equal(s.value.body.items.length, 100);
      // guard against a vacuous pass: most requests were still running at SIGTERM
      assert.ok(doneBeforeSignal < N / 2, `${doneBeforeSignal}/${N} finished before SIGTERM; the test did not exercise draining`);
      conns.forEach((k) => k.close());
    } finally {
      await svc.stop({ signal: null });
    }
  });

  test('a request that never finishes does not hold the process past REBUY_DRAIN_TIMEOUT', async () => {
    const svc = await startService({ env: { REBUY_DRAIN_TIMEOUT: '1' } });
    try {
      const S = await setupShop(svc);
      const s = await slowRequest(svc, { path: '/v1/customers/never', key: S.keys.admin, body: { name: 'never' } });
      await sleep(200);
      const t0 = Date.now();
      svc.signal('SIGTERM');
      await svc.waitExit(15000);
      const took = Date.now() - t0;
      assert.ok(took >= 800, `exited after ${took} ms, before the 1 s drain timeout`);
      assert.ok(took < 8000, `exit took ${took} ms with a 1 s drain timeout`);
      s.abort();
    } finally {
      await svc.stop({ signal: null });
    }
  });

  test('SIGINT → exit 0', async () => {
    const svc = await startService();
    assert.equal((await api(svc).get('/healthz')).status, 200);
    await svc.stop({ signal: 'SIGINT' });
  });
});

// ---------------------------------------------------------------------------
// CLI

describe('CLI', () => {
  test('rebuyd version / --help exit 0; unknown command fails', async () => {
    const v = await rebuyCli(['version']);
    assert.equal(v.code, 0, v.stderr);
    assert.ok(v.stdout.trim().length > 0, 'version prints something');
    const h = await rebuyCli(['--help']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout + h.stderr, /serve/);
    assert.match(h.stdout + h.stderr, /migrate/);
    const u = await rebuyCli(['frobnicate']);
    assert.notEqual(u.code, 0, 'unknown command must fail');
    const b = await rebuyCli(['serve', '--no-such-flag']);
    assert.notEqual(b.code, 0, 'unknown flag must fail');
  });

  test('serve refuses an unmigrated database (exit 1) and starts with --migrate', async () => {
    const cluster = await defaultCluster();
    const db = uniqueName('rebuy_unmig');
    await adminQuery(cluster, `CREATE DATABASE "${db}"`);
    try {
      const r = await rebuyCli(['serve', '--listen', `127.0.0.1:${await freePort()}`, '--database-url', conninfo(cluster, db)], { timeoutMs: 20000 });
      assert.equal(r.code, 1, `serve on an unmigrated database must exit 1; stderr: ${r.stderr}`);
    } finally {
      await adminQuery(cluster, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    }
    const svc = await startService({ migrate: false, args: ['--migrate'] });
    try {
      const c = api(svc);
      const r = await c.get('/readyz');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.status, 'ready');
      // the schema is usable: create a shop via CLI and use its key
      const out = await svc.cli(['shops', 'create', '--name', 'CLI Shop', '--currency', 'JPY', '--timezone', 'Asia/Tokyo']);
      assert.equal(out.code, 0, out.stderr);
      const lines = out.stdout.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, `one JSON line: ${out.stdout}`);
      const j = JSON.parse(lines[0]);
      assert.deepEqual(Object.keys(j).sort(), ['admin_key', 'shop_id']);
      assert.match(j.admin_key, KEY_RE);
      const g = await c.get(`/v1/shops/${j.shop_id}`, { key: j.admin_key });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual([g.body.name, g.body.currency, g.body.timezone], ['CLI Shop', 'JPY', 'Asia/Tokyo']);
      // and a platform key from the CLI works
      const k = await svc.cli(['keys', 'create-platform', '--name', 'ops']);
      assert.equal(k.code, 0, k.stderr);
      assert.match(k.stdout.trim(), KEY_RE);
      assert.equal((await c.get(`/v1/shops/${j.shop_id}`, { key: k.stdout.trim() })).status, 200);
    } finally {
      await svc.stop();
    }
  });

  test('migrate is idempotent', async () => {
    const svc = await startService();
    try {
      const m = await svc.cli(['migrate']);
      assert.equal(m.code, 0, m.stderr);
      assert.equal((await api(svc).get('/readyz')).status, 200);
    } finally {
      await svc.stop();
    }
  });

  test('configuration from REBUY_* environment variables (incl. REBUY_BODY_LIMIT)', async () => {
    const svc = await startService({ configViaEnv: true, env: { REBUY_BODY_LIMIT: '2048', REBUY_LOG_LEVEL: 'info' } });
    try {
      const c = api(svc);
      const S = await setupShop(svc);
      const r = await c.put('/v1/customers/env-big', { attributes: { x: 'y'.repeat(2100) } }, { key: S.keys.admin });
      assertProblem(r, 413, 'payload_too_large');
      const ok = await c.put('/v1/customers/env-small', { name: 'small' }, { key: S.keys.admin });
      assert.equal(ok.status, 201);
    } finally {
      await svc.stop();
    }
  });

  test('serve fails (non-zero exit) on a bad listen address', async () => {
    const svc = await startService();
    try {
      for (const addr of ['not-an-address', '127.0.0.1:99999', '127.0.0.1:']) {
        const r = await rebuyCli(['serve', '--listen', addr, '--database-url', svc.databaseUrl], { timeoutMs: 20000 });
        assert.notEqual(r.code, 0, `--listen ${addr} must fail`);
      }
      assert.equal((await api(svc).get('/healthz')).status, 200, 'the running instance is unaffected');
    } finally {
      await svc.stop();
    }
  });
});

// Every request example in openapi.yaml, sent to the real service, gets a 2xx
// (and, like every response in these suites, satisfies the contract).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { requestExamples, loadSpec } from '../lib/contract.js';
import { startService, api, setupShop, createKey } from '../lib/harness.js';

const examples = await requestExamples();

let svc;
let c;
let S;

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
});
after(async () => { await svc?.stop(); });

test('the spec has request examples for every operation with a request body', () => {
  assert.ok(Array.isArray(examples) && examples.length > 0, 'requestExamples() returned nothing');
  const have = new Set(examples.map((e) => `${e.method.toUpperCase()} ${e.pathTemplate}`));
  for (const op of ['POST /v1/shops', 'PATCH /v1/shops/{id}', 'POST /v1/api-keys', 'PUT /v1/customers/{id}']) {
    assert.ok(have.has(op), `no request example for ${op} (have: ${[...have].join(', ')})`);
  }
});

let members = 0;

/** Fills path parameters with real ids (creating prerequisites) and picks a key. */
async function prepare(ex) {
  const method = ex.method.toUpperCase();
  const [exPath, query] = ex.pathExample.split('?');
  const tSegs = ex.pathTemplate.split('/');
  const eSegs = exPath.split('/');
  assert.equal(tSegs.length, eSegs.length, `pathExample ${ex.pathExample} does not match ${ex.pathTemplate}`);
  let key;
  if (ex.pathTemplate.startsWith('/v1/shops')) key = svc.platformKey;
  else if (ex.pathTemplate.startsWith('/v1/')) key = S.keys.admin;
  const segs = [];
  for (let i = 0; i < tSegs.length; i++) {
    const m = /^\{(.+)\}$/.exec(tSegs[i]);
    if (!m) { segs.push(tSegs[i]); continue; }
    if (ex.pathTemplate.startsWith('/v1/shops/')) {
      segs.push(S.shopId);
    } else if (ex.pathTemplate.startsWith('/v1/api-keys/')) {
      const k = await createKey(svc, S.keys.admin, 'readonly', 'example target');
      segs.push(k.id);
    } else if (ex.pathTemplate.startsWith('/v1/memberships/')) {
      // renew and cancel: a fresh active membership of a fresh customer (memberships1.md)
      const plan = await c.put('/v1/membership-plans/example-plan', { name: 'Example plan', fee: 100, duration_days: 30, discount_bp: 100 }, { key: S.keys.admin });
      assert.ok([200, 201].includes(plan.status), plan.text);
      members += 1;
      const customer = `example-member-${members}`;
      const r = await c.put(`/v1/customers/${customer}`, { name: 'Example member' }, { key: S.keys.admin });
      assert.equal(r.status, 201, r.text);
      const m = await c.post(`/v1/customers/${customer}/memberships`, { plan: 'example-plan' }, { key: S.keys.admin });
      assert.equal(m.status, 201, m.text);
      segs.push(m.body.id);
    } else if (ex.pathTemplate.startsWith('/v1/customers/')) {
      const id = decodeURIComponent(eSegs[i]);
      if (method !== 'PUT') {
        const r = await c.put(`/v1/customers/${encodeURIComponent(id)}`, { name: 'Example prerequisite' }, { key: S.keys.admin });
        assert.ok([200, 201].includes(r.status), r.text);
      }
      segs.push(encodeURIComponent(id));
    } else {
      segs.push(eSegs[i]);
    }
  }
  return { method, path: segs.join('/') + (query !== undefined ? `?${query}` : ''), key };
}

describe('request examples from openapi.yaml', () => {
  for (const ex of examples) {
    test(`${ex.operationId}: ${ex.method.toUpperCase()} ${ex.pathExample}`, async () => {
      const { method, path, key } = await prepare(ex);
      const opts = { key };
      // A non-JSON body (the NDJSON of POST /v1/orders/bulk) is sent as text with its own media type.
      const [mediaType] = Object.keys(loadSpec().paths[ex.pathTemplate][method.toLowerCase()].requestBody.content);
      if (mediaType !== 'application/json') Object.assign(opts, { rawBody: ex.body, headers: { 'content-type': mediaType } });
      else if (ex.body !== undefined && ex.body !== null) opts.body = ex.body;
      const r = await c.req(method, path, opts);
      assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} → ${r.status} ${r.text}`);
      if (typeof r.body?.failed === 'number') assert.equal(r.body.failed, 0, `${method} ${path}: failed lines: ${r.text}`);
    });
  }
});

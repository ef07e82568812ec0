// Checks openapi.yaml itself (Redocly lint, completeness, examples) and the
// validator in tests/lib/contract.js, including that it can fail.
//
// Run from the repository root: node --test tests/contract/

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  loadSpec,
  validateResponse,
  requestExamples,
  schemaValidator,
  matchPath,
} from '../lib/contract.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const REDOCLY = fileURLToPath(new URL('../node_modules/.bin/redocly', import.meta.url));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** [{ path, method, op, segments }] for every operation in the spec. */
function operations() {
  const spec = loadSpec();
  const out = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (item[method]) out.push({ path, method, op: item[method], segments: ['paths', path, method] });
    }
  }
  return out;
}

/** Follows a local '#/...' $ref; returns { node, segments } (its location). */
function locate(node, segments) {
  while (node?.$ref) {
    segments = node.$ref
      .slice(2)
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    node = segments.reduce((n, s) => n?.[s], loadSpec());
  }
  return { node, segments };
}

const resolve = (node) => locate(node, []).node;

describe('openapi.yaml', () => {
  test('passes redocly lint with no errors, warnings or ignored problems', () => {
    const run = spawnSync(REDOCLY, ['lint', 'openapi.yaml', '--config', 'redocly.yaml', '--format', 'json'], {
      cwd: ROOT,
      encoding: 'utf8',
      // No telemetry or update checks from a test run.
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      timeout: 60_000,
    });
    assert.equal(run.error, undefined, `could not run ${REDOCLY}: ${run.error}`);
    assert.equal(run.status, 0, `redocly lint failed:\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout);
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer}`);
    assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 }, problems.join('\n'));
  });

  test('every operation has a unique operationId, a summary and a description', () => {
    const seen = new Set();
    for (const { path, method, op } of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.match(op.operationId ?? '', /^[a-zA-Z]+$/, `${where}: operationId`);
      assert.ok(!seen.has(op.operationId), `${where}: duplicate operationId ${op.operationId}`);
      seen.add(op.operationId);
      assert.ok(op.summary, `${where}: summary`);
      assert.ok(op.description, `${where}: description`);
    }
    assert.equal(seen.size, 87, 'api.md defines 13 operations, orders.md 4 more in slice 1, 3 in slice 2 and 1 in slice 3, metrics.md 2, metrics2.md 5, segments1.md 3, segments2.md 2, rfm.md 3, memberships1.md 9, tiers.md 11, balances1.md 7, balances2.md 5, packages.md 19');
  });

  test('every request body has an example that validates against its own schema', () => {
    let checked = 0;
    for (const { path, method, op, segments } of operations()) {
      if (!op.requestBody) continue;
      const rb = resolve(op.requestBody);
      assert.equal(rb.required, true, `${op.operationId}: requestBody.required`);
      // Only the bulk ingest takes NDJSON (orders.md, slice 3).
      const mt = op.operationId === 'bulkPutOrders' ? 'application/x-ndjson' : 'application/json';
      assert.deepEqual(Object.keys(rb.content), [mt], `${op.operationId}: request media types`);
      const media = rb.content[mt];
      assert.ok('example' in media, `${method.toUpperCase()} ${path}: requestBody has no example`);
      const validate = schemaValidator([...segments, 'requestBody', 'content', mt, 'schema']);
      assert.ok(validate(media.example), `${op.operationId} example: ${JSON.stringify(validate.errors)}`);
      checked++;
    }
    assert.equal(checked, 33, 'POST /v1/shops, PATCH /v1/shops/{id}, POST /v1/api-keys, PUT /v1/customers/{id}, PUT /v1/orders/{id}, POST /v1/orders/bulk, POST /v1/orders/{id}/refunds, POST /v1/orders/{id}/events, POST /v1/traffic, PUT /v1/segments/{code}, PUT /v1/rfm/map, PUT /v1/membership-plans/{code}, POST /v1/customers/{id}/memberships, POST /v1/memberships/{id}/renew, POST /v1/memberships/{id}/cancel, PUT /v1/benefits/{code}, PUT /v1/tier-programme, POST /v1/tier-programme/review, PUT /v1/customers/{id}/tier, POST /v1/customers/{id}/benefits/{code}/uses, PUT /v1/topup-offers/{code}, POST /v1/customers/{id}/wallet/topups, POST /v1/customers/{id}/wallet/spends, POST /v1/customers/{id}/wallet/spends/{spend_id}/refunds, POST /v1/customers/{id}/wallet/adjustments (the top-up refund takes no body); packages.md 8: PUT /v1/package-plans/{code}, POST /v1/customers/{id}/packages, POST /v1/customers/{id}/packages/{package_id}/redemptions, POST /v1/customers/{id}/packages/{package_id}/redemptions/{redemption_id}/reversal, POST /v1/customers/{id}/packages/{package_id}/refund (its body may be left out), PUT /v1/coupon-packs/{code}, POST /v1/customers/{id}/coupon-grants, POST /v1/customers/{id}/coupon-grants/{grant_id}/coupons/{number}/redeem');
  });

  test('the request schemas reject what the service rejects', () => {
    // Guards against a request schema so loose that the example test above
    // would pass for anything.
    const putCustomer = schemaValidator(['components', 'schemas', 'CustomerPut']);
    assert.ok(putCustomer({}), 'all fields are optional');
    assert.ok(!putCustomer({ nickname: 'x' }), 'unknown field');
    assert.ok(!putCustomer({ email: 'li.wei.example.com' }), 'email without @');
    assert.ok(!putCustomer({ tags: ['vip', 'vip'] }), 'duplicate tags');
    assert.ok(!putCustomer({ consent: { email: { at: '2026-11-20T08:30:00Z' } } }), 'consent without granted');
    assert.ok(!putCustomer({ consent: { fax: { granted: true } } }), 'unknown consent channel');
    const patchShop = schemaValidator(['components', 'schemas', 'ShopPatch']);
    assert.ok(!patchShop({}), 'PATCH needs at least one field');
    assert.ok(!patchShop({ currency: 'USD' }), 'currency is immutable');
    assert.ok(patchShop({ settings: { repurchase_rule: { merge_window_hours: 8760 } } }), 'partial rule');
    assert.ok(!patchShop({ settings: { repurchase_rule: { merge_window_hours: 8761 } } }), 'merge window above a year');
    assert.ok(!patchShop({ settings: { repurchase_rule: { min_order_amount: -1 } } }), 'negative minimum');
    assert.ok(!patchShop({ settings: { repurchase_rule: { window: 1 } } }), 'unknown rule member');
    assert.ok(!patchShop({ settings: { rule: {} } }), 'unknown settings member');
    // segments1.md: settings.segments, each member optional and range-checked.
    const segmentSettings = {
      second_purchase_window_days: [1, 3650], due_max_factor: [2, 20], due_min_repeat_customers: [1, 100000],
      lapsing_factor: [1, 20], lapse_days: [1, 3650], vip_percent: [1, 50],
    };
    assert.ok(patchShop({ settings: { segments: {} } }), 'no segment member is required');
    assert.ok(patchShop({ settings: { segments: { lapse_days: 180 } } }), 'partial segment settings');
    for (const [name, [min, max]] of Object.entries(segmentSettings)) {
      const seg = (v) => patchShop({ settings: { segments: { [name]: v } } });
      assert.ok(seg(min) && seg(max), `${name}: ${min}..${max}`);
      assert.ok(!seg(min - 1), `${name} below ${min}`);
      assert.ok(!seg(max + 1), `${name} above ${max}`);
      assert.ok(!seg(min + 0.5), `${name} is an integer`);
      assert.ok(!seg(null), `${name} is not nullable`);
    }
    assert.ok(!patchShop({ settings: { segments: { lapse_days: '365' } } }), 'a number, not a string');
    assert.ok(!patchShop({ settings: { segments: { vip: 5 } } }), 'unknown segment setting');
    assert.ok(!patchShop({ settings: { segments: null } }), 'segments is an object');
    const createShop = schemaValidator(['components', 'schemas', 'ShopCreate']);
    assert.ok(createShop({ name: 'x', currency: 'CNY', timezone: 'UTC', settings: { segments: { vip_percent: 10 } } }), 'segment settings on creation');

    const putOrder = schemaValidator(['components', 'schemas', 'OrderInput']);
    const order = {
      customer_id: 'cust-1', placed_at: '2026-11-01T10:00:00+08:00', channel: 'web', currency: 'CNY',
      lines: [{ sku: 'TEA-1', category: 'tea', role: 'regular', quantity: 1, unit_price: 100 }], total: 100,
    };
    const line = (l) => ({ ...order, lines: [{ ...order.lines[0], ...l }] });
    assert.ok(putOrder(order), 'minimal order');
    for (const k of ['customer_id', 'placed_at', 'channel', 'currency', 'lines', 'total']) {
      const { [k]: _, ...without } = order;
      assert.ok(!putOrder(without), `${k} is required`);
    }
    for (const k of ['sku', 'category', 'role', 'quantity', 'unit_price']) {
      const { [k]: _, ...without } = order.lines[0];
      assert.ok(!putOrder({ ...order, lines: [without] }), `lines[].${k} is required`);
    }
    assert.ok(!putOrder({ ...order, coupon: 'X' }), 'unknown field');
    assert.ok(!putOrder(line({ colour: 'red' })), 'unknown line field');
    assert.ok(!putOrder({ ...order, lines: [] }), 'empty lines');
    assert.ok(!putOrder({ ...order, lines: Array(201).fill(order.lines[0]) }), 'more than 200 lines');
    assert.ok(!putOrder(line({ role: 'gift' })), 'unknown role');
    assert.ok(!putOrder(line({ quantity: 0 })), 'zero quantity');
    assert.ok(!putOrder(line({ quantity: 1.5 })), 'fractional quantity');
    assert.ok(!putOrder(line({ unit_price: -1 })), 'negative price');
    assert.ok(!putOrder(line({ category: 'tea leaves' })), 'category pattern');
    assert.ok(!putOrder({ ...order, channel: 'web shop' }), 'channel pattern');
    assert.ok(!putOrder({ ...order, total: -1 }), 'negative total');
    assert.ok(!putOrder({ ...order, placed_at: '2026-11-01 10:00' }), 'placed_at format');

    const refund = schemaValidator(['components', 'schemas', 'RefundInput']);
    assert.ok(refund({ id: 'rf-1', amount: 1 }), 'minimal refund');
    assert.ok(!refund({ id: 'rf-1', amount: 0 }), 'zero amount');
    assert.ok(!refund({ id: 'rf 1', amount: 5 }), 'refund id pattern');
    assert.ok(!refund({ id: 'rf-1', amount: 5, reason: '' }), 'empty reason');
    assert.ok(!refund({ amount: 5 }), 'id is required');

    const event = schemaValidator(['components', 'schemas', 'OrderEventInput']);
    for (const type of ['shipped', 'delivered', 'completed']) {
      assert.ok(event({ type, at: '2026-11-02T16:45:00+08:00' }), `${type} event`);
    }
    assert.ok(!event({ type: 'returned', at: '2026-11-02T16:45:00Z' }), 'unknown type');
    assert.ok(!event({ type: 'Shipped', at: '2026-11-02T16:45:00Z' }), 'types are lower case');
    assert.ok(!event({ type: 'shipped', at: '2026-11-02 16:45' }), 'at format');
    assert.ok(!event({ type: 'shipped', at: '2026-11-02T16:45:00' }), 'at needs an offset');
    assert.ok(!event({ type: 'shipped', at: null }), 'at is not nullable');
    assert.ok(!event({ type: 'shipped' }), 'at is required');
    assert.ok(!event({ at: '2026-11-02T16:45:00Z' }), 'type is required');
    assert.ok(!event({ type: 'shipped', at: '2026-11-02T16:45:00Z', carrier: 'SF' }), 'unknown field');

    const traffic = schemaValidator(['components', 'schemas', 'TrafficInput']);
    const day = { date: '2025-03-01', channel: 'web', visitors: 1200, sessions: 1500 };
    const days = (d) => ({ days: [{ ...day, ...d }] });
    assert.ok(traffic({ days: [day] }), 'one day');
    assert.ok(traffic(days({ visitors: 0, sessions: 0 })), 'zero counts');
    assert.ok(traffic(days({ visitors: 1e12, sessions: 1e12 })), 'counts up to 10^12');
    assert.ok(traffic({ days: Array(1000).fill(day) }), '1000 entries (a repeated date and channel is checked by the service)');
    assert.ok(!traffic({ days: [] }), 'no entries');
    assert.ok(!traffic({ days: Array(1001).fill(day) }), 'more than 1000 entries');
    assert.ok(!traffic({}), 'days is required');
    assert.ok(!traffic({ days: [day], source: 'ga' }), 'unknown field');
    for (const k of ['date', 'channel', 'visitors', 'sessions']) {
      const { [k]: _, ...without } = day;
      assert.ok(!traffic({ days: [without] }), `days[].${k} is required`);
    }
    assert.ok(!traffic(days({ pageviews: 1 })), 'unknown entry field');
    assert.ok(!traffic(days({ date: '2025-02-30' })), 'a real calendar date');
    assert.ok(!traffic(days({ date: '2025-03-01T00:00:00Z' })), 'a date, not a timestamp');
    assert.ok(!traffic(days({ channel: 'web shop' })), 'channel pattern');
    assert.ok(!traffic(days({ channel: 'x'.repeat(65) })), 'channel at most 64 characters');
    assert.ok(!traffic(days({ visitors: -1 })), 'negative visitors');
    assert.ok(!traffic(days({ sessions: 1e12 + 1 })), 'sessions above 10^12');
    assert.ok(!traffic(days({ visitors: 1.5 })), 'fractional visitors');
    assert.ok(!traffic(days({ visitors: null })), 'visitors is not nullable');
  });

  test('custom segments: the PUT body and the filter language reject what the service rejects', () => {
    // segments2.md: { name, description?, filter }, the filter strict in
    // every object, each field with its own operators and value shapes.
    const put = schemaValidator(['components', 'schemas', 'SegmentInput']);
    const c = (field, op, value) => ({ field, op, value });
    const cond = c('order_count', 'eq', 1);
    const body = (filter, extra = {}) => ({ name: 'Tea lovers', filter, ...extra });
    const ok = (filter, what) => assert.ok(put(body(filter)), `${what}: ${JSON.stringify(put.errors)}`);
    const no = (filter, what) => assert.ok(!put(body(filter)), what);
    const strings = (n, prefix = 's') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

    // The body.
    assert.ok(put(body(cond)), 'name and filter');
    assert.ok(put(body(cond, { description: null })), 'description may be null');
    assert.ok(put(body(cond, { description: 'x'.repeat(1000) })), 'description up to 1000 characters');
    assert.ok(!put(body(cond, { description: 'x'.repeat(1001) })), 'description above 1000 characters');
    assert.ok(!put(body(cond, { description: 5 })), 'description is a string');
    assert.ok(put({ name: 'x'.repeat(200), filter: cond }), 'name up to 200 characters');
    assert.ok(!put({ name: 'x'.repeat(201), filter: cond }), 'name above 200 characters');
    assert.ok(!put({ name: '', filter: cond }), 'empty name');
    assert.ok(!put({ name: null, filter: cond }), 'name is not nullable');
    assert.ok(!put({ filter: cond }), 'name is required');
    assert.ok(!put({ name: 'Tea lovers' }), 'filter is required');
    assert.ok(!put(body(null)), 'filter is not nullable');
    for (const k of ['code', 'kind', 'size', 'parameters', 'created_at']) {
      assert.ok(!put(body(cond, { [k]: 'x' })), `${k} is not part of the body`);
    }

    // Numeric fields: the six comparisons and between, integers in ±10^15.
    const numeric = ['order_count', 'days_since_first_order', 'days_since_last_order', 'total_spent', 'average_order_value'];
    for (const field of numeric) {
      for (const op of ['eq', 'ne', 'lt', 'lte', 'gt', 'gte']) ok(c(field, op, 0), `${field} ${op}`);
      ok(c(field, 'between', [30, 90]), `${field} between`);
      for (const op of ['in', 'contains', 'contains_any', 'contains_all', 'like']) no(c(field, op, 1), `${field} ${op}`);
    }
    ok(c('total_spent', 'gte', 1e15), 'up to 10^15');
    ok(c('total_spent', 'gte', -1e15), 'down to -10^15');
    ok(c('order_count', 'between', [-1e15, 1e15]), 'between the bounds');
    ok(c('order_count', 'between', [5, 5]), 'between one value');
    ok(c('order_count', 'between', [90, 30]), 'lo <= hi is checked by the service, not the schema');
    no(c('total_spent', 'gte', 1e15 + 1), 'above 10^15');
    no(c('total_spent', 'lt', -1e15 - 1), 'below -10^15');
    no(c('order_count', 'eq', 1.5), 'a fraction');
    no(c('order_count', 'eq', '1'), 'a numeric string');
    no(c('order_count', 'eq', null), 'null');
    no(c('order_count', 'eq', [1, 2]), 'a pair for eq');
    no(c('order_count', 'between', 1), 'one number for between');
    no(c('order_count', 'between', [1]), 'between needs two');
    no(c('order_count', 'between', [1, 2, 3]), 'between takes two');
    no(c('order_count', 'between', [1, '2']), 'between integers');
    no(c('order_count', 'between', [1, 2.5]), 'between whole numbers');
    no(c('order_count', 'between', { lo: 1, hi: 2 }), 'between takes an array');

    // first_order_channel: eq, ne (one string) and in (1-100 distinct).
    ok(c('first_order_channel', 'eq', 'web'), 'channel eq');
    ok(c('first_order_channel', 'ne', 'wechat-mini'), 'channel ne');
    ok(c('first_order_channel', 'in', ['web', 'tmall']), 'channel in');
    ok(c('first_order_channel', 'in', strings(100)), 'in: 100 values');
    for (const op of ['lt', 'between', 'contains', 'contains_any']) no(c('first_order_channel', op, 'web'), `first_order_channel ${op}`);
    no(c('first_order_channel', 'eq', ['web']), 'eq takes one string');
    no(c('first_order_channel', 'in', 'web'), 'in takes an array');
    no(c('first_order_channel', 'in', []), 'in: empty');
    no(c('first_order_channel', 'in', ['web', 'web']), 'in: distinct');
    no(c('first_order_channel', 'in', strings(101)), 'in: above 100');
    no(c('first_order_channel', 'eq', 'web shop'), 'string pattern');
    no(c('first_order_channel', 'eq', ''), 'empty string');
    no(c('first_order_channel', 'eq', 'x'.repeat(65)), 'string above 64 characters');
    no(c('first_order_channel', 'eq', 1), 'a number for a string');
    no(c('first_order_channel', 'in', ['web', 'a/b']), 'every string matches the pattern');

    // Sets: contains (one string), contains_any / contains_all (1-100 distinct).
    for (const field of ['categories', 'channels', 'tags']) {
      ok(c(field, 'contains', 'tea'), `${field} contains`);
      ok(c(field, 'contains_any', ['tea', 'tea-sample']), `${field} contains_any`);
      ok(c(field, 'contains_all', strings(100)), `${field} contains_all 100`);
      for (const op of ['eq', 'ne', 'in', 'gte', 'between']) no(c(field, op, 'tea'), `${field} ${op}`);
      no(c(field, 'contains', ['tea']), `${field}: contains takes one string`);
      no(c(field, 'contains_any', 'tea'), `${field}: contains_any takes an array`);
      no(c(field, 'contains_all', []), `${field}: empty`);
      no(c(field, 'contains_any', ['tea', 'tea']), `${field}: distinct`);
      no(c(field, 'contains_all', strings(101)), `${field}: above 100`);
      no(c(field, 'contains', 'tea leaves'), `${field}: string pattern`);
    }

    // consent: email, sms, wechat only.
    for (const v of ['email', 'sms', 'wechat']) ok(c('consent', 'contains', v), `consent contains ${v}`);
    ok(c('consent', 'contains_any', ['email', 'sms']), 'consent contains_any');
    ok(c('consent', 'contains_all', ['email', 'sms', 'wechat']), 'consent contains_all');
    no(c('consent', 'contains', 'fax'), 'unknown consent channel');
    no(c('consent', 'contains', 'Email'), 'consent channels are lower case');
    no(c('consent', 'contains_any', ['email', 'fax']), 'unknown channel in the array');
    no(c('consent', 'contains_all', ['email', 'email']), 'consent: distinct');
    no(c('consent', 'contains_any', []), 'consent: empty');
    no(c('consent', 'eq', 'email'), 'consent eq');
    no(c('consent', 'contains', ['email']), 'consent: contains takes one string');

    // RFM (export.md): the three scores like the numeric fields; rfm_segment eq/ne/in of map names.
    for (const field of ['rfm_recency', 'rfm_frequency', 'rfm_monetary']) {
      for (const op of ['eq', 'ne', 'lt', 'lte', 'gt', 'gte']) ok(c(field, op, 3), `${field} ${op}`);
      ok(c(field, 'between', [2, 4]), `${field} between`);
      ok(c(field, 'eq', 7), `${field}: any integer, like the other numeric fields (matches nobody)`);
      for (const op of ['in', 'contains', 'contains_any']) no(c(field, op, 3), `${field} ${op}`);
      no(c(field, 'eq', '3'), `${field}: an integer, not a string`);
      no(c(field, 'eq', 2.5), `${field}: whole scores`);
      no(c(field, 'between', [2]), `${field}: between takes two`);
    }
    ok(c('rfm_segment', 'eq', 'Champions'), 'rfm_segment eq');
    ok(c('rfm_segment', 'ne', "Can't lose them"), 'rfm_segment ne: any characters');
    ok(c('rfm_segment', 'eq', 'x'.repeat(64)), 'rfm_segment: up to 64 characters');
    ok(c('rfm_segment', 'in', ['Champions', 'Loyal', 'Not in any map']), 'rfm_segment in');
    ok(c('rfm_segment', 'in', strings(100)), 'rfm_segment in: 100 names');
    for (const op of ['lt', 'between', 'contains', 'contains_any']) no(c('rfm_segment', op, 'Champions'), `rfm_segment ${op}`);
    no(c('rfm_segment', 'eq', ''), 'rfm_segment: empty name');
    no(c('rfm_segment', 'eq', 'x'.repeat(65)), 'rfm_segment: above 64 characters');
    no(c('rfm_segment', 'eq', 5), 'rfm_segment: a string');
    no(c('rfm_segment', 'eq', ['Champions']), 'rfm_segment eq: one name');
    no(c('rfm_segment', 'in', 'Champions'), 'rfm_segment in: an array');
    no(c('rfm_segment', 'in', []), 'rfm_segment in: empty');
    no(c('rfm_segment', 'in', ['Loyal', 'Loyal']), 'rfm_segment in: distinct');
    no(c('rfm_segment', 'in', strings(101)), 'rfm_segment in: above 100');
    no(c('rfm_segment', 'in', ['Loyal', '']), 'rfm_segment in: every name 1-64 characters');
    no(c('rfm_score', 'eq', 5), 'unknown rfm field');

    // A condition has exactly field, op and value.
    no({ op: 'eq', value: 1 }, 'field is required');
    no({ field: 'order_count', value: 1 }, 'op is required');
    no({ field: 'order_count', op: 'eq' }, 'value is required');
    no({ ...cond, negate: true }, 'unknown condition member');
    no(c('spend', 'gt', 1), 'unknown field');
    no(c('Order_count', 'eq', 1), 'field names are exact');
    no(c(null, 'eq', 1), 'field is a string');
    no(c('order_count', 'EQ', 1), 'op names are exact');

    // all / any / not.
    ok({ all: [cond] }, 'all of one');
    ok({ any: [cond, c('tags', 'contains', 'vip')] }, 'any of two');
    ok({ not: cond }, 'not');
    ok({ all: Array(50).fill(cond) }, 'all of 50');
    ok({ any: [{ all: [cond, { not: { any: [c('consent', 'contains', 'sms')] } }] }, { not: { not: cond } }] }, 'nested');
    const deep = (n) => (n === 1 ? cond : { not: deep(n - 1) });
    ok(deep(9), 'depth (8 at most) is checked by the service, not the schema');
    ok({ any: [{ all: Array(50).fill(cond) }, { all: Array(50).fill(cond) }, { all: [cond] }] }, 'the number of conditions (100 at most) is checked by the service');
    no({}, 'an empty object');
    no({ all: [] }, 'all: empty');
    no({ any: [] }, 'any: empty');
    no({ all: Array(51).fill(cond) }, 'all: above 50');
    no({ any: Array(51).fill(cond) }, 'any: above 50');
    no({ all: cond }, 'all takes an array');
    no({ not: [cond] }, 'not takes one filter');
    no({ not: null }, 'not takes a filter');
    no({ all: [cond], any: [cond] }, 'one form per object');
    no({ not: cond, all: [cond] }, 'not with another member');
    no({ ...cond, all: [cond] }, 'a condition with a combinator');
    no({ all: [cond], name: 'x' }, 'unknown member next to all');
    no({ none: [cond] }, 'unknown combinator');
    no({ all: [{}] }, 'an empty filter inside');
    no({ all: [cond, c('order_count', 'contains', 1)] }, 'a wrong op inside all');
    no({ any: [{ all: [{ not: c('consent', 'contains', 'fax') }] }] }, 'a bad condition deep inside');
    no({ not: { not: { not: { ...cond, extra: 1 } } } }, 'an unknown member deep inside');
    no([cond], 'a filter is an object, not an array');
    no('order_count = 1', 'a filter is not a string');
  });

  test('RFM: the map body and settings.rfm reject what the service rejects', () => {
    // rfm.md: { segments: [ { name, r: [lo, hi], f: [lo, hi], lapsed? } ] }, 1-50 entries.
    const put = schemaValidator(['components', 'schemas', 'RfmMapInput']);
    const entry = { name: 'Everyone', r: [1, 5], f: [1, 5] };
    const ok = (body, what) => assert.ok(put(body), `${what}: ${JSON.stringify(put.errors)}`);
    const no = (body, what) => assert.ok(!put(body), what);
    const one = (e) => ({ segments: [{ ...entry, ...e }] });
    ok({ segments: [entry] }, 'one entry covering every cell');
    ok(one({ lapsed: false }), 'lapsed false');
    ok({ segments: [entry, { name: 'Lost', r: [1, 1], f: [1, 5], lapsed: true }] }, 'a lapsed entry');
    ok({ segments: Array.from({ length: 50 }, (_, i) => ({ ...entry, name: `s${i}` })) }, '50 entries (coverage is checked by the service)');
    ok({ segments: [entry, entry] }, 'overlaps and duplicate names are checked by the service');
    ok(one({ r: [5, 1] }), 'lo <= hi is checked by the service');
    ok(one({ name: 'x'.repeat(64) }), 'name up to 64 characters');
    ok(one({ name: "Can't lose them" }), 'any characters in a name');
    no({}, 'segments is required');
    no({ segments: [] }, 'at least one entry');
    no({ segments: Array.from({ length: 51 }, (_, i) => ({ ...entry, name: `s${i}` })) }, 'at most 50 entries');
    no({ segments: [entry], default: false }, 'default is not part of the body');
    no({ segments: entry }, 'segments is an array');
    no({ segments: null }, 'segments is not nullable');
    no([entry], 'the body is an object');
    for (const k of ['name', 'r', 'f']) {
      const { [k]: _, ...without } = entry;
      no({ segments: [without] }, `${k} is required`);
    }
    no(one({ name: '' }), 'empty name');
    no(one({ name: 'x'.repeat(65) }), 'name above 64 characters');
    no(one({ name: null }), 'name is not nullable');
    no(one({ name: 5 }), 'name is a string');
    for (const k of ['r', 'f']) {
      no(one({ [k]: [0, 5] }), `${k}: scores from 1`);
      no(one({ [k]: [1, 6] }), `${k}: scores up to 5`);
      no(one({ [k]: [1] }), `${k}: a pair`);
      no(one({ [k]: [1, 2, 3] }), `${k}: only a pair`);
      no(one({ [k]: [1, 4.5] }), `${k}: whole scores`);
      no(one({ [k]: ['1', '5'] }), `${k}: numbers, not strings`);
      no(one({ [k]: 3 }), `${k}: a pair, not one score`);
      no(one({ [k]: { lo: 1, hi: 5 } }), `${k}: an array`);
      no(one({ [k]: null }), `${k}: not nullable`);
    }
    no(one({ lapsed: 'true' }), 'lapsed is a boolean');
    no(one({ lapsed: null }), 'lapsed is not nullable');
    no(one({ m: [1, 5] }), 'no monetary range in the map');
    no(one({ code: 'everyone' }), 'unknown entry member');

    // settings.rfm: one of the two methods, strict, replaced as a whole.
    const patchShop = schemaValidator(['components', 'schemas', 'ShopPatch']);
    const rfm = (v) => patchShop({ settings: { rfm: v } });
    const thresholds = { method: 'thresholds', recency_days: [30, 90, 180, 365], frequency: [2, 3, 5, 10], monetary: [10000, 50000, 100000, 500000] };
    assert.ok(rfm({ method: 'quintiles' }), 'quintiles');
    assert.ok(rfm(thresholds), 'thresholds');
    assert.ok(rfm({ ...thresholds, recency_days: [0, 1, 2, 3], monetary: [0, 1, 2, 1e15] }), 'recency and monetary from 0, up to 10^15');
    assert.ok(rfm({ ...thresholds, frequency: [1, 2, 3, 1e15] }), 'frequency from 1');
    assert.ok(rfm({ ...thresholds, recency_days: [365, 180, 90, 30] }), 'strictly increasing is checked by the service');
    assert.ok(patchShop({ settings: { segments: { lapse_days: 180 }, rfm: { method: 'quintiles' } } }), 'with the segment settings');
    assert.ok(!rfm({}), 'method is required');
    assert.ok(!rfm(null), 'rfm is not nullable');
    assert.ok(!rfm('quintiles'), 'rfm is an object');
    assert.ok(!rfm({ method: 'deciles' }), 'unknown method');
    assert.ok(!rfm({ method: 'Quintiles' }), 'method names are exact');
    assert.ok(!rfm({ method: 'thresholds' }), 'thresholds needs its thresholds');
    assert.ok(!rfm({ ...thresholds, method: 'quintiles' }), 'quintiles takes no thresholds');
    assert.ok(!rfm({ method: 'quintiles', recency_days: [30, 90, 180, 365] }), 'quintiles takes no thresholds, not even one');
    assert.ok(!rfm({ ...thresholds, weights: [1, 1, 1] }), 'unknown member');
    for (const k of ['recency_days', 'frequency', 'monetary']) {
      const { [k]: _, ...without } = thresholds;
      assert.ok(!rfm(without), `${k} is required (replaced as a whole, never merged)`);
      assert.ok(!rfm({ ...thresholds, [k]: [1, 2, 3] }), `${k}: exactly 4`);
      assert.ok(!rfm({ ...thresholds, [k]: [1, 2, 3, 4, 5] }), `${k}: not 5`);
      assert.ok(!rfm({ ...thresholds, [k]: [1, 2, 3, 1e15 + 1] }), `${k}: at most 10^15`);
      assert.ok(!rfm({ ...thresholds, [k]: [-1, 2, 3, 4] }), `${k}: not negative`);
      assert.ok(!rfm({ ...thresholds, [k]: [1, 2, 3.5, 4] }), `${k}: integers`);
      assert.ok(!rfm({ ...thresholds, [k]: [1, 2, 3, null] }), `${k}: no null`);
      assert.ok(!rfm({ ...thresholds, [k]: null }), `${k}: not nullable`);
    }
    assert.ok(!rfm({ ...thresholds, frequency: [0, 2, 3, 5] }), 'frequency thresholds from 1');
    const createShop = schemaValidator(['components', 'schemas', 'ShopCreate']);
    assert.ok(createShop({ name: 'x', currency: 'CNY', timezone: 'UTC', settings: { rfm: thresholds } }), 'rfm settings on creation');
    assert.ok(!createShop({ name: 'x', currency: 'CNY', timezone: 'UTC', settings: { rfm: { method: 'thresholds' } } }), 'strict on creation too');
  });

  test('memberships: the plan, purchase, renew and cancel bodies reject what the service rejects', () => {
    // memberships1.md: plan { name 1-200, fee 0..10^12, duration_days 1..3660, discount_bp 0..10000, active? }.
    const plan = schemaValidator(['components', 'schemas', 'PlanInput']);
    const p = { name: 'PLUS annual', fee: 19900, duration_days: 365, discount_bp: 500 };
    const ok = (v, body, what) => assert.ok(v(body), `${what}: ${JSON.stringify(v.errors)}`);
    ok(plan, p, 'without active (default true)');
    ok(plan, { ...p, active: false }, 'inactive');
    ok(plan, { name: 'x'.repeat(200), fee: 0, duration_days: 1, discount_bp: 0 }, 'the lower bounds');
    ok(plan, { ...p, fee: 1e12, duration_days: 3660, discount_bp: 10000 }, 'the upper bounds');
    for (const k of ['name', 'fee', 'duration_days', 'discount_bp']) {
      const { [k]: _, ...without } = p;
      assert.ok(!plan(without), `${k} is required`);
      assert.ok(!plan({ ...p, [k]: null }), `${k} is not nullable`);
    }
    const bad = [
      ['name', ''], ['name', 'x'.repeat(201)], ['name', 5], ['fee', -1], ['fee', 1e12 + 1], ['fee', 1.5], ['fee', '19900'],
      ['duration_days', 0], ['duration_days', 3661], ['duration_days', 36.5], ['discount_bp', -1], ['discount_bp', 10001],
      ['discount_bp', 2.5], ['active', 'true'], ['active', null], ['currency', 'CNY'], ['code', 'plus'], ['created_at', '2026-11-22T16:53:38Z'],
    ];
    for (const [k, v] of bad) assert.ok(!plan({ ...p, [k]: v }), `plan ${k}: ${JSON.stringify(v)}`);

    // purchase: { plan, card_number? 4-32 of [A-Za-z0-9-], starts_at? RFC 3339 }.
    const buy = schemaValidator(['components', 'schemas', 'MembershipPurchase']);
    ok(buy, { plan: 'plus' }, 'plan alone');
    ok(buy, { plan: 'plus', card_number: 'A-12', starts_at: '2025-01-01T00:00:00+08:00' }, 'all members');
    ok(buy, { plan: 'plus', card_number: 'x'.repeat(32) }, 'card number of 32');
    assert.ok(!buy({}), 'plan is required');
    assert.ok(!buy({ card_number: 'A-1234' }), 'plan is required with a card number');
    for (const cn of ['A-1', 'x'.repeat(33), 'A 1234', 'A_1234', 'Ä-1234', 1234567, null]) {
      assert.ok(!buy({ plan: 'plus', card_number: cn }), `card number ${JSON.stringify(cn)}`);
    }
    for (const at of ['2025-01-01', '2025-01-01 00:00:00', 'yesterday', null, 0]) {
      assert.ok(!buy({ plan: 'plus', starts_at: at }), `starts_at ${JSON.stringify(at)}`);
    }
    assert.ok(!buy({ plan: 'Plus' }), 'plan codes are lower case');
    assert.ok(!buy({ plan: '' }), 'empty plan');
    assert.ok(!buy({ plan: 'plus', customer_id: 'c1' }), 'unknown member');

    const renew = schemaValidator(['components', 'schemas', 'MembershipRenew']);
    ok(renew, {}, 'the empty object');
    assert.ok(!renew({ plan: 'plus' }), 'no member');
    assert.ok(!renew([]), 'an object');
    assert.ok(!renew(null), 'not null');

    const cancel = schemaValidator(['components', 'schemas', 'MembershipCancel']);
    ok(cancel, { refund: 'none' }, 'none');
    ok(cancel, { refund: 'pro_rata' }, 'pro_rata');
    assert.ok(!cancel({}), 'refund is required');
    assert.ok(!cancel({ refund: 'full' }), 'none or pro_rata only');
    assert.ok(!cancel({ refund: null }), 'refund is not nullable');
    assert.ok(!cancel({ refund: 'none', reason: 'moved away' }), 'unknown member');
  });

  test('wallets: the offer, top-up and spend bodies and settings.balances reject what the service rejects', () => {
    // balances1.md: offer { name 1-200, min_topup 0..10^12, bonus (required) { immediate 0..10^12,
    // installments null | { count 1..120, amount 1..10^12, every, interval 1..12 }, installment_expiry,
    // expires_after_days 1..3660 | null }, limit_per_customer 1..1000 | null, active }.
    const offer = schemaValidator(['components', 'schemas', 'TopupOfferInput']);
    const ok = (v, body, what) => assert.ok(v(body), `${what}: ${JSON.stringify(v.errors)}`);
    const inst = { count: 10, amount: 2000, every: 'month', interval: 1 };
    const o = { name: 'Top up 200, get 200', min_topup: 20000, bonus: { immediate: 0, installments: inst, installment_expiry: 'end_of_period', expires_after_days: null }, limit_per_customer: 1, active: true };
    ok(offer, o, 'the example of balances1.md');
    ok(offer, { name: 'Plain', bonus: {} }, 'a bonus of 0, every other member defaulted');
    ok(offer, { name: 'x'.repeat(200), min_topup: 1e12, bonus: { immediate: 1e12, installments: { count: 120, amount: 1e12, every: 'day', interval: 12 }, expires_after_days: 3660 }, limit_per_customer: 1000 }, 'the upper bounds');
    ok(offer, { name: 'x', min_topup: 0, bonus: { installments: { count: 1, amount: 1, every: 'week' }, installment_expiry: 'none', expires_after_days: 1 }, limit_per_customer: null, active: false }, 'the lower bounds, interval defaulted');
    ok(offer, { ...o, bonus: { ...o.bonus, installments: null } }, 'installments null');
    assert.ok(!offer({ name: 'x' }), 'bonus is required');
    assert.ok(!offer({ bonus: {} }), 'name is required');
    const bad = [
      ['name', ''], ['name', 'x'.repeat(201)], ['name', null], ['min_topup', -1], ['min_topup', 1e12 + 1], ['min_topup', 1.5], ['min_topup', null],
      ['limit_per_customer', 0], ['limit_per_customer', 1001], ['limit_per_customer', 2.5], ['active', 'true'], ['active', null], ['bonus', null],
      ['code', 'top-up-200'], ['version', 2], ['currency', 'CNY'], ['bonus_total', 20000], ['created_at', '2026-11-22T16:53:38Z'],
    ];
    for (const [k, v] of bad) assert.ok(!offer({ ...o, [k]: v }), `offer ${k}: ${JSON.stringify(v)}`);
    const badBonus = [
      ['immediate', -1], ['immediate', 1e12 + 1], ['immediate', null], ['installment_expiry', 'end_of_month'], ['installment_expiry', null],
      ['expires_after_days', 0], ['expires_after_days', 3661], ['expires_after_days', 1.5], ['installments', {}], ['installments', []], ['total', 1],
    ];
    for (const [k, v] of badBonus) assert.ok(!offer({ ...o, bonus: { ...o.bonus, [k]: v } }), `bonus ${k}: ${JSON.stringify(v)}`);
    for (const k of ['count', 'amount', 'every']) {
      const { [k]: _, ...without } = inst;
      assert.ok(!offer({ ...o, bonus: { installments: without } }), `installments.${k} is required`);
    }
    const badInst = [
      ['count', 0], ['count', 121], ['amount', 0], ['amount', 1e12 + 1], ['every', 'year'], ['every', 'Month'], ['interval', 0], ['interval', 13],
      ['interval', null], ['count', 1.5], ['start', 'now'],
    ];
    for (const [k, v] of badInst) assert.ok(!offer({ ...o, bonus: { installments: { ...inst, [k]: v } } }), `installments.${k}: ${JSON.stringify(v)}`);

    // top-up: { topup_id 1-128 printable ASCII without spaces, amount 1..10^12, offer? }.
    const topup = schemaValidator(['components', 'schemas', 'TopupInput']);
    ok(topup, { topup_id: 'pay-1', amount: 1 }, 'without an offer');
    ok(topup, { topup_id: '!'.repeat(128), amount: 1e12, offer: 'top-up-200' }, 'the upper bounds, with an offer');
    assert.ok(!topup({ amount: 100 }), 'topup_id is required');
    assert.ok(!topup({ topup_id: 'pay-1' }), 'amount is required');
    for (const id of ['', 'x'.repeat(129), 'pay 1', 'pay-\u00e9', 1, null]) assert.ok(!topup({ topup_id: id, amount: 1 }), `topup_id ${JSON.stringify(id)}`);
    for (const a of [0, -1, 1e12 + 1, 1.5, '100', null]) assert.ok(!topup({ topup_id: 'pay-1', amount: a }), `amount ${JSON.stringify(a)}`);
    for (const c of ['', 'Top-Up', 'x'.repeat(65), 5]) assert.ok(!topup({ topup_id: 'pay-1', amount: 1, offer: c }), `offer ${JSON.stringify(c)}`);
    assert.ok(!topup({ topup_id: 'pay-1', amount: 1, bonus: 5 }), 'unknown member');

    // spend: { spend_id like topup_id, amount 1..10^12, order_id? 1-128 }.
    const spend = schemaValidator(['components', 'schemas', 'SpendInput']);
    ok(spend, { spend_id: 'sp-1', amount: 1 }, 'without an order');
    ok(spend, { spend_id: 'sp-1', amount: 1e12, order_id: 'x'.repeat(128) }, 'the upper bounds, with an order');
    assert.ok(!spend({ amount: 1 }), 'spend_id is required');
    assert.ok(!spend({ spend_id: 'sp-1' }), 'amount is required');
    for (const id of ['', 'x'.repeat(129), 'sp 1', null]) assert.ok(!spend({ spend_id: id, amount: 1 }), `spend_id ${JSON.stringify(id)}`);
    for (const a of [0, 1e12 + 1, 2.5, null]) assert.ok(!spend({ spend_id: 'sp-1', amount: a }), `amount ${JSON.stringify(a)}`);
    for (const id of ['', 'x'.repeat(129), 7]) assert.ok(!spend({ spend_id: 'sp-1', amount: 1, order_id: id }), `order_id ${JSON.stringify(id)}`);
    assert.ok(!spend({ spend_id: 'sp-1', amount: 1, from_bonus: 1 }), 'unknown member');

    // settings.balances: consumption_order optional, one of three.
    const patchShop = schemaValidator(['components', 'schemas', 'ShopPatch']);
    const balances = (v) => patchShop({ settings: { balances: v } });
    for (const order of ['bonus_first', 'principal_first', 'proportional']) assert.ok(balances({ consumption_order: order }), order);
    assert.ok(balances({}), 'no member is required');
    assert.ok(patchShop({ settings: { segments: { lapse_days: 180 }, rfm: { method: 'quintiles' }, balances: { consumption_order: 'proportional' } } }), 'with the other settings');
    assert.ok(!balances({ consumption_order: 'fifo' }), 'unknown order');
    assert.ok(!balances({ consumption_order: 'Bonus_first' }), 'exact names');
    assert.ok(!balances({ consumption_order: null }), 'not nullable');
    assert.ok(!balances({ rounding: 'floor' }), 'unknown member');
    assert.ok(!balances(null), 'balances is an object');
    assert.ok(!balances('bonus_first'), 'balances is an object, not the order');
    const createShop = schemaValidator(['components', 'schemas', 'ShopCreate']);
    assert.ok(createShop({ name: 'x', currency: 'CNY', timezone: 'UTC', settings: { balances: { consumption_order: 'principal_first' } } }), 'balances settings on creation');

    // balances2.md: spend refund { refund_id like spend_id, amount 1..10^12 }.
    const refund = schemaValidator(['components', 'schemas', 'SpendRefundInput']);
    ok(refund, { refund_id: 'rf-1', amount: 1 }, 'the lower bound');
    ok(refund, { refund_id: '~'.repeat(128), amount: 1e12 }, 'the upper bounds');
    assert.ok(!refund({ amount: 1 }), 'refund_id is required');
    assert.ok(!refund({ refund_id: 'rf-1' }), 'amount is required');
    for (const id of ['', 'x'.repeat(129), 'rf 1', 'rf-\u00e9', 7, null]) assert.ok(!refund({ refund_id: id, amount: 1 }), `refund_id ${JSON.stringify(id)}`);
    for (const a of [0, -1, 1e12 + 1, 1.5, '1', null]) assert.ok(!refund({ refund_id: 'rf-1', amount: a }), `amount ${JSON.stringify(a)}`);
    for (const k of ['spend_id', 'reason', 'to_principal']) assert.ok(!refund({ refund_id: 'rf-1', amount: 1, [k]: 1 }), `unknown member ${k}`);

    // adjustment { adjustment_id like refund_id, amount ±10^12 not 0, reason 1-500 }.
    const adjust = schemaValidator(['components', 'schemas', 'WalletAdjustmentInput']);
    ok(adjust, { adjustment_id: 'adj-1', amount: 1, reason: 'x' }, 'a credit');
    ok(adjust, { adjustment_id: 'adj-1', amount: -1, reason: 'x' }, 'a debit');
    ok(adjust, { adjustment_id: '!'.repeat(128), amount: 1e12, reason: 'x'.repeat(500) }, 'the upper bounds');
    ok(adjust, { adjustment_id: 'adj-1', amount: -1e12, reason: 'x' }, 'the lower bound');
    for (const k of ['adjustment_id', 'amount', 'reason']) {
      const { [k]: _, ...without } = { adjustment_id: 'adj-1', amount: 1, reason: 'x' };
      assert.ok(!adjust(without), `${k} is required`);
    }
    for (const a of [0, -0, 1e12 + 1, -1e12 - 1, 2.5, '5', null]) assert.ok(!adjust({ adjustment_id: 'adj-1', amount: a, reason: 'x' }), `amount ${JSON.stringify(a)}`);
    for (const r of ['', 'x'.repeat(501), null, 5]) assert.ok(!adjust({ adjustment_id: 'adj-1', amount: 1, reason: r }), `reason ${JSON.stringify(r)}`);
    for (const id of ['', 'x'.repeat(129), 'adj 1', null]) assert.ok(!adjust({ adjustment_id: id, amount: 1, reason: 'x' }), `adjustment_id ${JSON.stringify(id)}`);
    assert.ok(!adjust({ adjustment_id: 'adj-1', amount: 1, reason: 'x', customer_id: 'c' }), 'unknown member');

    // The spend and top-up ids of the refund paths: like the ids of the bodies.
    const spendId = schemaValidator(['components', 'parameters', 'WalletSpendId', 'schema']);
    const topupId = schemaValidator(['components', 'parameters', 'WalletTopupId', 'schema']);
    for (const v of [spendId, topupId]) {
      assert.ok(v('pay-20261122-0001') && v('~'.repeat(128)), 'printable ASCII, up to 128');
      assert.ok(!v('') && !v('a b') && !v('x'.repeat(129)), 'not empty, no spaces, at most 128');
    }

    // Segment filters on wallet balances: numeric fields (balances2.md).
    const seg = schemaValidator(['components', 'schemas', 'SegmentInput']);
    for (const field of ['wallet_principal', 'wallet_bonus_available', 'wallet_available']) {
      for (const op of ['eq', 'ne', 'lt', 'lte', 'gt', 'gte']) ok(seg, { name: 'W', filter: { field, op, value: 2000 } }, `${field} ${op}`);
      ok(seg, { name: 'W', filter: { field, op: 'between', value: [0, 2000] } }, `${field} between`);
      for (const [op, value] of [['in', [1]], ['contains', 1], ['eq', 'x'], ['eq', 1.5], ['gte', 1e15 + 1]]) {
        assert.ok(!seg({ name: 'W', filter: { field, op, value } }), `${field} ${op} ${JSON.stringify(value)}`);
      }
    }
    ok(seg, { name: 'Bonus waiting', filter: { all: [{ field: 'wallet_bonus_available', op: 'gte', value: 2000 }, { field: 'days_since_last_order', op: 'gte', value: 30 }] } }, 'the example of balances2.md');
    assert.ok(!seg({ name: 'W', filter: { field: 'wallet_bonus_scheduled', op: 'gte', value: 1 } }), 'no filter on scheduled bonus');
    assert.ok(!seg({ name: 'W', filter: { field: 'wallet', op: 'gte', value: 1 } }), 'no field "wallet"');
  });

  test('every path parameter has an example, and all examples fit their schema', () => {
    for (const { path, method, segments } of operations()) {
      const params = [
        ...(loadSpec().paths[path].parameters ?? []).map((p, i) => locate(p, ['paths', path, 'parameters', i])),
        ...(loadSpec().paths[path][method].parameters ?? []).map((p, i) => locate(p, [...segments, 'parameters', i])),
      ];
      for (const name of path.match(/\{[^}]+\}/g) ?? []) {
        const p = params.find(({ node }) => node.in === 'path' && `{${node.name}}` === name);
        assert.ok(p, `${method.toUpperCase()} ${path}: ${name} is not declared`);
        assert.ok(p.node.example !== undefined, `${method.toUpperCase()} ${path}: ${name} has no example`);
      }
      for (const { node, segments: at } of params) {
        if (node.example === undefined) continue;
        const validate = schemaValidator([...at, 'schema']);
        assert.ok(validate(node.example), `${at.join('/')}: ${JSON.stringify(validate.errors)}`);
      }
    }
  });

  test('every operation documents the statuses the service can return', () => {
    for (const { path, method, op } of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      const codes = Object.keys(op.responses);
      const authenticated = !(Array.isArray(op.security) && op.security.length === 0);
      const expected = ['405', '500'];
      if (path.startsWith('/v1/')) expected.push('503');
      if (authenticated) expected.push('401');
      if (op.requestBody) expected.push('400', '413', '415');
      // The bulk ingest answers invalid orders line by line inside its 200.
      if (op.requestBody && op.operationId !== 'bulkPutOrders') expected.push('422');
      for (const code of expected) assert.ok(codes.includes(code), `${where}: no ${code} response`);
      assert.equal(authenticated, path.startsWith('/v1/'), `${where}: only /v1 routes need a key`);

      for (const code of codes) {
        const response = resolve(op.responses[code]);
        assert.ok(response.headers?.['X-Request-Id'], `${where} ${code}: X-Request-Id`);
        if (code === '201') assert.ok(response.headers.Location, `${where} 201: Location`);
        if (code === '204') assert.equal(response.content, undefined, `${where} 204: no body`);
        if (code[0] >= '4') {
          assert.deepEqual(Object.keys(response.content), ['application/problem+json'], `${where} ${code}: problem+json`);
        }
      }
    }
  });
});

describe('requestExamples()', () => {
  test('lists each request-body example with the path filled in', () => {
    const byId = Object.fromEntries(requestExamples().map((e) => [e.operationId, e]));
    assert.deepEqual(Object.keys(byId).sort(), ['bulkPutOrders', 'cancelMembership', 'createApiKey', 'createCouponGrant', 'createRefund', 'createShop', 'createSpend', 'createSpendRefund', 'createTopup', 'createWalletAdjustment', 'purchaseMembership', 'purchasePackage', 'putBenefit', 'putCouponPack', 'putCustomer', 'putCustomerTier', 'putMembershipPlan', 'putOrder', 'putPackagePlan', 'putRfmMap', 'putSegment', 'putTierProgramme', 'putTopupOffer', 'recordBenefitUse', 'recordOrderEvent', 'recordTraffic', 'redeemCoupon', 'redeemPackage', 'refundPackage', 'renewMembership', 'reverseRedemption', 'reviewTierProgramme', 'updateShop']);
    assert.deepEqual(byId.putCustomer, {
      operationId: 'putCustomer',
      method: 'PUT',
      pathTemplate: '/v1/customers/{id}',
      pathExample: '/v1/customers/cust-1001',
      body: byId.putCustomer.body,
    });
    assert.equal(byId.putCustomer.body.name, 'Li Wei');
    assert.equal(byId.createShop.body.timezone, 'Asia/Shanghai');
    assert.equal(byId.createShop.body.currency, 'CNY');
    assert.match(byId.updateShop.pathExample, /^\/v1\/shops\/[0-9a-f-]{36}$/);
    // examples.test.js sends the examples in document order: the refund
    // example must refund the order the putOrder example creates, in the
    // currency of the createShop example, and fit within its total.
    assert.equal(byId.createRefund.pathExample, `${byId.putOrder.pathExample}/refunds`);
    const order = byId.putOrder.body;
    assert.equal(order.currency, byId.createShop.body.currency);
    const lines = order.lines.reduce((sum, l) => sum + l.quantity * l.unit_price - (l.discount ?? 0), 0);
    assert.equal(order.total, lines + (order.shipping ?? 0) - (order.discount ?? 0), 'putOrder example: total adds up');
    for (const l of order.lines) assert.ok((l.discount ?? 0) <= l.quantity * l.unit_price, 'line discount within line amount');
    assert.ok(byId.createRefund.body.amount <= order.total, 'refund example fits the order total');
    const ops = requestExamples().map((e) => e.operationId);
    assert.ok(ops.indexOf('putOrder') < ops.indexOf('createRefund'), 'putOrder example comes before createRefund');
    // ...and the fulfilment event is recorded on that same order, after it
    // exists; no example before it cancels the order (cancel takes no body,
    // so it has no example) and the refund leaves it placed.
    assert.equal(byId.recordOrderEvent.pathExample, `${byId.putOrder.pathExample}/events`);
    assert.ok(ops.indexOf('putOrder') < ops.indexOf('recordOrderEvent'), 'putOrder example comes before recordOrderEvent');
    assert.ok(!ops.includes('cancelOrder'), 'no cancel example');
    assert.ok(byId.createRefund.body.amount < order.total, 'the refund example does not refund the order in full');
    assert.ok(Date.parse(byId.recordOrderEvent.body.at) > Date.parse(order.placed_at), 'the event happens after the order was placed');

    // The traffic example must be accepted whenever it is sent: no date in
    // the future and no (date, channel) pair twice (either gets 422).
    const pairs = byId.recordTraffic.body.days.map((d) => `${d.date} ${d.channel}`);
    assert.equal(new Set(pairs).size, pairs.length, 'traffic example: each (date, channel) once');
    for (const d of byId.recordTraffic.body.days) assert.ok(d.date <= new Date().toISOString().slice(0, 10), `traffic example: ${d.date} is in the future`);

    // The custom segment example: the filter of segments2.md, under a
    // custom code (a built-in code gets 409), so examples.test.js gets 201.
    const segmentCode = decodeURIComponent(byId.putSegment.pathExample.replace(/^\/v1\/segments\//, ''));
    assert.match(segmentCode, /^[a-z0-9-]{1,64}$/, 'putSegment example: code syntax');
    assert.ok(!['second-purchase-window', 'due-for-repurchase', 'lapsing', 'lapsed', 'vip'].includes(segmentCode), 'putSegment example: not a built-in code');
    assert.deepEqual(byId.putSegment.body.filter, {
      all: [
        { field: 'order_count', op: 'eq', value: 1 },
        { field: 'categories', op: 'contains', value: 'tea' },
        { field: 'consent', op: 'contains', value: 'email' },
        { field: 'days_since_last_order', op: 'between', value: [30, 90] },
      ],
    }, 'putSegment example: the filter of segments2.md');

    // The RFM map example is the default map of rfm.md, so examples.test.js
    // gets 200 and the map it sends is one the service accepts: the entries
    // with lapsed false cover each of the 25 cells once, the lapsed ones at
    // most once, names distinct.
    const defaultMap = [
      ['Champions', [5, 5], [4, 5]], ['Loyal', [3, 4], [4, 5]], ['Potential loyalists', [4, 5], [2, 3]],
      ['New customers', [5, 5], [1, 1]], ['Promising', [4, 4], [1, 1]], ['Need attention', [3, 3], [3, 3]],
      ['About to sleep', [3, 3], [1, 2]], ['At risk', [1, 2], [3, 4]], ["Can't lose them", [1, 2], [5, 5]],
      ['Hibernating', [1, 2], [1, 2]], ['Lost', [1, 1], [1, 2], true],
    ];
    assert.deepEqual(
      byId.putRfmMap.body.segments.map((e) => [e.name, e.r, e.f, e.lapsed ?? false]),
      defaultMap.map(([name, r, f, lapsed = false]) => [name, r, f, lapsed]),
      'putRfmMap example: the default map of rfm.md',
    );
    assert.equal(byId.putRfmMap.pathExample, '/v1/rfm/map');
    const cells = { false: new Map(), true: new Map() };
    for (const e of byId.putRfmMap.body.segments) {
      assert.ok(e.r[0] <= e.r[1] && e.f[0] <= e.f[1], `${e.name}: lo <= hi`);
      for (let r = e.r[0]; r <= e.r[1]; r++) {
        for (let f = e.f[0]; f <= e.f[1]; f++) {
          const kind = cells[e.lapsed ?? false];
          assert.ok(!kind.has(`R${r} F${f}`), `${e.name} overlaps ${kind.get(`R${r} F${f}`)} at R${r} F${f}`);
          kind.set(`R${r} F${f}`, e.name);
        }
      }
    }
    assert.equal(cells.false.size, 25, 'the entries with lapsed false cover all 25 cells');
    assert.equal(new Set(byId.putRfmMap.body.segments.map((e) => e.name)).size, defaultMap.length, 'distinct names');

    // The bulk example is NDJSON text: every line a valid order plus its id,
    // in the shop's currency, adding up, with ids no other example uses (so
    // examples.test.js gets 201 for each line, whatever the order).
    const bulk = byId.bulkPutOrders;
    assert.equal(typeof bulk.body, 'string');
    const bulkLines = bulk.body.split('\n').filter((l) => l.trim());
    assert.ok(bulkLines.length >= 2 && bulkLines.length <= 3, 'two or three orders');
    const putOrderSchema = schemaValidator(['components', 'schemas', 'OrderInput']);
    const orderId = schemaValidator(['components', 'schemas', 'OrderId']);
    const ids = new Set();
    for (const text of bulkLines) {
      const { id, ...o } = JSON.parse(text);
      assert.ok(orderId(id), `bulk example: id ${id}`);
      assert.ok(!ids.has(id), `bulk example: id ${id} twice`);
      ids.add(id);
      assert.notEqual(encodeURIComponent(id), byId.putOrder.pathExample.split('/').pop(), 'bulk example reuses the putOrder id');
      assert.ok(putOrderSchema(o), `bulk example ${id}: ${JSON.stringify(putOrderSchema.errors)}`);
      assert.equal(o.currency, byId.createShop.body.currency, `bulk example ${id}: currency`);
      const sum = o.lines.reduce((s, l) => s + l.quantity * l.unit_price - (l.discount ?? 0), 0);
      assert.equal(o.total, sum + (o.shipping ?? 0) - (o.discount ?? 0), `bulk example ${id}: total adds up`);
    }

    // Memberships (memberships1.md): the purchase example buys the plan the
    // putMembershipPlan example creates (active, sent before it) without a
    // starts_at (admin-only, must not be in the future); examples.test.js
    // sells a fresh membership for the renew and cancel examples.
    const planCode = decodeURIComponent(byId.putMembershipPlan.pathExample.replace(/^\/v1\/membership-plans\//, ''));
    assert.equal(byId.purchaseMembership.body.plan, planCode, 'purchase example: the plan of the putMembershipPlan example');
    assert.notEqual(byId.putMembershipPlan.body.active, false, 'plan example: active');
    assert.ok(ops.indexOf('putMembershipPlan') < ops.indexOf('purchaseMembership'), 'putMembershipPlan example comes before purchaseMembership');
    assert.equal(byId.purchaseMembership.body.starts_at, undefined, 'purchase example: no starts_at');
    assert.deepEqual(byId.renewMembership.body, {}, 'renew example: the empty object');
    assert.match(byId.renewMembership.pathExample, /^\/v1\/memberships\/[0-9a-f-]{36}\/renew$/);
    assert.match(byId.cancelMembership.pathExample, /^\/v1\/memberships\/[0-9a-f-]{36}\/cancel$/);

    // Wallets (balances1.md): the top-up example tops up the customer of the
    // putCustomer example with the offer the putTopupOffer example creates
    // (active, sent before it, the amount at least its min_topup), and the
    // spend example, sent after it, fits what that top-up paid in whatever
    // the consumption order.
    const offerCode = decodeURIComponent(byId.putTopupOffer.pathExample.replace(/^\/v1\/topup-offers\//, ''));
    assert.match(offerCode, /^[a-z0-9-]{1,64}$/, 'putTopupOffer example: code syntax');
    const offer = byId.putTopupOffer.body;
    const topup = byId.createTopup.body;
    const spend = byId.createSpend.body;
    assert.equal(topup.offer, offerCode, 'top-up example: the offer of the putTopupOffer example');
    assert.notEqual(offer.active, false, 'offer example: active');
    assert.notEqual(offer.limit_per_customer, 0, 'offer example: at least one top-up per customer');
    assert.ok(topup.amount >= (offer.min_topup ?? 0), 'top-up example: at least the offer\'s min_topup');
    assert.equal(byId.createTopup.pathExample, `${byId.putCustomer.pathExample}/wallet/topups`, 'top-up example: the putCustomer example\'s customer');
    assert.equal(byId.createSpend.pathExample, `${byId.putCustomer.pathExample}/wallet/spends`, 'spend example: the same customer');
    assert.ok(ops.indexOf('putCustomer') < ops.indexOf('createTopup'), 'putCustomer example comes before createTopup');
    assert.ok(ops.indexOf('putTopupOffer') < ops.indexOf('createTopup'), 'putTopupOffer example comes before createTopup');
    assert.ok(ops.indexOf('createTopup') < ops.indexOf('createSpend'), 'createTopup example comes before createSpend');
    assert.ok(spend.amount <= topup.amount, 'spend example: within the principal the top-up example pays in');

    // balances2.md: the spend refund example refunds part of that spend
    // (after it; whatever its split, any amount up to the spend's can be
    // refunded), and the adjustment example credits the same customer (a
    // positive amount never lacks funds). The top-up refund takes no body,
    // so it has no example and nothing refunds the example top-up.
    const refund = byId.createSpendRefund.body;
    const adjustment = byId.createWalletAdjustment.body;
    assert.equal(byId.createSpendRefund.pathExample, `${byId.createSpend.pathExample}/${encodeURIComponent(spend.spend_id)}/refunds`, 'refund example: the spend of the createSpend example');
    assert.ok(ops.indexOf('createSpend') < ops.indexOf('createSpendRefund'), 'createSpend example comes before createSpendRefund');
    assert.ok(refund.amount >= 1 && refund.amount <= spend.amount, 'refund example: within the spend');
    assert.notEqual(refund.refund_id, spend.spend_id, 'refund example: its own id');
    assert.ok(!ops.includes('refundTopup'), 'no top-up refund example');
    assert.equal(byId.createWalletAdjustment.pathExample, `${byId.putCustomer.pathExample}/wallet/adjustments`, 'adjustment example: the same customer');
    assert.ok(ops.indexOf('putCustomer') < ops.indexOf('createWalletAdjustment'), 'putCustomer example comes before createWalletAdjustment');
    assert.ok(adjustment.amount > 0, 'adjustment example: a credit, valid with any wallet');
  });
});

describe('matchPath()', () => {
  test('prefers literal segments over templated ones, leftmost first', () => {
    const templates = ['/a/{x}', '/a/b', '/a/{x}/c', '/a/{x}/{y}', '/{p}/b/{y}', '/f/{name}.json'];
    assert.equal(matchPath(templates, '/a/b'), '/a/b');
    assert.equal(matchPath(templates, '/a/z'), '/a/{x}');
    assert.equal(matchPath(templates, '/a/z/c'), '/a/{x}/c');
    assert.equal(matchPath(templates, '/a/z/d'), '/a/{x}/{y}');
    assert.equal(matchPath(templates, '/a/b/d'), '/a/{x}/{y}', '/a/... beats /{p}/b/...');
    assert.equal(matchPath(templates, '/f/report.json'), '/f/{name}.json');
    assert.equal(matchPath(templates, '/f/report.xml'), undefined);
    assert.equal(matchPath(templates, '/a/'), undefined, 'a template never matches an empty segment');
    assert.equal(matchPath(templates, '/a'), undefined);
  });
});

describe('validateResponse()', () => {
  const RID = '0123456789abcdef';
  const json = { 'content-type': 'application/json', 'x-request-id': RID };
  const problemHeaders = { 'content-type': 'application/problem+json', 'x-request-id': RID };
  const SHOP_ID = '6f1d3c2a-8b4e-4f7a-9c1d-2e3f4a5b6c7d';
  const shop = {
    id: SHOP_ID,
    name: 'Demo Tea House',
    currency: 'CNY',
    timezone: 'Asia/Shanghai',
    settings: {
      repurchase_rule: { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 },
      segments: {
        second_purchase_window_days: 45, due_max_factor: 3, due_min_repeat_customers: 30,
        lapsing_factor: 2, lapse_days: 365, vip_percent: 5,
      },
      rfm: { method: 'quintiles' },
      balances: { consumption_order: 'bonus_first' },
    },
    created_at: '2026-11-22T10:37:50.123456Z',
    updated_at: '2026-11-22T10:37:50Z',
  };
  const customer = {
    id: 'cust-1001',
    name: 'Li Wei',
    email: 'li.wei@example.com',
    phone: '+8613800138000',
    tags: ['vip', 'tea'],
    consent: {
      email: { granted: true, updated_at: '2026-11-20T08:30:00Z' },
      sms: { granted: false, updated_at: null },
      wechat: { granted: false, updated_at: null },
    },
    attributes: { favourite_tea: 'Longjing', nested: { a: [1, 2] } },
    facts: {
      order_count: 2,
      first_order_at: '2026-11-01T02:00:00Z',
      second_order_at: '2026-11-10T02:00:00.5Z',
      last_order_at: '2026-11-10T02:00:00.5Z',
      days_since_last_order: 12,
      total_spent: 51000,
      average_order_value: 25500,
      first_order_channel: 'web',
      first_order_categories: ['tea', 'teaware'],
      first_order_roles: ['regular'],
    },
    created_at: '2026-11-22T10:37:50.123456Z',
    updated_at: '2026-11-22T10:37:50.123456Z',
    erased_at: null,
  };
  // GET /v1/customers/{id}?include=rfm adds rfm (rfm.md); otherwise it is absent.
  const customerDetail = { ...customer, rfm: { r: 5, f: 3, m: 4, segment: 'Potential loyalists' } };
  const problem = (status, code, extra = {}) =>
    JSON.stringify({
      type: `https://rebuy.dev/problems/${code}`,
      title: 'Some title',
      status,
      detail: 'Some detail',
      code,
      request_id: RID,
      ...extra,
    });
  const violation = { message: /contract violation/ };

  test('accepts a valid body (plain-object headers, query string, charset parameter)', () => {
    assert.equal(
      validateResponse({
        method: 'get',
        path: `/v1/shops/${SHOP_ID}?unused=1`,
        status: 200,
        headers: { 'Content-Type': 'application/json; charset=utf-8', 'X-Request-Id': RID },
        body: JSON.stringify(shop),
      }),
      undefined,
    );
  });

  test('accepts fetch Headers and nullable / erased customers', () => {
    const erased = {
      ...customerDetail,
      name: null,
      email: null,
      phone: null,
      tags: [],
      attributes: {},
      rfm: null,
      erased_at: '2026-11-23T01:02:03.5Z',
    };
    for (const c of [customerDetail, erased]) {
      validateResponse({
        method: 'GET',
        path: '/v1/customers/cust-1001',
        status: 200,
        headers: new Headers(json),
        body: JSON.stringify(c),
      });
    }
    validateResponse({
      method: 'GET',
      path: '/v1/customers?limit=2&consent=email',
      status: 200,
      headers: json,
      body: JSON.stringify({ items: [customer], next_cursor: null }),
    });
  });

  test('rejects an undocumented field', () => {
    assert.throws(
      () =>
        validateResponse({
          method: 'GET',
          path: `/v1/shops/${SHOP_ID}`,
          status: 200,
          headers: json,
          body: JSON.stringify({ ...shop, owner: 'x' }),
        }),
      /must NOT have additional properties \(owner\)/,
    );
  });

  test('rejects schema violations in nested objects', () => {
    const bad = { ...customerDetail, consent: { ...customer.consent, sms: { granted: 'no', updated_at: null } } };
    assert.throws(
      () => validateResponse({ method: 'GET', path: '/v1/customers/c1', status: 200, headers: json, body: JSON.stringify(bad) }),
      /\/consent\/sms\/granted must be boolean/,
    );
    const noOffset = { ...shop, created_at: '2026-11-22T10:37:50' };
    assert.throws(
      () => validateResponse({ method: 'GET', path: `/v1/shops/${SHOP_ID}`, status: 200, headers: json, body: JSON.stringify(noOffset) }),
      /\/created_at/,
    );
  });

  test('rejects an undocumented status', () => {
    assert.throws(
      () => validateResponse({ method: 'GET', path: `/v1/shops/${SHOP_ID}`, status: 418, headers: problemHeaders, body: problem(418, 'internal_error') }),
      /status is not documented/,
    );
    // Documented elsewhere, but not for this operation (GET shop is allowed for every scope).
    assert.throws(
      () => validateResponse({ method: 'GET', path: `/v1/shops/${SHOP_ID}`, status: 403, headers: problemHeaders, body: problem(403, 'forbidden') }),
      /status is not documented/,
    );
  });

  test('rejects a wrong content type', () => {
    assert.throws(
      () =>
        validateResponse({
          method: 'GET',
          path: '/v1/customers/nope',
          status: 404,
          headers: json, // problems must be application/problem+json
          body: problem(404, 'not_found'),
        }),
      /Content-Type "application\/json" is not documented/,
    );
    assert.throws(
      () => validateResponse({ method: 'GET', path: '/healthz', status: 200, headers: { 'x-request-id': RID }, body: '{"status":"ok"}' }),
      /Content-Type header is missing/,
    );
  });

  test('rejects undocumented paths and methods', () => {
    assert.throws(
      () => validateResponse({ method: 'GET', path: '/v1/shop', status: 200, headers: json, body: '{}' }),
      /path is not documented/,
    );
    assert.throws(
      () => validateResponse({ method: 'PATCH', path: '/v1/customers/c1', status: 200, headers: json, body: '{}' }),
      /method is not documented/,
    );
  });

  test('rejects missing required headers', () => {
    assert.throws(
      () => validateResponse({ method: 'GET', path: '/healthz', status: 200, headers: { 'content-type': 'application/json' }, body: '{"status":"ok"}' }),
      /required header X-Request-Id is missing/,
    );
    assert.throws(
      () => validateResponse({ method: 'GET', path: '/v1/api-keys', status: 401, headers: problemHeaders, body: problem(401, 'unauthenticated') }),
      /required header WWW-Authenticate is missing/,
    );
    validateResponse({
      method: 'GET',
      path: '/v1/api-keys',
      status: 401,
      headers: { ...problemHeaders, 'www-authenticate': 'Bearer' },
      body: problem(401, 'unauthenticated'),
    });
  });

  test('checks header values against their schemas', () => {
    assert.throws(
      () =>
        validateResponse({
          method: 'GET',
          path: '/healthz',
          status: 200,
          headers: { ...json, 'x-request-id': 'not-hex' },
          body: '{"status":"ok"}',
        }),
      /header X-Request-Id/,
    );
    const headers = { ...problemHeaders, 'retry-after': '1' };
    validateResponse({ method: 'GET', path: '/v1/customers', status: 503, headers, body: problem(503, 'database_unavailable') });
    assert.throws(
      () =>
        validateResponse({
          method: 'GET',
          path: '/v1/customers',
          status: 503,
          headers: { ...headers, 'retry-after': 'soon' },
          body: problem(503, 'database_unavailable'),
        }),
      /header Retry-After/,
    );
  });

  test('204 must have an empty body', () => {
    const args = { method: 'DELETE', path: '/v1/customers/cust-1001', status: 204, headers: { 'x-request-id': RID } };
    assert.equal(validateResponse({ ...args, body: '' }), undefined);
    assert.throws(() => validateResponse({ ...args, body: '{}' }), /documents no body/);
  });

  test('text/plain responses only have their content type checked', () => {
    const args = { method: 'GET', path: '/metrics', status: 200, body: '# HELP x\nx 1\n' };
    validateResponse({ ...args, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'x-request-id': RID } });
    assert.throws(() => validateResponse({ ...args, headers: { 'content-type': 'application/json', 'x-request-id': RID } }), violation);
  });

  test('problem documents: code per status, type, status and request_id consistency', () => {
    const args = { method: 'GET', path: '/v1/customers/c1', status: 404, headers: problemHeaders };
    validateResponse({ ...args, body: problem(404, 'not_found') });
    validateResponse({ ...args, body: problem(404, 'not_found', { pointer: '/path/id' }) });
    assert.throws(() => validateResponse({ ...args, body: problem(404, 'forbidden') }), /\/code/);
    assert.throws(() => validateResponse({ ...args, body: problem(404, 'not_found', { status: 400 }) }), /\/status/);
    assert.throws(() => validateResponse({ ...args, body: problem(404, 'not_found', { instance: '/x' }) }), /additional properties/);
    assert.throws(
      () => validateResponse({ ...args, body: problem(404, 'not_found', { type: 'https://rebuy.dev/problems/gone' }) }),
      /problem type/,
    );
    assert.throws(
      () => validateResponse({ ...args, body: problem(404, 'not_found', { request_id: 'fedcba9876543210' }) }),
      /differs from X-Request-Id/,
    );
    assert.throws(() => validateResponse({ ...args, body: '<html>' }), /not valid JSON/);
  });

  test('405 for an undocumented method: Allow must list the documented methods', () => {
    const args = { method: 'POST', path: '/v1/customers/c1', status: 405, body: problem(405, 'method_not_allowed') };
    validateResponse({ ...args, headers: { ...problemHeaders, allow: 'GET, PUT, DELETE' } });
    assert.throws(() => validateResponse({ ...args, headers: { ...problemHeaders, allow: 'GET, PUT' } }), /Allow header/);
    assert.throws(() => validateResponse({ ...args, headers: problemHeaders }), /Allow header/);
    // A 405 for a method the path does support is a bug.
    assert.throws(
      () => validateResponse({ ...args, method: 'GET', headers: { ...problemHeaders, allow: 'GET, PUT, DELETE' } }),
      /405 for a method the path documents/,
    );
  });

  test('created shop: Location required, key optional (replay), admin scope only', () => {
    const created = {
      shop,
      admin_key: {
        id: '0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b',
        name: 'admin',
        scope: 'admin',
        prefix: 'rb_k3j4h5g6',
        created_at: '2026-11-22T10:37:50.123456Z',
        revoked_at: null,
        key: 'rb_k3j4h5g6_' + 'A1b2C3d4E5'.repeat(4) + 'xyz',
      },
    };
    const headers = { ...json, location: `/v1/shops/${SHOP_ID}` };
    const args = { method: 'POST', path: '/v1/shops', status: 201, headers };
    validateResponse({ ...args, body: JSON.stringify(created) });
    const { key, ...withoutKey } = created.admin_key;
    assert.ok(key);
    validateResponse({
      ...args,
      headers: { ...headers, 'idempotent-replayed': 'true' },
      body: JSON.stringify({ ...created, admin_key: withoutKey }),
    });
    assert.throws(
      () => validateResponse({ ...args, body: JSON.stringify({ ...created, admin_key: { ...created.admin_key, scope: 'readonly' } }) }),
      /\/admin_key\/scope/,
    );
    assert.throws(() => validateResponse({ ...args, headers: json, body: JSON.stringify(created) }), /Location is missing/);
  });
  test('orders, refunds and facts', () => {
    const order = {
      id: 'ord-1',
      customer_id: 'cust-1001',
      placed_at: '2026-11-01T02:00:00Z',
      channel: 'web',
      currency: 'CNY',
      lines: [{ sku: 'TEA-LJ-250', name: null, category: 'tea', role: 'regular', quantity: 2, unit_price: 12800, discount: 0, line_total: 25600 }],
      shipping: 1000,
      discount: 600,
      total: 26000,
      status: 'placed',
      cancelled_at: null,
      refunded_amount: 500,
      refunds: [{ id: 'rf-1', amount: 500, reason: null, created_at: '2026-11-02T02:00:00Z' }],
      qualifying: true,
      fulfilment: { shipped_at: '2026-11-01T08:45:00Z', delivered_at: null, completed_at: null },
      created_at: '2026-11-22T10:37:50.123456Z',
    };
    const args = { method: 'GET', path: '/v1/orders/ord-1', status: 200, headers: json };
    validateResponse({ ...args, body: JSON.stringify(order) });
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify({ ...order, status: 'refunded' }) }), /\/status/);
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify({ ...order, updated_at: order.created_at }) }), /additional properties/);
    const { qualifying, ...noQualifying } = order;
    assert.equal(qualifying, true);
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify(noQualifying) }), /qualifying/);
    const { fulfilment, ...noFulfilment } = order;
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify(noFulfilment) }), /fulfilment/);
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify({ ...order, fulfilment: { ...fulfilment, returned_at: null } }) }), /additional properties/);
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify({ ...order, fulfilment: { shipped_at: null, delivered_at: null } }) }), /completed_at/);
    assert.throws(() => validateResponse({ ...args, body: JSON.stringify({ ...order, fulfilment: { ...fulfilment, shipped_at: '2026-11-01T16:45:00+08:00' } }) }), /shipped_at/);

    const event = { method: 'POST', path: '/v1/orders/ord-1/events', headers: json };
    validateResponse({ ...event, status: 200, body: JSON.stringify(order) });
    validateResponse({ ...event, status: 200, headers: { ...json, 'idempotent-replayed': 'true' }, body: JSON.stringify(order) });
    validateResponse({ ...event, status: 409, headers: problemHeaders, body: problem(409, 'order_cancelled') });
    assert.throws(() => validateResponse({ ...event, status: 409, headers: problemHeaders, body: problem(409, 'order_conflict') }), /\/code/);
    assert.throws(() => validateResponse({ ...event, status: 201, body: JSON.stringify(order) }), /status is not documented/);

    const lists = [
      { method: 'GET', path: '/v1/orders?limit=2&status=placed&placed_after=2026-11-01T00:00:00Z', headers: json },
      { method: 'GET', path: '/v1/customers/cust-1001/orders?limit=2', headers: json },
    ];
    for (const l of lists) {
      validateResponse({ ...l, status: 200, body: JSON.stringify({ items: [order], next_cursor: 'abc' }) });
      validateResponse({ ...l, status: 200, body: JSON.stringify({ items: [], next_cursor: null }) });
      assert.throws(() => validateResponse({ ...l, status: 200, body: JSON.stringify({ items: [order] }) }), /next_cursor/);
      assert.throws(() => validateResponse({ ...l, status: 200, body: JSON.stringify({ items: [noFulfilment], next_cursor: null }) }), /fulfilment/);
      validateResponse({ ...l, status: 400, headers: problemHeaders, body: problem(400, 'invalid_parameter', { pointer: '/query/limit' }) });
    }
    assert.throws(
      () => validateResponse({ ...lists[0], status: 404, headers: problemHeaders, body: problem(404, 'not_found') }),
      /status is not documented/,
      'listing orders never answers 404',
    );
    validateResponse({ ...lists[1], status: 404, headers: problemHeaders, body: problem(404, 'not_found') });
    validateResponse({ ...lists[1], status: 403, headers: problemHeaders, body: problem(403, 'forbidden') });
    const put405 = { method: 'PUT', path: '/v1/orders', status: 405, body: problem(405, 'method_not_allowed') };
    validateResponse({ ...put405, headers: { ...problemHeaders, allow: 'GET' } });
    assert.throws(() => validateResponse({ ...put405, headers: { ...problemHeaders, allow: 'GET, PUT' } }), /Allow header/);

    const put = { method: 'PUT', path: '/v1/orders/ord-1', status: 201, body: JSON.stringify(order) };
    validateResponse({ ...put, headers: { ...json, location: '/v1/orders/ord-1' } });
    assert.throws(() => validateResponse({ ...put, headers: json }), /Location is missing/);
    const conflict = { method: 'PUT', path: '/v1/orders/ord-1', status: 409, headers: problemHeaders };
    validateResponse({ ...conflict, body: problem(409, 'order_conflict') });
    assert.throws(() => validateResponse({ ...conflict, body: problem(409, 'refund_conflict') }), /\/code/);

    const refund = { method: 'POST', path: '/v1/orders/ord-1/refunds', headers: { ...json, location: '/v1/orders/ord-1' } };
    const result = JSON.stringify({ refund: order.refunds[0], order });
    validateResponse({ ...refund, status: 201, body: result });
    validateResponse({ ...refund, status: 200, headers: json, body: result });
    validateResponse({ ...refund, status: 409, headers: problemHeaders, body: problem(409, 'refund_conflict') });
    assert.throws(() => validateResponse({ ...refund, status: 201, body: JSON.stringify({ refund: order.refunds[0] }) }), /order/);

    const cancel = { method: 'POST', path: '/v1/orders/ord-1/cancel', headers: json };
    validateResponse({ ...cancel, status: 200, body: JSON.stringify({ ...order, status: 'cancelled', cancelled_at: '2026-11-03T00:00:00Z' }) });
    assert.throws(() => validateResponse({ ...cancel, status: 201, body: JSON.stringify(order) }), /status is not documented/);

    const c = { method: 'GET', path: '/v1/customers/cust-1001', status: 200, headers: json };
    const { facts, ...noFacts } = customerDetail;
    assert.throws(() => validateResponse({ ...c, body: JSON.stringify(noFacts) }), /facts/);
    const none = {
      order_count: 0, first_order_at: null, second_order_at: null, last_order_at: null, days_since_last_order: null,
      total_spent: 0, average_order_value: null, first_order_channel: null, first_order_categories: [], first_order_roles: [],
    };
    validateResponse({ ...c, body: JSON.stringify({ ...customerDetail, facts: none, rfm: null }) });
    assert.throws(() => validateResponse({ ...c, body: JSON.stringify({ ...customerDetail, facts: { ...facts, first_order_roles: ['gift'] } }) }), /first_order_roles/);
    const { average_order_value: _, ...noAov } = facts;
    assert.throws(() => validateResponse({ ...c, body: JSON.stringify({ ...customerDetail, facts: noAov }) }), /average_order_value/);

    const s = { method: 'GET', path: `/v1/shops/${SHOP_ID}`, status: 200, headers: json };
    const { settings, ...noSettings } = shop;
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify(noSettings) }), /settings/);
    assert.throws(
      () => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, repurchase_rule: { ...settings.repurchase_rule, merge_window_hours: null } } }) }),
      /merge_window_hours/,
    );
    // settings.segments: all six values, always (defaults filled in), in range.
    const { segments, ...noSegments } = settings;
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: noSegments }) }), /segments/, 'segments is always shown');
    for (const name of Object.keys(segments)) {
      const { [name]: _, ...without } = segments;
      assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, segments: without } }) }), new RegExp(name), `${name} is always shown`);
    }
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, segments: { ...segments, vip_percent: 51 } } }) }), /vip_percent/, 'vip_percent at most 50');
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, segments: { ...segments, due_max_factor: 1 } } }) }), /due_max_factor/, 'due_max_factor at least 2');
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, segments: { ...segments, lapse_days: null } } }) }), /lapse_days/, 'never null');
    assert.throws(() => validateResponse({ ...s, body: JSON.stringify({ ...shop, settings: { ...settings, segments: { ...segments, extra: 1 } } }) }), /additional properties/, 'no other setting');
    const patched = { method: 'PATCH', path: `/v1/shops/${SHOP_ID}`, headers: json };
    validateResponse({ ...patched, status: 200, body: JSON.stringify({ ...shop, settings: { ...settings, segments: { ...segments, lapse_days: 180 } } }) });
    validateResponse({ ...patched, status: 422, headers: problemHeaders, body: problem(422, 'validation_failed', { pointer: '/settings/segments/lapse_days' }) });
  });

  test('metrics: definitions, rates, series and Kaplan–Meier groups', () => {
    const rule = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };
    const definition = { timezone: 'Asia/Shanghai', from: '2025-01-01', to: '2025-03-31', as_of: '2025-12-31', rule, channel: 'tmall' };
    const rate = (numerator, denominator, r) => ({ numerator, denominator, rate: r, description: 'Some sentence.' });
    const rep = {
      definition: { ...definition, window_days: 90 },
      returning_customer_rate: rate(3, 10, 0.3),
      in_period_repeat_rate: rate(2, 10, 0.2),
      n_day_repurchase_rate: { ...rate(1, 4, 0.25), censored: 2, mode: 'hybrid' },
    };
    const r = { method: 'GET', path: '/v1/metrics/repurchase?from=2025-01-01&to=2025-03-31&as_of=2025-12-31', status: 200, headers: json };
    const ok = (body) => validateResponse({ ...r, body: JSON.stringify(body) });
    const bad = (body, re, what) => assert.throws(() => validateResponse({ ...r, body: JSON.stringify(body) }), re, what);
    ok(rep);
    ok({ ...rep, definition: { ...rep.definition, channel: null } });
    ok({ ...rep, n_day_repurchase_rate: { ...rate(0, 0, null), censored: 0, mode: null } });
    const bucket = {
      from: '2025-01-01', to: '2025-01-05',
      returning_customer_rate: { numerator: 0, denominator: 0, rate: null },
      in_period_repeat_rate: { numerator: 0, denominator: 0, rate: null },
      n_day_repurchase_rate: { numerator: 0, denominator: 0, rate: null, censored: 0 },
    };
    ok({ ...rep, series: [bucket] });
    bad({ ...rep, series: [{ ...bucket, returning_customer_rate: rate(0, 0, null) }] }, /additional properties/, 'no description in buckets');
    bad({ ...rep, series: [{ ...bucket, n_day_repurchase_rate: { numerator: 0, denominator: 0, rate: null } }] }, /censored/, 'bucket n-day needs censored');
    bad({ ...rep, definition }, /window_days/, 'window_days in the repurchase definition');
    bad({ ...rep, definition: { ...rep.definition, from: '2025-02-30' } }, /\/definition\/from/, 'a real calendar date');
    bad({ ...rep, definition: { ...rep.definition, as_of: '2025-12-31T00:00:00Z' } }, /\/definition\/as_of/, 'a date, not a timestamp');
    bad({ ...rep, n_day_repurchase_rate: { ...rep.n_day_repurchase_rate, mode: 'retention' } }, /mode/, 'mode enum');
    const { mode: _m, ...noMode } = rep.n_day_repurchase_rate;
    bad({ ...rep, n_day_repurchase_rate: noMode }, /mode/, 'mode is required (null when no rate)');
    bad({ ...rep, returning_customer_rate: { ...rep.returning_customer_rate, rate: 1.5 } }, /rate/, 'rates are at most 1');
    bad({ ...rep, in_period_repeat_rate: { ...rep.in_period_repeat_rate, description: '' } }, /description/, 'non-empty description');
    const { in_period_repeat_rate: _i, ...noInPeriod } = rep;
    bad(noInPeriod, /in_period_repeat_rate/, 'every rate is required');
    validateResponse({ ...r, status: 400, headers: problemHeaders, body: problem(400, 'invalid_parameter', { pointer: '/query/window_days' }) });
    validateResponse({ ...r, status: 403, headers: problemHeaders, body: problem(403, 'forbidden') });
    assert.throws(() => validateResponse({ ...r, status: 404, headers: problemHeaders, body: problem(404, 'not_found') }), /status is not documented/, 'no 404');

    const group = {
      customers: 3, repeat_customers: 2, repeat_share: 0.6667,
      days: { p25: 0, median: 0, p75: 10, p90: 10 },
      kaplan_meier: {
        median_days: 0,
        curve: [
          { day: 0, at_risk: 3, events: 1, censored: 0, survival: 0.6667 },
          { day: 10, at_risk: 2, events: 1, censored: 1, survival: 0.3333 },
        ],
      },
    };
    const none = { customers: 0, repeat_customers: 0, repeat_share: null, days: { p25: null, median: null, p75: null, p90: null }, kaplan_meier: { median_days: null, curve: [] } };
    const t = { method: 'GET', path: '/v1/metrics/time-to-second-purchase?category=tea', status: 200, headers: json };
    const tok = (body) => validateResponse({ ...t, body: JSON.stringify(body) });
    const tbad = (body, re, what) => assert.throws(() => validateResponse({ ...t, body: JSON.stringify(body) }), re, what);
    tok({ definition, overall: group, categories: [{ ...group, category: 'tea' }] });
    tok({ definition: { ...definition, channel: null }, overall: none, categories: [] });
    tbad({ definition: { ...definition, window_days: 90 }, overall: group, categories: [] }, /additional properties/, 'no window_days here');
    tbad({ definition, overall: { ...group, category: 'tea' }, categories: [] }, /additional properties/, 'overall has no category');
    tbad({ definition, overall: group, categories: [group] }, /category/, 'a category group names its category');
    tbad({ definition, overall: group, categories: [{ ...none, category: 'tea' }] }, /customers/, 'a listed category has cohort customers');
    tbad({ definition, overall: { ...group, days: { ...group.days, p50: 0 } }, categories: [] }, /additional properties/, 'median, not p50');
    tbad({ definition, overall: { ...group, days: { ...group.days, median: 1.5 } }, categories: [] }, /median/, 'whole days');
    const point = group.kaplan_meier.curve[0];
    const { censored: _c, ...noCensored } = point;
    tbad({ definition, overall: { ...group, kaplan_meier: { ...group.kaplan_meier, curve: [noCensored] } }, categories: [] }, /censored/, 'censored per point');
    tbad({ definition, overall: { ...group, kaplan_meier: { ...group.kaplan_meier, curve: [{ ...point, survival: null }] } }, categories: [] }, /survival/, 'survival is a number');
    tbad({ definition, overall: { ...group, kaplan_meier: { curve: group.kaplan_meier.curve } }, categories: [] }, /median_days/, 'median_days is required');
  });

  test('metrics slice 2: cohorts, revenue mix, first order, sales decomposition', () => {
    const rule = { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 };
    const common = { timezone: 'Asia/Shanghai', from: '2025-01-01', to: '2025-03-31', as_of: '2025-12-31', rule, channel: 'tmall' };
    const money = { ...common, currency: 'CNY' };
    const check = (path) => {
      const r = { method: 'GET', path, status: 200, headers: json };
      return {
        ok: (body) => validateResponse({ ...r, body: JSON.stringify(body) }),
        bad: (body, re, what) => assert.throws(() => validateResponse({ ...r, body: JSON.stringify(body) }), re, what),
        problems: () => {
          validateResponse({ ...r, status: 400, headers: problemHeaders, body: problem(400, 'invalid_parameter', { pointer: '/query/from' }) });
          validateResponse({ ...r, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
          validateResponse({ ...r, status: 403, headers: problemHeaders, body: problem(403, 'forbidden') });
          assert.throws(() => validateResponse({ ...r, status: 404, headers: problemHeaders, body: problem(404, 'not_found') }), /status is not documented/, `${path}: no 404`);
          validateResponse({ method: 'POST', path, status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });
        },
      };
    };

    // Cohorts.
    const c = check('/v1/metrics/cohorts?interval=month&periods=12');
    const cell = (period, from, to, complete, customers, share, orders, revenue) => ({ period, from, to, complete, customers, share, orders, revenue });
    const cohort = {
      from: '2025-01-01', to: '2025-01-31', customers: 120,
      periods: [cell(0, '2025-01-01', '2025-01-31', true, 120, 1, 130, 1234500), cell(1, '2025-02-01', '2025-02-28', true, 30, 0.25, 31, 400000)],
    };
    const empty = { from: '2025-02-01', to: '2025-02-28', customers: 0, periods: [cell(0, '2025-02-01', '2025-02-28', true, 0, null, 0, 0)] };
    const cdef = { ...money, interval: 'month', periods: 12 };
    c.ok({ definition: cdef, cohorts: [cohort, empty], description: 'd' });
    c.ok({ definition: { ...cdef, channel: null, interval: 'week', periods: null }, cohorts: [empty], description: 'd' });
    c.problems();
    c.bad({ definition: money, cohorts: [cohort], description: 'd' }, /interval/, 'interval and periods in the definition');
    c.bad({ definition: { ...cdef, interval: 'day' }, cohorts: [cohort], description: 'd' }, /interval/, 'interval enum');
    c.bad({ definition: { ...cdef, periods: 0 }, cohorts: [cohort], description: 'd' }, /periods/, 'periods at least 1');
    const { currency: _cur, ...noCurrency } = cdef;
    c.bad({ definition: noCurrency, cohorts: [cohort], description: 'd' }, /currency/, 'money endpoints name the currency');
    c.bad({ definition: { ...cdef, currency: 'cny' }, cohorts: [cohort], description: 'd' }, /currency/, 'ISO 4217 code');
    c.bad({ definition: cdef, cohorts: [], description: 'd' }, /cohorts/, 'every bucket is a cohort, so at least one');
    c.bad({ definition: cdef, cohorts: [{ ...cohort, periods: [] }], description: 'd' }, /periods/, 'period 0 is always listed');
    c.bad({ definition: cdef, cohorts: [{ ...cohort, periods: [{ ...cohort.periods[0], complete: 'yes' }] }], description: 'd' }, /complete/, 'complete is a boolean');
    c.bad({ definition: cdef, cohorts: [{ ...cohort, periods: [{ ...cohort.periods[0], revenue: null }] }], description: 'd' }, /revenue/, 'revenue is 0, not null, when empty');
    c.bad({ definition: cdef, cohorts: [{ ...cohort, periods: [{ ...cohort.periods[0], share: 1.01 }] }], description: 'd' }, /share/, 'share at most 1');
    const { orders: _o, ...noOrders } = cohort.periods[0];
    c.bad({ definition: cdef, cohorts: [{ ...cohort, periods: [noOrders] }], description: 'd' }, /orders/, 'orders per cell');

    // Revenue mix.
    const m = check('/v1/metrics/revenue-mix?interval=week');
    const figures = {
      revenue: 900000, orders: 75, customers: 60,
      first_orders: { orders: 50, revenue: 500000, average_order_value: 10000 },
      repeat_orders: { orders: 25, revenue: 400000, average_order_value: 16000 },
      new_customers: 50, returning_customers: 15,
      returning_customer_revenue_share: 0.4444, average_order_value: 12000, orders_per_customer: 1.25,
      days_between_orders: { average: 41.5, intervals: 20, total_days: 830 },
    };
    const none = {
      revenue: 0, orders: 0, customers: 0,
      first_orders: { orders: 0, revenue: 0, average_order_value: null },
      repeat_orders: { orders: 0, revenue: 0, average_order_value: null },
      new_customers: 0, returning_customers: 0,
      returning_customer_revenue_share: null, average_order_value: null, orders_per_customer: null,
      days_between_orders: { average: null, intervals: 0, total_days: 0 },
    };
    const mix = { definition: money, ...figures, description: 'Some sentence.' };
    m.ok(mix);
    m.ok({ ...mix, ...none, definition: { ...money, channel: null } });
    m.ok({ ...mix, series: [{ from: '2025-01-01', to: '2025-01-05', ...none }, { from: '2025-01-06', to: '2025-01-12', ...figures }] });
    m.problems();
    m.bad({ ...mix, definition: common }, /currency/, 'money endpoints name the currency');
    m.bad({ ...mix, series: [{ from: '2025-01-01', to: '2025-01-05', ...none, description: 'x' }] }, /additional properties/, 'no description in buckets');
    m.bad({ ...mix, series: [{ from: '2025-01-01', ...none }] }, /\bto\b/, 'a bucket has its dates');
    m.bad({ ...mix, series: [] }, /series/, 'no empty series');
    m.bad({ ...mix, description: '' }, /description/, 'non-empty description');
    m.bad({ ...mix, average_order_value: 12000.5 }, /average_order_value/, 'money is whole minor units');
    m.bad({ ...mix, first_orders: { orders: 50, revenue: 500000 } }, /average_order_value/, 'first_orders has its average');
    m.bad({ ...mix, days_between_orders: { average: 41.5, intervals: 20 } }, /total_days/, 'total_days is required');
    m.bad({ ...mix, returning_customer_revenue_share: 1.2 }, /returning_customer_revenue_share/, 'a share is at most 1');
    m.ok({ ...mix, orders_per_customer: 3.5, days_between_orders: { average: 120.25, intervals: 4, total_days: 481 } });
    const { new_customers: _n, ...noNew } = mix;
    m.bad(noNew, /new_customers/, 'every figure is required');

    // First order.
    const f = check('/v1/metrics/first-order?window_days=30');
    const nday = { numerator: 1, denominator: 4, rate: 0.25, censored: 2 };
    const group = { customers: 6, repeat_customers: 3, repeat_share: 0.5, n_day_repurchase_rate: nday };
    const zero = { customers: 0, repeat_customers: 0, repeat_share: null, n_day_repurchase_rate: { numerator: 0, denominator: 0, rate: null, censored: 0 } };
    const fdef = { ...common, channel: null, window_days: 30 };
    const roles = [{ ...group, role: 'traffic' }, { ...zero, role: 'activity' }, { ...group, role: 'regular' }];
    const fo = { definition: fdef, overall: group, by_role: roles, by_channel: [{ ...group, channel: 'tmall' }, { ...group, channel: 'web' }], description: 'Some sentence.' };
    f.ok(fo);
    f.ok({ ...fo, overall: zero, by_role: roles.map((r) => ({ ...zero, role: r.role })), by_channel: [] });
    f.problems();
    f.bad({ ...fo, definition: { ...fdef, channel: 'tmall' } }, /channel/, 'no channel filter here');
    const { window_days: _w, ...noWindow } = fdef;
    f.bad({ ...fo, definition: noWindow }, /window_days/, 'window_days in the definition');
    f.bad({ ...fo, definition: { ...fdef, currency: 'CNY' } }, /additional properties/, 'no money here, no currency');
    f.bad({ ...fo, by_role: roles.slice(0, 2) }, /by_role/, 'always three roles');
    f.bad({ ...fo, by_role: [roles[1], roles[0], roles[2]] }, /role/, 'in the order traffic, activity, regular');
    f.bad({ ...fo, by_role: [...roles, { ...group, role: 'regular' }] }, /by_role/, 'no fourth role');
    f.bad({ ...fo, by_role: roles.map(({ role: _r, ...g }) => g) }, /role/, 'a role group names its role');
    f.bad({ ...fo, by_channel: [group] }, /channel/, 'a channel group names its channel');
    f.bad({ ...fo, by_channel: [{ ...zero, channel: 'web' }] }, /customers/, 'a listed channel has cohort customers');
    f.bad({ ...fo, overall: { ...group, role: 'traffic' } }, /additional properties/, 'overall has no role');
    f.bad({ ...fo, overall: { ...group, n_day_repurchase_rate: { ...nday, mode: 'hybrid' } } }, /additional properties/, 'no mode in the groups');
    f.bad({ ...fo, overall: { ...group, n_day_repurchase_rate: { numerator: 1, denominator: 4, rate: 0.25 } } }, /censored/, 'censored per group');
    const { description: _d, ...noDescription } = fo;
    f.bad(noDescription, /description/, 'description is required');

    // Sales decomposition.
    const s = check('/v1/metrics/sales-decomposition?channel=web');
    const sales = {
      sales: 900000, visitors: 30000, sessions: 41000, traffic_days: 31, buyers: 60,
      conversion_rate: 0.002, orders: 75, average_order_value: 12000, repurchase_rate: 0.25,
    };
    const noTraffic = { sales: 0, visitors: null, sessions: null, traffic_days: 0, buyers: 0, conversion_rate: null, orders: 0, average_order_value: null, repurchase_rate: null };
    const sd = { definition: money, ...sales, description: 'Some sentence.' };
    s.ok(sd);
    s.ok({ ...sd, ...noTraffic });
    s.ok({ ...sd, visitors: 10, conversion_rate: 6, repurchase_rate: 1.5 });
    s.ok({ ...sd, series: [{ from: '2025-01-01', to: '2025-01-31', ...sales }, { from: '2025-02-01', to: '2025-02-28', ...noTraffic }] });
    s.problems();
    s.bad({ ...sd, definition: { ...money, window_days: 90 } }, /additional properties/, 'no window_days here');
    s.bad({ ...sd, series: [{ from: '2025-01-01', to: '2025-01-31', ...sales, description: 'x' }] }, /additional properties/, 'no description in buckets');
    s.bad({ ...sd, visitors: -1 }, /visitors/, 'visitors are not negative');
    s.bad({ ...sd, average_order_value: 0.5 }, /average_order_value/, 'money is whole minor units');
    s.bad({ ...sd, traffic_days: null }, /traffic_days/, 'traffic_days is 0, not null');
    const { sessions: _s, ...noSessions } = sd;
    s.bad(noSessions, /sessions/, 'sessions is required (null without traffic)');
  });

  test('segments: the five built-ins and the custom ones, one segment, its members', () => {
    // Matches the schema errors only, not the body the message quotes.
    const errorsMatch = (re) => (e) => re.test(e.message.split('\n  body: ')[0]);
    const check = (path, { notFound, allow = 'GET', vary = false }) => {
      // GET /v1/segments/{code}/customers negotiates (export.md): its 200 carries Vary: Accept.
      const r = { method: 'GET', path, status: 200, headers: vary ? { ...json, vary: 'Accept' } : json };
      return {
        ok: (body) => validateResponse({ ...r, body: JSON.stringify(body) }),
        bad: (body, re, what) => assert.throws(() => validateResponse({ ...r, body: JSON.stringify(body) }), errorsMatch(re), what),
        problems: (pointer) => {
          validateResponse({ ...r, status: 400, headers: problemHeaders, body: problem(400, 'invalid_parameter', { pointer }) });
          validateResponse({ ...r, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
          validateResponse({ ...r, status: 403, headers: problemHeaders, body: problem(403, 'forbidden') });
          validateResponse({ ...r, status: 500, headers: problemHeaders, body: problem(500, 'internal_error') });
          validateResponse({ ...r, status: 503, headers: { ...problemHeaders, 'retry-after': '1' }, body: problem(503, 'database_unavailable') });
          const nf = () => validateResponse({ ...r, status: 404, headers: problemHeaders, body: problem(404, 'not_found') });
          if (notFound) nf();
          else assert.throws(nf, /status is not documented/, `${path}: no 404`);
          assert.throws(() => validateResponse({ ...r, status: 422, headers: problemHeaders, body: problem(422, 'validation_failed') }), /status is not documented/, `${path}: no 422`);
          validateResponse({ method: 'POST', path, status: 405, headers: { ...problemHeaders, allow }, body: problem(405, 'method_not_allowed') });
          assert.throws(() => validateResponse({ method: 'POST', path, status: 405, headers: { ...problemHeaders, allow: `${allow}, POST` }, body: problem(405, 'method_not_allowed') }), /Allow header/);
        },
      };
    };
    const seg = (code, name, parameters, size) => ({
      code, kind: 'built-in', name, description: 'Some sentence.', parameters, size, as_of: '2026-11-22',
    });
    const five = [
      seg('second-purchase-window', 'Second purchase window', { second_purchase_window_days: 45 }, 120),
      seg('due-for-repurchase', 'Due for repurchase', { due_max_factor: 3, due_min_repeat_customers: 30 }, 40),
      seg('lapsing', 'Lapsing', { lapsing_factor: 2 }, 75),
      seg('lapsed', 'Lapsed', { lapse_days: 365 }, 1234),
      seg('vip', 'VIP', { vip_percent: 5 }, 0),
    ];
    const [spw, due, lapsing, lapsed, vip] = five;
    const filter = {
      all: [
        { field: 'order_count', op: 'eq', value: 1 },
        { field: 'categories', op: 'contains', value: 'tea' },
        { field: 'days_since_last_order', op: 'between', value: [30, 90] },
      ],
    };
    const custom = (code, extra = {}) => ({
      code, kind: 'custom', name: 'Tea lovers', description: null, filter, size: 12, as_of: '2026-11-22',
      created_at: '2026-11-20T08:30:00Z', updated_at: '2026-11-22T10:37:50.123456Z', ...extra,
    });
    const tea = custom('tea-lovers');

    // GET /v1/segments: always the five, in this order, then the custom ones.
    const l = check('/v1/segments', { notFound: false });
    l.ok({ items: five });
    l.ok({ items: [...five, custom('0-first'), tea, custom('x'.repeat(64), { description: 'Some text.' })] });
    l.problems('/query/limit');
    l.bad({ items: five, next_cursor: null }, /additional properties/, 'not paginated');
    l.bad({ items: five.slice(0, 4) }, /items/, 'all five');
    l.bad({ items: [...five.slice(0, 4), tea] }, /kind|code/, 'all five before any custom one');
    l.bad({ items: [tea, ...five] }, /kind|code/, 'the built-ins first');
    l.bad({ items: [...five, vip] }, /kind/, 'no built-in after the five');
    l.bad({ items: [...five, tea, lapsed] }, /kind/, 'no built-in among the custom ones');
    l.bad({ items: [...five, custom('lapsed')] }, /code/, 'a custom segment never has a built-in code');
    l.bad({ items: [...five, custom('Tea-Lovers')] }, /code/, 'custom codes are lower case');
    l.bad({ items: [...five, custom('tea_lovers')] }, /code/, 'custom codes are [a-z0-9-]');
    l.bad({ items: [...five, custom('x'.repeat(65))] }, /code/, 'custom codes up to 64 characters');
    l.bad({ items: [...five, custom('tea-lovers', { kind: 'built-in' })] }, /kind/, 'kind is custom');
    l.bad({ items: [...five, custom('tea-lovers', { parameters: {} })] }, /additional properties/, 'no parameters on a custom segment');
    l.bad({ items: [...five, { ...vip, filter }] }, /additional properties/, 'no filter on a built-in segment');
    const { filter: _f, ...noFilter } = tea;
    l.bad({ items: [...five, noFilter] }, /filter/, 'filter is required');
    const { description: _cd, ...noDescription } = tea;
    l.bad({ items: [...five, noDescription] }, /description/, 'description is always there (null when not set)');
    const { created_at: _c, ...noCreated } = tea;
    l.bad({ items: [...five, noCreated] }, /created_at/, 'created_at is required');
    l.bad({ items: [...five, custom('tea-lovers', { updated_at: null })] }, /updated_at/, 'updated_at is a timestamp');
    l.bad({ items: [...five, custom('tea-lovers', { name: '' })] }, /name/, 'non-empty name');
    l.bad({ items: [...five, custom('tea-lovers', { name: 'x'.repeat(201) })] }, /name/, 'name up to 200 characters');
    l.bad({ items: [...five, custom('tea-lovers', { description: 'x'.repeat(1001) })] }, /description/, 'description up to 1000 characters');
    l.bad({ items: [...five, custom('tea-lovers', { size: -1 })] }, /size/, 'size is a count');
    l.bad({ items: [...five, custom('tea-lovers', { as_of: '2026-11-22T00:00:00Z' })] }, /as_of/, 'as_of is a date');
    l.bad({ items: [...five, custom('tea-lovers', { filter: { all: [] } })] }, /filter/, 'the filter as validated');
    l.bad({ items: [...five, custom('tea-lovers', { filter: { field: 'tags', op: 'eq', value: 'vip' } })] }, /filter/, 'a stored filter follows the language');
    l.bad({ items: [due, spw, lapsing, lapsed, vip] }, /code/, 'in the documented order');
    l.bad({ items: [spw, due, lapsing, lapsed, { ...vip, code: 'big-spenders' }] }, /code/, 'built-in codes only');
    l.bad({ items: [{ ...spw, kind: 'custom' }, due, lapsing, lapsed, vip] }, /kind/, 'kind is built-in');
    l.bad({ items: [spw, due, lapsing, lapsed, { ...vip, name: 'Vip' }] }, /name/, 'the name goes with the code');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, parameters: { lapsing_factor: 2 } }, vip] }, /parameters/, 'the parameters go with the code');
    l.bad({ items: [spw, { ...due, parameters: { due_max_factor: 3 } }, lapsing, lapsed, vip] }, /due_min_repeat_customers/, 'all the parameters the segment uses');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, parameters: { lapse_days: 365, vip_percent: 5 } }, vip] }, /parameters/, 'only the parameters the segment uses');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, parameters: { lapse_days: 0 } }, vip] }, /lapse_days/, 'parameters in range');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, size: -1 }, vip] }, /size/, 'size is a count');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, size: null }, vip] }, /size/, 'size is never null');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, as_of: '2026-11-22T00:00:00Z' }, vip] }, /as_of/, 'as_of is a date');
    l.bad({ items: [spw, due, lapsing, { ...lapsed, description: '' }, vip] }, /description/, 'non-empty description');
    const { as_of: _a, ...noAsOf } = lapsed;
    l.bad({ items: [spw, due, lapsing, noAsOf, vip] }, /as_of/, 'as_of is required');

    // GET /v1/segments/{code}: one segment, built-in or custom; unknown codes are 404.
    const segmentPath = { notFound: true, allow: 'DELETE, GET, PUT' };
    for (const s of five) check(`/v1/segments/${s.code}`, segmentPath).ok(s);
    const g = check('/v1/segments/lapsed', segmentPath);
    g.problems('/query/limit');
    g.bad({ items: [lapsed] }, /additional properties/, 'the segment itself, not a list');
    g.bad({ ...lapsed, id: 'lapsed' }, /additional properties/, 'no other member');
    g.bad({ ...vip, parameters: { vip_percent: 51 } }, /vip_percent/, 'vip_percent at most 50');
    const gc = check('/v1/segments/tea-lovers', segmentPath);
    gc.ok(tea);
    gc.ok(custom('tea-lovers', { description: '', size: 0 }));
    gc.problems('/query/limit');
    gc.bad({ ...tea, parameters: { lapse_days: 365 } }, /additional properties/, 'a custom segment has no parameters');
    gc.bad({ ...tea, kind: 'built-in' }, /kind|parameters/, 'kind goes with the members');
    gc.bad({ ...lapsed, kind: 'custom' }, /kind|filter/, 'a built-in segment is not custom');
    gc.bad({ ...tea, filter: { not: { field: 'consent', op: 'contains', value: 'fax' } } }, /filter/, 'consent channels');

    // PUT /v1/segments/{code}: 201 with Location when created, 200 when replaced.
    const put = { method: 'PUT', path: '/v1/segments/tea-lovers', headers: json, body: JSON.stringify(tea) };
    validateResponse({ ...put, status: 201, headers: { ...json, location: '/v1/segments/tea-lovers' } });
    validateResponse({ ...put, status: 200 });
    assert.throws(() => validateResponse({ ...put, status: 201 }), /Location/, '201 carries Location');
    assert.throws(() => validateResponse({ ...put, status: 201, headers: { ...json, location: '/v1/customers/tea-lovers' } }), /Location/, 'Location is the segment');
    assert.throws(() => validateResponse({ ...put, status: 200, body: JSON.stringify(lapsed) }), violation, 'PUT answers a custom segment');
    assert.throws(() => validateResponse({ ...put, status: 200, body: JSON.stringify({ ...tea, created_at: undefined }) }), /created_at/, 'the segment as stored');
    const putProblem = (status, code, extra) => validateResponse({ ...put, status, headers: problemHeaders, body: problem(status, code, extra) });
    putProblem(400, 'invalid_parameter', { pointer: '/path/code' });
    putProblem(400, 'malformed_json');
    validateResponse({ ...put, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
    putProblem(403, 'forbidden');
    putProblem(409, 'conflict');
    putProblem(413, 'payload_too_large');
    putProblem(415, 'unsupported_media_type', { pointer: '/header/Content-Type' });
    for (const pointer of ['/filter/all/2/op', '/filter/not/value', '/filter/any', '/filter/all/0/field', '/name']) putProblem(422, 'validation_failed', { pointer });
    putProblem(500, 'internal_error');
    validateResponse({ ...put, status: 503, headers: { ...problemHeaders, 'retry-after': '1' }, body: problem(503, 'database_unavailable') });
    assert.throws(() => putProblem(409, 'order_conflict'), /\/code must be equal/, 'the built-in conflict is code conflict');
    assert.throws(() => putProblem(422, 'idempotency_key_reused'), /\/code must be equal/, 'a PUT takes no Idempotency-Key');
    assert.throws(() => putProblem(404, 'not_found'), /status is not documented/, 'PUT creates: no 404');

    // DELETE /v1/segments/{code}: 204; built-in 409, unknown 404.
    const del = { method: 'DELETE', path: '/v1/segments/tea-lovers' };
    validateResponse({ ...del, status: 204, headers: { 'x-request-id': RID }, body: '' });
    assert.throws(() => validateResponse({ ...del, status: 204, headers: json, body: JSON.stringify(tea) }), /documents no body/, '204 has no body');
    assert.throws(() => validateResponse({ ...del, status: 200, headers: json, body: JSON.stringify(tea) }), /status is not documented/, 'always 204');
    const delProblem = (status, code, extra) => validateResponse({ ...del, status, headers: problemHeaders, body: problem(status, code, extra) });
    delProblem(400, 'invalid_parameter', { pointer: '/path/code' });
    validateResponse({ ...del, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
    delProblem(403, 'forbidden');
    delProblem(404, 'not_found');
    delProblem(409, 'conflict');
    delProblem(500, 'internal_error');
    assert.throws(() => delProblem(422, 'validation_failed'), /status is not documented/, 'DELETE has no body: no 422');
    assert.throws(() => delProblem(400, 'malformed_json'), /\/code must be equal/, 'DELETE has no body: no malformed_json');

    // GET /v1/segments/{code}/customers.
    const member = (reason) => ({
      id: 'cust-1001',
      name: 'Li Wei',
      email: 'li.wei@example.com',
      phone: null,
      tags: ['tea'],
      consent: { email: true, sms: false, wechat: false },
      facts: {
        order_count: 1, first_order_at: '2026-10-13T02:00:00Z', last_order_at: '2026-10-13T02:00:00Z',
        days_since_first_order: 40, days_since_last_order: 40, total_spent: 12000,
      },
      reason,
    });
    const m = check('/v1/segments/due-for-repurchase/customers?limit=2&consent=email&fields=name,email,reason', { notFound: true, vary: true });
    const page = (items, next_cursor = null) => ({ items, next_cursor });
    const reasons = [
      { days_left: 5 },
      { median_days: 30, category: 'tea' },
      { median_days: 30, category: null },
      { average_interval_days: 42.5 },
      { average_interval_days: 0 },
      { days_since_last_order: 400 },
      { spend_365d: 250000, cutoff: 180000 },
    ];
    for (const reason of reasons) m.ok(page([member(reason)]));
    // A custom segment's members have reason null.
    const mc = check('/v1/segments/tea-lovers/customers?fields=reason', { notFound: true, vary: true });
    mc.ok(page([member(null)]));
    mc.ok(page([{ id: 'cust-1001', reason: null }], 'opaque-cursor'));
    mc.bad(page([member({})]), /reason/, 'null, not an empty reason');
    m.ok(page([], null));
    m.ok(page([member(reasons[1]), member(reasons[2])], 'opaque-cursor'));
    m.ok(page([{ id: 'cust-1001' }]));
    m.ok(page([{ id: 'cust-1001', name: null, email: null, reason: reasons[1] }]));
    m.problems('/query/fields');
    m.bad({ items: [member(reasons[0])] }, /next_cursor/, 'next_cursor is required');
    m.bad(page([member(reasons[0])], ''), /next_cursor/, 'a cursor is not empty');
    const { id: _id, ...noId } = member(reasons[0]);
    m.bad(page([noId]), /id/, 'id is always there');
    m.bad(page([{ ...member(reasons[0]), attributes: {} }]), /additional properties/, 'no attributes');
    m.bad(page([{ ...member(reasons[0]), erased_at: null }]), /additional properties/, 'members are never erased');
    m.bad(page([{ ...member(reasons[0]), consent: { email: { granted: true, updated_at: null }, sms: false, wechat: false } }]), /consent\/email/, 'consent is a boolean per channel');
    m.bad(page([{ ...member(reasons[0]), consent: { email: true, sms: false } }]), /wechat/, 'all three channels');
    m.bad(page([{ ...member(reasons[0]), email: 'no-at-sign' }]), /email/, 'email as in Customer');
    const f = member(reasons[0]).facts;
    m.bad(page([{ ...member(reasons[0]), facts: { ...f, order_count: 0 } }]), /order_count/, 'members have an occasion');
    m.bad(page([{ ...member(reasons[0]), facts: { ...f, first_order_at: null } }]), /first_order_at/, 'no null facts');
    m.bad(page([{ ...member(reasons[0]), facts: { ...f, second_order_at: null } }]), /additional properties/, 'the six facts only');
    const { days_since_first_order: _d, ...noDays } = f;
    m.bad(page([{ ...member(reasons[0]), facts: noDays }]), /days_since_first_order/, 'days_since_first_order is required');
    m.bad(page([{ ...member(reasons[0]), facts: { ...f, total_spent: 120.5 } }]), /total_spent/, 'money is whole minor units');
    m.bad(page([member({})]), /reason/, 'a reason has members');
    m.bad(page([member({ days_left: 5, cutoff: 1 })]), /reason/, 'one segment\'s members only');
    m.bad(page([member({ days_left: 5, days_since_last_order: 400 })]), /reason/, 'not two reasons');
    m.bad(page([member({ spend_365d: 250000 })]), /reason/, 'vip: spend and cutoff');
    m.bad(page([member({ median_days: 30 })]), /reason/, 'due: category (null for the shop-wide median)');
    m.bad(page([member({ median_days: 30, category: 'tea leaves' })]), /category/, 'category is a category code');
    m.bad(page([member({ median_days: 30.5, category: 'tea' })]), /median_days/, 'whole days');
    m.bad(page([member({ days_left: 0 })]), /days_left/, 'inside the window: at least one day left');
    m.bad(page([member({ average_interval_days: -1 })]), /average_interval_days/, 'intervals are not negative');
    m.bad(page([member({ average_interval_days: null })]), /average_interval_days/, 'not null');
    m.bad(page([member({ spend_365d: 0, cutoff: 0 })]), /spend_365d|cutoff/, 'vip spend is positive');
    m.bad(page([member({ segment: 'lapsed' })]), /additional properties/, 'unknown reason member');
    // Literal /customers after the code, and the unknown-code 404.
    validateResponse({ method: 'GET', path: '/v1/segments/churned/customers', status: 404, headers: problemHeaders, body: problem(404, 'not_found') });
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/segments/lapsed/members', status: 200, headers: json, body: JSON.stringify(page([])) }), /path is not documented/);
  });

  test('segment exports: CSV and NDJSON 200s (type and headers only), 406 not_acceptable, 503 busy', () => {
    // export.md: the same path answers a JSON page, CSV or NDJSON by Accept.
    const path = '/v1/segments/lapsed/customers?consent=email';
    const vary = { vary: 'Accept' };
    const csv = { 'content-type': 'text/csv; charset=utf-8; header=present', 'x-request-id': RID, ...vary, 'content-disposition': 'attachment; filename="lapsed.csv"' };
    const ndjson = { 'content-type': 'application/x-ndjson', 'x-request-id': RID, ...vary, 'content-disposition': 'attachment; filename="lapsed.ndjson"' };
    const ok = (status, headers, body) => validateResponse({ method: 'GET', path, status, headers, body });
    // Matches the violation only, not the body the message quotes.
    const errorsMatch = (re) => (e) => re.test(e.message.split('\n  body: ')[0]);
    const bad = (status, headers, body, re, what) => assert.throws(() => ok(status, headers, body), errorsMatch(re), what);
    const header = 'id,name,email,phone,tags,consent_email,consent_sms,consent_wechat,order_count,first_order_at,last_order_at,days_since_first_order,days_since_last_order,total_spent,reason\r\n';
    ok(200, csv, header);
    ok(200, csv, `${header}c1,"a, ""b""",,,x;y,true,false,false,1,2025-01-13T16:53:38.000000Z,2025-01-13T16:53:38.000000Z,400,400,100,"{""days_since_last_order"": 400}"\r\n`);
    ok(200, { ...csv, 'content-disposition': 'attachment; filename="tea-lovers.csv"' }, 'id\r\n');
    ok(200, ndjson, '');
    ok(200, ndjson, '{"id":"c1"}\n{"id":"c2"}\n');
    ok(200, { ...json, ...vary }, JSON.stringify({ items: [], next_cursor: null }));
    bad(200, { ...csv, vary: undefined }, 'id\r\n', /Vary/, 'a CSV export carries Vary: Accept');
    bad(200, { ...ndjson, vary: undefined }, '', /Vary/, 'an NDJSON export carries Vary: Accept');
    bad(200, json, JSON.stringify({ items: [], next_cursor: null }), /Vary/, 'a JSON page of this path carries Vary: Accept');
    bad(200, { ...csv, vary: 'Accept-Encoding' }, 'id\r\n', /Vary/, 'Vary names Accept');
    bad(200, { ...csv, 'content-disposition': 'inline' }, 'id\r\n', /Content-Disposition/, 'an attachment');
    bad(200, { ...csv, 'content-disposition': 'attachment; filename="lapsed.txt"' }, 'id\r\n', /Content-Disposition/, '.csv or .ndjson');
    bad(200, { ...csv, 'content-type': 'text/html' }, '<p>', /Content-Type "text\/html" is not documented/, 'only the three representations');
    bad(200, { ...csv, 'content-type': 'application/vnd.ms-excel' }, 'id\r\n', /not documented/, 'CSV is text/csv');
    // the JSON page is still validated as before
    bad(200, { ...json, ...vary }, JSON.stringify({ items: [{ name: 'x' }], next_cursor: null }), /id/, 'the JSON page keeps its schema');
    // CSV and NDJSON exist on this path only
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/customers', status: 200, headers: ndjson, body: '{"id":"c1"}\n' }), /not documented/);
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/segments/lapsed', status: 200, headers: csv, body: 'id\r\n' }), /not documented/);

    // 406 not_acceptable, pointer /header/Accept, with Vary.
    const problemVary = { ...problemHeaders, ...vary };
    ok(406, problemVary, problem(406, 'not_acceptable', { pointer: '/header/Accept' }));
    bad(406, problemHeaders, problem(406, 'not_acceptable', { pointer: '/header/Accept' }), /Vary/, 'the 406 carries Vary: Accept');
    bad(406, problemVary, problem(406, 'not_acceptable'), /pointer/, 'the pointer names the header');
    bad(406, problemVary, problem(406, 'not_acceptable', { pointer: '/query/format' }), /pointer/, 'the pointer is /header/Accept');
    bad(406, problemVary, problem(406, 'unsupported_media_type', { pointer: '/header/Accept' }), /code/, 'the code is not_acceptable');
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/segments/lapsed', status: 406, headers: problemVary, body: problem(406, 'not_acceptable', { pointer: '/header/Accept' }) }), /status is not documented/, 'only this path negotiates');

    // 400 for limit with an export; 503 busy or database_unavailable, with Retry-After.
    ok(400, problemHeaders, problem(400, 'invalid_parameter', { pointer: '/query/limit' }));
    ok(400, problemVary, problem(400, 'invalid_parameter', { pointer: '/query/limit' }));
    const retry = { ...problemVary, 'retry-after': '1' };
    ok(503, retry, problem(503, 'busy'));
    ok(503, retry, problem(503, 'database_unavailable'));
    bad(503, problemVary, problem(503, 'busy'), /Retry-After/, 'busy says when to retry');
    bad(503, retry, problem(503, 'internal_error'), /code/, 'busy or database_unavailable');
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/customers', status: 503, headers: retry, body: problem(503, 'busy') }), errorsMatch(/\/code/), 'busy only where exports are');
  });

  test('rfm: the segment map, the summary, the customer\'s scores and settings.rfm', () => {
    // Matches the schema errors only, not the body the message quotes.
    const errorsMatch = (re) => (e) => re.test(e.message.split('\n  body: ')[0]);
    const check = (path, { allow = 'GET' } = {}) => {
      const r = { method: 'GET', path, status: 200, headers: json };
      return {
        ok: (body) => validateResponse({ ...r, body: JSON.stringify(body) }),
        bad: (body, re, what) => assert.throws(() => validateResponse({ ...r, body: JSON.stringify(body) }), errorsMatch(re), what),
        problems: () => {
          validateResponse({ ...r, status: 400, headers: problemHeaders, body: problem(400, 'invalid_parameter', { pointer: '/query/limit' }) });
          validateResponse({ ...r, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
          validateResponse({ ...r, status: 403, headers: problemHeaders, body: problem(403, 'forbidden') });
          validateResponse({ ...r, status: 500, headers: problemHeaders, body: problem(500, 'internal_error') });
          validateResponse({ ...r, status: 503, headers: { ...problemHeaders, 'retry-after': '1' }, body: problem(503, 'database_unavailable') });
          assert.throws(() => validateResponse({ ...r, status: 404, headers: problemHeaders, body: problem(404, 'not_found') }), /status is not documented/, `${path}: no 404`);
          assert.throws(() => validateResponse({ ...r, status: 422, headers: problemHeaders, body: problem(422, 'validation_failed') }), /status is not documented/, `${path}: no 422`);
          validateResponse({ method: 'POST', path, status: 405, headers: { ...problemHeaders, allow }, body: problem(405, 'method_not_allowed') });
          assert.throws(() => validateResponse({ method: 'POST', path, status: 405, headers: { ...problemHeaders, allow: `${allow}, POST` }, body: problem(405, 'method_not_allowed') }), /Allow header/);
        },
      };
    };
    const entry = (name, r, f, lapsed = false) => ({ name, r, f, lapsed });
    const defaultMap = [
      entry('Champions', [5, 5], [4, 5]), entry('Loyal', [3, 4], [4, 5]), entry('Potential loyalists', [4, 5], [2, 3]),
      entry('New customers', [5, 5], [1, 1]), entry('Promising', [4, 4], [1, 1]), entry('Need attention', [3, 3], [3, 3]),
      entry('About to sleep', [3, 3], [1, 2]), entry('At risk', [1, 2], [3, 4]), entry("Can't lose them", [1, 2], [5, 5]),
      entry('Hibernating', [1, 2], [1, 2]), entry('Lost', [1, 1], [1, 2], true),
    ];

    // GET /v1/rfm/map: the entries in stored order, lapsed always there, default.
    const g = check('/v1/rfm/map', { allow: 'GET, PUT' });
    g.ok({ segments: defaultMap, default: true });
    g.ok({ segments: [entry('Everyone', [1, 5], [1, 5])], default: false });
    g.ok({ segments: [entry('x'.repeat(64), [1, 5], [1, 5]), entry('Lost', [1, 1], [1, 5], true)], default: false });
    g.problems();
    const { lapsed: _l, ...noLapsed } = defaultMap[0];
    g.bad({ segments: [noLapsed], default: false }, /lapsed/, 'lapsed is always shown');
    g.bad({ segments: defaultMap }, /default/, 'default is required');
    g.bad({ segments: defaultMap, default: 'yes' }, /default/, 'default is a boolean');
    g.bad({ segments: [], default: true }, /segments/, 'at least one entry');
    g.bad({ segments: defaultMap, default: true, updated_at: '2026-11-22T10:37:50Z' }, /additional properties/, 'segments and default only');
    g.bad({ segments: [{ ...defaultMap[0], m: [1, 5] }], default: false }, /additional properties/, 'no other entry member');
    g.bad({ segments: [{ ...defaultMap[0], r: [0, 5] }], default: false }, /\/r\//, 'scores from 1');
    g.bad({ segments: [{ ...defaultMap[0], f: [1, 6] }], default: false }, /\/f\//, 'scores up to 5');
    g.bad({ segments: [{ ...defaultMap[0], r: [5] }], default: false }, /\/r\b/, 'r is a pair');
    g.bad({ segments: [{ ...defaultMap[0], name: '' }], default: false }, /name/, 'non-empty name');
    g.bad({ segments: [{ ...defaultMap[0], name: 'x'.repeat(65) }], default: false }, /name/, 'name up to 64 characters');
    g.bad({ segments: [{ ...defaultMap[0], lapsed: null }], default: false }, /lapsed/, 'lapsed is a boolean');
    g.bad({ items: defaultMap, default: true }, /segments|additional properties/, 'segments, not items');

    // PUT /v1/rfm/map: admin only, 200 with the map.
    const put = { method: 'PUT', path: '/v1/rfm/map', headers: json, body: JSON.stringify({ segments: defaultMap, default: false }) };
    validateResponse({ ...put, status: 200 });
    assert.throws(() => validateResponse({ ...put, status: 201, headers: { ...json, location: '/v1/rfm/map' } }), /status is not documented/, 'always 200');
    assert.throws(() => validateResponse({ ...put, status: 204, headers: { 'x-request-id': RID }, body: '' }), /status is not documented/, 'answers the map');
    assert.throws(() => validateResponse({ ...put, status: 200, body: JSON.stringify({ segments: defaultMap.map(({ lapsed: _, ...e }) => e), default: false }) }), errorsMatch(/lapsed/), 'the map as GET shows it');
    const putProblem = (status, code, extra) => validateResponse({ ...put, status, headers: problemHeaders, body: problem(status, code, extra) });
    putProblem(400, 'malformed_json');
    putProblem(400, 'invalid_parameter', { pointer: '/query/dry_run' });
    validateResponse({ ...put, status: 401, headers: { ...problemHeaders, 'www-authenticate': 'Bearer' }, body: problem(401, 'unauthenticated') });
    putProblem(403, 'forbidden');
    putProblem(413, 'payload_too_large');
    putProblem(415, 'unsupported_media_type', { pointer: '/header/Content-Type' });
    for (const pointer of ['/segments/10', '/segments', '/segments/3/r', '/segments/0/name', '/segments/2/lapsed']) putProblem(422, 'validation_failed', { pointer });
    putProblem(422, 'validation_failed', { pointer: '/segments', detail: 'R2 F3 is not covered' });
    putProblem(500, 'internal_error');
    validateResponse({ ...put, status: 503, headers: { ...problemHeaders, 'retry-after': '1' }, body: problem(503, 'database_unavailable') });
    assert.throws(() => putProblem(404, 'not_found'), /status is not documented/, 'no 404');
    assert.throws(() => putProblem(409, 'conflict'), /status is not documented/, 'no 409');
    assert.throws(() => putProblem(422, 'idempotency_key_reused'), /\/code must be equal/, 'a PUT takes no Idempotency-Key');
    validateResponse({ method: 'DELETE', path: '/v1/rfm/map', status: 405, headers: { ...problemHeaders, allow: 'GET, PUT' }, body: problem(405, 'method_not_allowed') });
    assert.throws(() => validateResponse({ method: 'DELETE', path: '/v1/rfm/map', status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') }), /Allow header/);

    // GET /v1/rfm/summary.
    const seg = (name, customers, share, revenue, avgs) => ({
      name, customers, share, revenue,
      ...(avgs ? { avg_recency_days: avgs[0], avg_frequency: avgs[1], avg_monetary: avgs[2] } : { avg_recency_days: null, avg_frequency: null, avg_monetary: null }),
    });
    const segments = [
      seg('Champions', 12, 0.12, 123400, [10.5, 4.2, 10283.3]),
      seg('Loyal', 88, 0.88, 900000, [40, 3, 10227.3]),
      seg('Lost', 0, 0, 0, null),
    ];
    const edges = { recency: [365, 180, 60, 14], frequency: [2, 3, 4, 6], monetary: [5000, 12000, 30000, 80000] };
    const quintiles = { as_of: '2026-11-22', method: 'quintiles', customers: 100, segments, edges };
    const sm = check('/v1/rfm/summary');
    sm.ok(quintiles);
    sm.ok({ ...quintiles, method: 'thresholds', edges: null });
    sm.ok({ ...quintiles, edges: { recency: [365, null, null, 14], frequency: [null, null, null, 1], monetary: [0, null, 1, 2] } });
    const nobody = { ...quintiles, customers: 0, segments: defaultMap.map((e) => seg(e.name, 0, null, 0, null)), edges: null };
    sm.ok(nobody);
    sm.ok({ ...nobody, method: 'thresholds' });
    sm.ok({ ...quintiles, segments: [seg('Champions', 1, 0.01, 0, [-2, 1, 0])] });
    sm.problems();
    sm.bad({ ...quintiles, method: 'thresholds' }, /edges/, 'no edges with thresholds');
    sm.bad({ ...quintiles, edges: null }, /edges/, 'edges with quintiles');
    const nulls = [null, null, null, null];
    sm.bad({ ...nobody, edges: { recency: nulls, frequency: nulls, monetary: nulls } }, /edges/, 'no edges when no customer is scored');
    sm.bad({ ...quintiles, method: 'deciles' }, /method/, 'the two methods');
    sm.bad({ ...quintiles, as_of: '2026-11-22T00:00:00Z' }, /as_of/, 'as_of is a date');
    sm.bad({ ...quintiles, customers: -1 }, /customers/, 'N is a count');
    sm.bad({ ...quintiles, segments: [] }, /segments/, 'every map entry, so at least one');
    sm.bad({ ...quintiles, description: 'x' }, /additional properties/, 'no other member');
    for (const k of ['as_of', 'method', 'customers', 'segments', 'edges']) {
      const { [k]: _, ...without } = quintiles;
      sm.bad(without, new RegExp(k), `${k} is required`);
    }
    const one = (s) => ({ ...quintiles, segments: [s] });
    sm.bad(one(seg('Champions', 12, null, 123400, [10.5, 4.2, 10283.3])), /share/, 'share is a number when N > 0');
    sm.bad({ ...quintiles, customers: 0, segments: [seg('Lost', 0, 0, 0, null)] }, /share/, 'share is null when N = 0');
    sm.bad({ ...quintiles, customers: 0, segments: [seg('Lost', 3, null, 0, [1, 1, 0])] }, /customers/, 'no customer in a segment when N = 0');
    sm.bad(one(seg('Champions', 12, 1.2, 123400, [10.5, 4.2, 10283.3])), /share/, 'share at most 1');
    sm.bad(one(seg('Champions', 12, 0.12, 123400, null)), /avg_/, 'averages are numbers with customers');
    sm.bad(one(seg('Lost', 0, 0, 0, [0, 1, 0])), /avg_/, 'averages are null without customers');
    sm.bad(one(seg('Lost', 0, 0, 500, null)), /revenue/, 'no revenue without customers');
    sm.bad(one(seg('Champions', 12, 0.12, 1234.5, [10.5, 4.2, 10283.3])), /revenue/, 'revenue in whole minor units');
    sm.bad(one(seg('Champions', 12, 0.12, null, [10.5, 4.2, 10283.3])), /revenue/, 'revenue is never null');
    sm.bad(one(seg('Champions', 12, 0.12, 123400, [10.5, 0.5, 10283.3])), /avg_frequency/, 'every scored customer has an occasion');
    sm.bad(one(seg('Champions', 12, 0.12, 123400, [10.5, 4.2, -1])), /avg_monetary/, 'spend is not negative');
    sm.bad(one({ ...segments[0], r: [5, 5] }), /additional properties/, 'no map ranges in the summary');
    const { avg_monetary: _m, ...noMonetary } = segments[0];
    sm.bad(one(noMonetary), /avg_monetary/, 'avg_monetary is required (null without customers)');
    sm.bad(one({ ...segments[0], name: '' }), /name/, 'the entry name');
    sm.bad({ ...quintiles, edges: { ...edges, recency: [365, 180, 60] } }, /recency/, 'scores 2 to 5: four values');
    sm.bad({ ...quintiles, edges: { ...edges, monetary: [1, 2, 3, 4, 5] } }, /monetary/, 'not five');
    sm.bad({ ...quintiles, edges: { ...edges, frequency: [0, 2, 3, 4] } }, /frequency/, 'frequency edges from 1');
    sm.bad({ ...quintiles, edges: { ...edges, monetary: [-1, 2, 3, 4] } }, /monetary/, 'monetary edges not negative');
    sm.bad({ ...quintiles, edges: { ...edges, recency: [365, 180.5, 60, 14] } }, /recency/, 'whole days');
    sm.bad({ ...quintiles, edges: { recency: edges.recency, frequency: edges.frequency } }, /monetary/, 'all three dimensions');
    sm.bad({ ...quintiles, edges: { ...edges, m: edges.monetary } }, /additional properties/, 'the three dimensions only');

    // The customer's rfm: in GET /v1/customers/{id}?include=rfm, an object or null.
    const c = check('/v1/customers/cust-1001', { allow: 'DELETE, GET, PUT' });
    c.ok(customerDetail);
    c.ok({ ...customerDetail, rfm: null });
    c.ok({ ...customerDetail, rfm: { r: 1, f: 1, m: 1, segment: 'x'.repeat(64) } });
    c.ok(customer); // without include=rfm there is no rfm member
    for (const k of ['r', 'f', 'm']) {
      c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, [k]: 0 } }, new RegExp(`rfm/${k}`), `${k} from 1`);
      c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, [k]: 6 } }, new RegExp(`rfm/${k}`), `${k} up to 5`);
      c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, [k]: 2.5 } }, new RegExp(`rfm/${k}`), `${k} is whole`);
      const { [k]: _, ...without } = customerDetail.rfm;
      c.bad({ ...customerDetail, rfm: without }, new RegExp(k), `${k} is required`);
    }
    const { segment: _s, ...noSegment } = customerDetail.rfm;
    c.bad({ ...customerDetail, rfm: noSegment }, /segment/, 'segment is required');
    c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, segment: null } }, /segment/, 'a scored customer is in a segment');
    c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, segment: '' } }, /segment/, 'a segment name');
    c.bad({ ...customerDetail, rfm: { ...customerDetail.rfm, lapsed: true } }, /additional properties/, 'r, f, m and segment only');
    c.bad({ ...customerDetail, rfm: {} }, /rfm/, 'null, not an empty object');
    c.bad({ ...customerDetail, rfm: 'Champions' }, /rfm/, 'an object');
    // PUT /v1/customers/{id} and GET /v1/customers answer the same Customer, rfm optional there.
    const putCustomer = { method: 'PUT', path: '/v1/customers/cust-1001', headers: json };
    for (const body of [customer, customerDetail, { ...customer, rfm: null }]) {
      validateResponse({ ...putCustomer, status: 200, body: JSON.stringify(body) });
      validateResponse({ ...putCustomer, status: 201, headers: { ...json, location: '/v1/customers/cust-1001' }, body: JSON.stringify(body) });
    }
    assert.throws(() => validateResponse({ ...putCustomer, status: 200, body: JSON.stringify({ ...customer, rfm: { r: 9 } }) }), errorsMatch(/rfm/), 'when present, rfm is checked');
    const list = check('/v1/customers?limit=2');
    list.ok({ items: [customer, customerDetail, { ...customer, rfm: null }], next_cursor: null });
    list.bad({ items: [{ ...customer, rfm: { r: 5, f: 3, m: 4 } }], next_cursor: null }, /segment/, 'when present, rfm is complete');

    // settings.rfm: always shown (defaults filled in), one of the two methods.
    const shopCheck = check(`/v1/shops/${SHOP_ID}`, { allow: 'GET, PATCH' });
    const withRfm = (rfm) => ({ ...shop, settings: { ...shop.settings, rfm } });
    const thresholds = { method: 'thresholds', recency_days: [30, 90, 180, 365], frequency: [2, 3, 5, 10], monetary: [10000, 50000, 100000, 500000] };
    shopCheck.ok(shop);
    shopCheck.ok(withRfm(thresholds));
    const { rfm: _r, ...noRfm } = shop.settings;
    shopCheck.bad({ ...shop, settings: noRfm }, /rfm/, 'rfm is always shown');
    shopCheck.bad(withRfm(null), /rfm/, 'never null');
    shopCheck.bad(withRfm({}), /rfm|method/, 'the method is always shown');
    shopCheck.bad(withRfm({ ...thresholds, method: 'quintiles' }), /rfm/, 'quintiles has no thresholds');
    shopCheck.bad(withRfm({ method: 'thresholds' }), /rfm/, 'thresholds has its thresholds');
    shopCheck.bad(withRfm({ ...thresholds, frequency: [2, 3, 5] }), /frequency/, 'four thresholds');
    const patched = { method: 'PATCH', path: `/v1/shops/${SHOP_ID}`, headers: json };
    validateResponse({ ...patched, status: 200, body: JSON.stringify(withRfm(thresholds)) });
    for (const pointer of ['/settings/rfm/method', '/settings/rfm/recency_days', '/settings/rfm/monetary']) {
      validateResponse({ ...patched, status: 422, headers: problemHeaders, body: problem(422, 'validation_failed', { pointer }) });
    }
  });

  test('traffic feed: the entries as stored and the counts', () => {
    const t = { method: 'POST', path: '/v1/traffic', status: 200, headers: json };
    const day = { date: '2025-03-01', channel: 'web', visitors: 1200, sessions: 1500 };
    const body = { days: [day, { ...day, channel: 'wechat-mini' }], created: 1, updated: 1 };
    validateResponse({ ...t, body: JSON.stringify(body) });
    validateResponse({ ...t, headers: { ...json, 'idempotent-replayed': 'true' }, body: JSON.stringify(body) });
    const bad = (b, re, what) => assert.throws(() => validateResponse({ ...t, body: JSON.stringify(b) }), re, what);
    bad({ days: body.days, created: 1 }, /updated/, 'updated is required');
    bad({ ...body, days: [] }, /days/, 'at least one entry');
    bad({ ...body, unchanged: 0 }, /additional properties/, 'created and updated only');
    bad({ ...body, days: [{ ...day, id: 1 }] }, /additional properties/, 'an entry has the request members only');
    assert.throws(() => validateResponse({ ...t, status: 201, headers: { ...json, location: '/v1/traffic' }, body: JSON.stringify(body) }), /status is not documented/, 'always 200');

    const problemAt = (status, code, extra) => validateResponse({ ...t, status, headers: problemHeaders, body: problem(status, code, extra) });
    problemAt(422, 'validation_failed', { pointer: '/days/3/visitors' });
    problemAt(422, 'idempotency_key_reused', { pointer: '/header/Idempotency-Key' });
    problemAt(400, 'malformed_json');
    problemAt(403, 'forbidden');
    problemAt(409, 'idempotency_in_progress');
    problemAt(413, 'payload_too_large');
    problemAt(415, 'unsupported_media_type', { pointer: '/header/Content-Type' });
    assert.throws(() => problemAt(422, 'invalid_body', { pointer: '/days/0' }), /code/, 'the 422 code is validation_failed, as everywhere');
    assert.throws(() => problemAt(404, 'not_found'), /status is not documented/, 'no 404');
    validateResponse({ method: 'GET', path: '/v1/traffic', status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });
  });

  test('bulk ingest results: one per line, code and detail only on failures, matching the status', () => {
    const bulk = { method: 'POST', path: '/v1/orders/bulk', status: 200, headers: json };
    const ok = { line: 1, id: 'ord-1', status: 201 };
    const bad = { line: 3, id: 'ord-2', status: 422, code: 'validation_failed', detail: 'total: must be 100', pointer: '/total' };
    const body = (results, counts = {}) => JSON.stringify({ results, created: 1, unchanged: 0, failed: 1, ...counts });
    validateResponse({ ...bulk, body: body([ok, bad]) });
    validateResponse({ ...bulk, body: body([{ line: 2, id: null, status: 400, code: 'malformed_json', detail: 'invalid JSON' }]) });
    validateResponse({ ...bulk, body: body([{ line: 2, id: null, status: 422, code: 'validation_failed', detail: '/id: required', pointer: '/id' }]) });
    validateResponse({ ...bulk, body: body([{ line: 4, id: 'ord-1', status: 409, code: 'order_conflict', detail: 'differs' }]) });
    validateResponse({ ...bulk, body: body([{ ...ok, status: 200 }]) });
    const fails = (results, what, counts) =>
      assert.throws(() => validateResponse({ ...bulk, body: body(results, counts) }), violation, what);
    fails([{ ...ok, code: 'validation_failed' }], 'code on a success');
    fails([{ ...ok, detail: 'x' }], 'detail on a success');
    fails([{ ...ok, id: null }], 'a recorded order has an id');
    fails([{ ...ok, line: 0 }], 'lines are 1-based');
    fails([{ ...ok, row: 1 }], 'unknown member');
    const { detail: _, ...noDetail } = bad;
    fails([noDetail], 'failure without detail');
    fails([{ ...bad, code: 'order_conflict' }], 'code does not match status');
    fails([{ ...bad, status: 413, code: 'payload_too_large' }], 'no per-line 413');
    fails([ok], 'counts missing', { failed: undefined });
    assert.throws(() => validateResponse({ ...bulk, body: JSON.stringify({ results: [ok], created: 1, unchanged: 0, failed: 0, skipped: 0 }) }), /additional properties/);

    validateResponse({ ...bulk, status: 413, headers: problemHeaders, body: problem(413, 'payload_too_large') });
    validateResponse({ ...bulk, status: 415, headers: problemHeaders, body: problem(415, 'unsupported_media_type', { pointer: '/header/Content-Type' }) });
    validateResponse({ ...bulk, status: 400, headers: problemHeaders, body: problem(400, 'malformed_json') });
    assert.throws(() => validateResponse({ ...bulk, status: 422, headers: problemHeaders, body: problem(422, 'validation_failed') }), /status is not documented/);
    assert.throws(() => validateResponse({ ...bulk, status: 201, body: body([ok]) }), /status is not documented/);
    // The literal path wins over /v1/orders/{id}: other methods on it are 405, Allow: POST.
    validateResponse({ method: 'GET', path: '/v1/orders/bulk', status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });
    assert.throws(() => validateResponse({ method: 'GET', path: '/v1/orders/bulk', status: 404, headers: problemHeaders, body: problem(404, 'not_found') }), /method is not documented/);
  });

  test('memberships: plans, memberships with their terms, the customer\'s membership, problems', () => {
    const MID = '3c9a7e52-1f4b-4d8e-a6c2-9b0d1e2f3a4b';
    const plan = {
      code: 'plus', name: 'PLUS annual', fee: 19900, currency: 'CNY', duration_days: 365, discount_bp: 500, active: true,
      benefits: { 'dry-cleaning': 2 }, created_at: '2026-11-22T16:53:38.123456Z', updated_at: '2026-11-22T16:53:38.123456Z',
    };
    const term = {
      starts_at: '2026-11-22T16:53:38.123456Z', ends_at: '2027-11-22T16:53:38.123456Z', fee: 19900,
      duration_days: 365, discount_bp: 500, paid_at: '2026-11-22T16:53:38.123456Z',
    };
    const m = {
      id: MID, customer_id: 'cust-1001', plan: 'plus', card_number: '4000123412341234', status: 'active',
      starts_at: term.starts_at, ends_at: term.ends_at, discount_bp: 500, currency: 'CNY', paid_total: 19900, refunded: 0,
      cancelled_at: null, terms: [term], created_at: term.paid_at, updated_at: term.paid_at,
    };
    const cancelled = { ...m, status: 'cancelled', cancelled_at: '2026-12-01T00:00:00Z', ends_at: '2026-12-01T00:00:00Z', refunded: 19300 };
    const check = (method, path, status, extra = {}) => ({
      ok: (body, headers = {}) => validateResponse({ method, path, status, headers: { ...json, ...extra, ...headers }, body: JSON.stringify(body) }),
      bad: (body, re, what) => assert.throws(
        () => validateResponse({ method, path, status, headers: { ...json, ...extra }, body: JSON.stringify(body) }), re, what),
    });
    const problemAt = (method, path, status, code, more) =>
      validateResponse({ method, path, status, headers: problemHeaders, body: problem(status, code, more) });

    // Plans.
    const putPlan = check('PUT', '/v1/membership-plans/plus', 201, { location: '/v1/membership-plans/plus' });
    putPlan.ok(plan);
    check('PUT', '/v1/membership-plans/plus', 200).ok({ ...plan, active: false });
    assert.throws(() => validateResponse({ method: 'PUT', path: '/v1/membership-plans/plus', status: 201, headers: json, body: JSON.stringify(plan) }), /Location/, 'a created plan has its Location');
    putPlan.bad({ ...plan, currency: undefined }, /currency/, 'currency is required');
    putPlan.bad({ ...plan, fee: -1 }, /fee/, 'fee not negative');
    putPlan.bad({ ...plan, discount_bp: 10001 }, /discount_bp/, 'at most 10000 basis points');
    putPlan.bad({ ...plan, members: 3 }, /additional properties/, 'no other member');
    check('GET', '/v1/membership-plans', 200).ok({ items: [plan, { ...plan, code: 'zeta' }] });
    check('GET', '/v1/membership-plans', 200).ok({ items: [] });
    check('GET', '/v1/membership-plans/plus', 200).ok(plan);
    problemAt('PUT', '/v1/membership-plans/Bad', 400, 'invalid_parameter', { pointer: '/path/code' });
    problemAt('PUT', '/v1/membership-plans/plus', 422, 'validation_failed', { pointer: '/duration_days' });
    problemAt('GET', '/v1/membership-plans/none', 404, 'not_found');
    assert.throws(() => problemAt('PUT', '/v1/membership-plans/plus', 404, 'not_found'), /status is not documented/, 'a PUT creates');
    assert.throws(() => problemAt('PUT', '/v1/membership-plans/plus', 422, 'idempotency_key_reused'), /\/code/, 'a PUT takes no Idempotency-Key');
    validateResponse({ method: 'DELETE', path: '/v1/membership-plans/plus', status: 405, headers: { ...problemHeaders, allow: 'GET, PUT' }, body: problem(405, 'method_not_allowed') });
    validateResponse({ method: 'POST', path: '/v1/membership-plans', status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });

    // Purchase: 201 with Location, replays too.
    const buy = check('POST', '/v1/customers/cust-1001/memberships', 201, { location: `/v1/memberships/${MID}` });
    buy.ok(m);
    buy.ok(m, { 'idempotent-replayed': 'true' });
    buy.ok({ ...m, status: 'expired', starts_at: '2024-01-01T00:00:00Z', ends_at: '2024-12-31T00:00:00Z' });
    buy.ok({ ...m, card_number: 'A-1234' });
    buy.bad({ ...m, terms: [] }, /terms/, 'at least one term');
    buy.bad({ ...m, status: 'paused' }, /status/, 'three statuses');
    buy.bad({ ...m, cancelled_at: '2026-12-01T00:00:00Z' }, /cancelled_at/, 'cancelled_at only when cancelled');
    buy.bad({ ...m, refunded: 100 }, /refunded/, 'no refund unless cancelled');
    buy.bad({ ...m, card_number: 'A 1' }, /card_number/, 'card number syntax');
    buy.bad({ ...m, terms: [{ ...term, price: 1 }] }, /additional properties/, 'a term has its members only');
    const { paid_at: _p, ...noPaidAt } = term;
    buy.bad({ ...m, terms: [noPaidAt] }, /paid_at/, 'paid_at is required');
    for (const k of ['id', 'customer_id', 'plan', 'card_number', 'status', 'starts_at', 'ends_at', 'discount_bp', 'currency', 'paid_total', 'refunded', 'cancelled_at', 'terms', 'created_at', 'updated_at']) {
      const { [k]: _, ...without } = m;
      buy.bad(without, new RegExp(k), `${k} is required`);
    }
    assert.throws(() => validateResponse({ method: 'POST', path: '/v1/customers/cust-1001/memberships', status: 201, headers: { ...json, location: '/v1/memberships/x' }, body: JSON.stringify(m) }), /Location/);
    assert.throws(() => validateResponse({ method: 'POST', path: '/v1/customers/cust-1001/memberships', status: 200, headers: json, body: JSON.stringify(m) }), /status is not documented/, 'a sale is 201');
    const post = (status, code, more) => problemAt('POST', '/v1/customers/cust-1001/memberships', status, code, more);
    post(409, 'card_number_taken', { pointer: '/card_number' });
    post(409, 'idempotency_in_progress');
    post(403, 'forbidden', { pointer: '/starts_at' });
    post(404, 'not_found');
    post(422, 'validation_failed', { pointer: '/plan' });
    post(422, 'idempotency_key_reused', { pointer: '/header/Idempotency-Key' });
    assert.throws(() => post(409, 'conflict'), /\/code/, 'a taken card number has its own code');

    // Lists, one membership, renew, cancel.
    check('GET', '/v1/customers/cust-1001/memberships', 200).ok({ items: [cancelled, m] });
    check('GET', '/v1/customers/cust-1001/memberships', 200).ok({ items: [] });
    check('GET', `/v1/memberships/${MID}`, 200).ok(cancelled);
    check('GET', `/v1/memberships/${MID}`, 200).bad({ ...cancelled, cancelled_at: null }, /cancelled_at/, 'a cancelled membership says when');
    const renewed = { ...m, ends_at: '2028-11-21T16:53:38.123456Z', paid_total: 39800, terms: [term, { ...term, starts_at: term.ends_at, ends_at: '2028-11-21T16:53:38.123456Z' }] };
    check('POST', `/v1/memberships/${MID}/renew`, 200).ok(renewed);
    check('POST', `/v1/memberships/${MID}/cancel`, 200).ok(cancelled);
    check('POST', `/v1/memberships/${MID}/cancel`, 200).ok(cancelled, { 'idempotent-replayed': 'true' });
    for (const action of ['renew', 'cancel']) {
      const path = `/v1/memberships/${MID}/${action}`;
      problemAt('POST', path, 409, 'conflict');
      problemAt('POST', path, 409, 'idempotency_in_progress');
      problemAt('POST', path, 404, 'not_found');
      problemAt('POST', path, 422, 'validation_failed', { pointer: '/plan' });
      assert.throws(() => problemAt('POST', path, 409, 'card_number_taken'), /\/code/);
      assert.throws(() => validateResponse({ method: 'POST', path, status: 201, headers: json, body: JSON.stringify(m) }), /status is not documented/, `${action} answers 200`);
      validateResponse({ method: 'GET', path, status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });
    }
    validateResponse({ method: 'DELETE', path: `/v1/memberships/${MID}`, status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });
    validateResponse({ method: 'PUT', path: '/v1/customers/cust-1001/memberships', status: 405, headers: { ...problemHeaders, allow: 'GET, POST' }, body: problem(405, 'method_not_allowed') });

    // What applies now.
    const now = check('GET', '/v1/customers/cust-1001/membership', 200);
    const applies = {
      customer_id: 'cust-1001', as_of: '2026-11-23T00:00:00.5Z', tier: null, memberships: [m], discount_bp: 500,
      discount_source: 'membership', benefits: [],
    };
    now.ok(applies);
    now.ok({ ...applies, memberships: [], discount_bp: 0, discount_source: null });
    now.bad({ ...applies, memberships: [cancelled] }, /status/, 'active memberships only');
    now.bad({ ...applies, tier: 'gold' }, /tier/, 'a tier is an object');
    now.bad({ ...applies, discount_bp: null }, /discount_bp/, '0, not null, without memberships');
    now.bad({ ...applies, as_of: undefined }, /as_of/, 'as_of is required');
    now.bad({ ...applies, extra: [] }, /additional properties/, 'no other member');
    problemAt('GET', '/v1/customers/bad%20id/membership', 400, 'invalid_parameter', { pointer: '/path/id' });
    problemAt('GET', '/v1/customers/cust-1001/membership', 404, 'not_found');
  });

  test('wallets: offers, balances, top-ups, spends, statements, settings.balances and their problems', () => {
    // Matches the violations only, not the body quoted after them.
    const errorsMatch = (re) => (e) => re.test(e.message.split('\n  body: ')[0]);
    const check = (method, path, status, extra = {}) => ({
      ok: (body, headers = {}) => validateResponse({ method, path, status, headers: { ...json, ...extra, ...headers }, body: JSON.stringify(body) }),
      bad: (body, re, what) => assert.throws(
        () => validateResponse({ method, path, status, headers: { ...json, ...extra }, body: JSON.stringify(body) }), errorsMatch(re), what),
    });
    const problemAt = (method, path, status, code, more) =>
      validateResponse({ method, path, status, headers: problemHeaders, body: problem(status, code, more) });
    const T0 = '2026-01-31T02:00:00Z';

    // Offers: every member always present, installments with all four or null.
    const offer = {
      code: 'top-up-200', version: 1, name: 'Top up 200, get 200', min_topup: 20000,
      bonus: { immediate: 0, installments: { count: 10, amount: 2000, every: 'month', interval: 1 }, installment_expiry: 'end_of_period', expires_after_days: null },
      bonus_total: 20000, limit_per_customer: 1, active: true, currency: 'CNY', created_at: '2026-11-22T16:53:38.123456Z',
    };
    const plain = { ...offer, code: 'plain', bonus: { immediate: 0, installments: null, installment_expiry: 'none', expires_after_days: null }, bonus_total: 0, limit_per_customer: null };
    const put = check('PUT', '/v1/topup-offers/top-up-200', 201, { location: '/v1/topup-offers/top-up-200' });
    put.ok(offer);
    put.ok(plain);
    check('PUT', '/v1/topup-offers/top-up-200', 200).ok({ ...offer, version: 2, active: false });
    assert.throws(() => validateResponse({ method: 'PUT', path: '/v1/topup-offers/top-up-200', status: 201, headers: json, body: JSON.stringify(offer) }), errorsMatch(/Location/), 'version 1 has its Location');
    for (const k of Object.keys(offer)) {
      const { [k]: _, ...without } = offer;
      put.bad(without, new RegExp(k), `${k} is required`);
    }
    for (const k of ['immediate', 'installments', 'installment_expiry', 'expires_after_days']) {
      const { [k]: _, ...without } = offer.bonus;
      put.bad({ ...offer, bonus: without }, new RegExp(k), `bonus.${k} is always shown`);
    }
    const { interval: _i, ...noInterval } = offer.bonus.installments;
    put.bad({ ...offer, bonus: { ...offer.bonus, installments: noInterval } }, /interval|installments/, 'installments with all four members');
    put.bad({ ...offer, version: 0 }, /version/, 'versions from 1');
    put.bad({ ...offer, bonus_total: -1 }, /bonus_total/, 'bonus_total not negative');
    put.bad({ ...offer, updated_at: offer.created_at }, /additional properties/, 'a version is never updated');
    check('GET', '/v1/topup-offers', 200).ok({ items: [plain, offer] });
    check('GET', '/v1/topup-offers', 200).ok({ items: [] });
    check('GET', '/v1/topup-offers/top-up-200?version=1', 200).ok(offer);
    problemAt('PUT', '/v1/topup-offers/Top', 400, 'invalid_parameter', { pointer: '/path/code' });
    problemAt('PUT', '/v1/topup-offers/top-up-200', 422, 'validation_failed', { pointer: '/bonus/installments/count' });
    problemAt('GET', '/v1/topup-offers/top-up-200?version=0', 400, 'invalid_parameter', { pointer: '/query/version' });
    problemAt('GET', '/v1/topup-offers/top-up-200?version=9', 404, 'not_found');
    assert.throws(() => problemAt('PUT', '/v1/topup-offers/top-up-200', 404, 'not_found'), errorsMatch(/status is not documented/), 'a PUT creates');
    validateResponse({ method: 'DELETE', path: '/v1/topup-offers/top-up-200', status: 405, headers: { ...problemHeaders, allow: 'GET, PUT' }, body: problem(405, 'method_not_allowed') });
    validateResponse({ method: 'POST', path: '/v1/topup-offers', status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });

    // The wallet: all zeros and opened_at null before the first top-up.
    const wallet = {
      customer_id: 'cust-1001', currency: 'CNY', principal: 20000, bonus_available: 2000, bonus_scheduled: 18000, available: 22000,
      opened_at: T0, as_of: '2026-01-31T02:00:00.5Z',
    };
    const empty = { ...wallet, principal: 0, bonus_available: 0, bonus_scheduled: 0, available: 0, opened_at: null };
    const w = check('GET', '/v1/customers/cust-1001/wallet', 200);
    w.ok(wallet);
    w.ok(empty);
    w.bad({ ...empty, principal: 5, available: 5 }, /principal/, 'no balance without a wallet');
    w.bad({ ...wallet, principal: -1 }, /principal/, 'never below zero');
    w.bad({ ...wallet, as_of: null }, /as_of/, 'as_of is always an instant');
    for (const k of Object.keys(wallet)) {
      const { [k]: _, ...without } = wallet;
      w.bad(without, new RegExp(k), `${k} is required`);
    }
    problemAt('GET', '/v1/customers/cust-1001/wallet', 404, 'not_found');
    problemAt('GET', '/v1/customers/cust-1001/wallet', 400, 'invalid_parameter', { pointer: '/header/Rebuy-Test-Now' });

    // Top-ups: 201 without Location, 200 for a repeated topup_id.
    const topup = {
      topup_id: 'pay-20261122-0001', customer_id: 'cust-1001', amount: 20000, offer: 'top-up-200', offer_version: 1, bonus_total: 20000, created_at: T0, refund: null,
      installments: [
        { k: 1, amount: 2000, due_at: T0, expires_at: '2026-02-28T02:00:00Z', status: 'released', remaining: 2000 },
        { k: 2, amount: 2000, due_at: '2026-02-28T02:00:00Z', expires_at: '2026-03-31T02:00:00Z', status: 'pending', remaining: 0 },
      ],
    };
    const bare = { ...topup, topup_id: 'pay-2', offer: null, offer_version: null, bonus_total: 0, installments: [] };
    const tp = check('POST', '/v1/customers/cust-1001/wallet/topups', 201);
    tp.ok({ topup, wallet });
    tp.ok({ topup: bare, wallet: { ...wallet, bonus_available: 0, bonus_scheduled: 0, available: 20000 } });
    tp.ok({ topup, wallet }, { 'idempotent-replayed': 'true' });
    check('POST', '/v1/customers/cust-1001/wallet/topups', 200).ok({ topup, wallet });
    assert.throws(() => validateResponse({ method: 'POST', path: '/v1/customers/cust-1001/wallet/topups', status: 201, headers: { ...json, location: '/v1/x' }, body: JSON.stringify({ topup, wallet }) }), errorsMatch(/Location/), 'a top-up has no URL');
    tp.bad(topup, /topup|wallet/, 'the top-up and the wallet');
    tp.bad({ topup: { ...topup, offer_version: null }, wallet }, /offer_version/, 'an offer has its version');
    tp.bad({ topup: { ...bare, offer_version: 1 }, wallet }, /offer_version/, 'no version without an offer');
    tp.bad({ topup: { ...bare, bonus_total: 100 }, wallet }, /bonus_total/, 'no bonus without an offer');
    tp.bad({ topup: { ...bare, installments: topup.installments }, wallet }, /installments/, 'no installments without an offer');
    tp.bad({ topup: { ...topup, amount: 0 }, wallet }, /amount/, 'a top-up pays something');
    const inst = (i) => ({ topup: { ...topup, installments: [{ ...topup.installments[0], ...i }] }, wallet });
    tp.ok(inst({ k: 0, expires_at: null }));
    tp.ok(inst({ status: 'expired', remaining: 0 }));
    tp.bad(inst({ status: 'pending', remaining: 2000 }), /remaining/, 'nothing remains of a pending installment');
    tp.bad(inst({ status: 'expired', remaining: 1 }), /remaining/, 'nothing remains of an expired installment');
    tp.bad(inst({ status: 'due' }), /status/, 'four statuses');
    tp.bad(inst({ status: 'cancelled', remaining: 0 }), /status/, 'only a refunded top-up has cancelled installments');
    tp.bad(inst({ amount: 0 }), /amount/, 'an installment is at least 1');
    tp.bad(inst({ k: -1 }), /k/, 'k from 0');
    tp.bad(inst({ expires_at: undefined }), /expires_at/, 'expires_at is always shown');
    const tpost = (status, code, more) => problemAt('POST', '/v1/customers/cust-1001/wallet/topups', status, code, more);
    tpost(422, 'offer_limit_reached');
    tpost(422, 'validation_failed', { pointer: '/offer' });
    tpost(422, 'validation_failed', { pointer: '/amount' });
    tpost(422, 'idempotency_key_reused', { pointer: '/header/Idempotency-Key' });
    tpost(409, 'conflict');
    tpost(409, 'idempotency_in_progress');
    tpost(404, 'not_found');
    assert.throws(() => tpost(422, 'insufficient_funds', { principal: 0, bonus_available: 0, available: 0 }), errorsMatch(/\/code/), 'a top-up is never short of funds');
    assert.throws(() => tpost(422, 'quota_exceeded', { quota: 1, used: 1, remaining: 0 }), errorsMatch(/\/code/));

    // Spends, and insufficient_funds with its three extension members.
    const spend = { spend_id: 'spend-20261122-0001', customer_id: 'cust-1001', amount: 5000, from_principal: 3000, from_bonus: 2000, order_id: 'ord-20261122-0007', created_at: T0 };
    const sp = check('POST', '/v1/customers/cust-1001/wallet/spends', 201);
    const after = { ...wallet, principal: 17000, bonus_available: 0, available: 17000 };
    sp.ok({ spend, wallet: after });
    sp.ok({ spend: { ...spend, order_id: null }, wallet: after });
    check('POST', '/v1/customers/cust-1001/wallet/spends', 200).ok({ spend, wallet: after }, { 'idempotent-replayed': 'true' });
    sp.bad({ spend: { ...spend, order_id: undefined }, wallet: after }, /order_id/, 'order_id is always shown');
    sp.bad({ spend: { ...spend, from_bonus: -1 }, wallet: after }, /from_bonus/, 'parts not negative');
    sp.bad({ spend, wallet: after, topup }, /additional properties/, 'the spend and the wallet only');
    const spost = (status, code, more) => problemAt('POST', '/v1/customers/cust-1001/wallet/spends', status, code, more);
    spost(422, 'insufficient_funds', { principal: 20000, bonus_available: 2000, available: 22000 });
    spost(422, 'insufficient_funds', { principal: 0, bonus_available: 0, available: 0 });
    spost(422, 'validation_failed', { pointer: '/amount' });
    spost(409, 'conflict');
    spost(404, 'not_found');
    assert.throws(() => spost(422, 'insufficient_funds'), errorsMatch(/principal|bonus_available|available/), 'insufficient_funds carries its members');
    assert.throws(() => spost(422, 'insufficient_funds', { principal: 1, bonus_available: 1 }), errorsMatch(/available/), 'all three');
    assert.throws(() => spost(422, 'insufficient_funds', { principal: 1, bonus_available: 1, available: 2, quota: 1 }), errorsMatch(/quota/), 'not the members of quota_exceeded');
    assert.throws(() => spost(422, 'validation_failed', { available: 0 }), errorsMatch(/available/), 'the members only on insufficient_funds');
    assert.throws(() => spost(422, 'insufficient_funds', { principal: -1, bonus_available: 0, available: 0 }), errorsMatch(/principal/), 'not negative');
    assert.throws(() => spost(422, 'offer_limit_reached'), errorsMatch(/\/code/), 'a spend has no offer');
    // The benefit problem keeps its own members.
    problemAt('POST', '/v1/customers/cust-1001/benefits/free-tasting/uses', 422, 'quota_exceeded', { quota: 3, used: 3, remaining: 0 });
    assert.throws(() => problemAt('POST', '/v1/customers/cust-1001/benefits/free-tasting/uses', 422, 'quota_exceeded', { quota: 3, used: 3, remaining: 0, available: 0 }), errorsMatch(/available/));
    for (const path of ['/v1/customers/cust-1001/wallet/topups', '/v1/customers/cust-1001/wallet/spends']) {
      validateResponse({ method: 'GET', path, status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });
    }
    validateResponse({ method: 'POST', path: '/v1/customers/cust-1001/wallet', status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });

    // The statement: movements with signed changes, balances after, the schedule.
    const mv = (kind, ref, p, a, s, after) => ({ at: T0, kind, ref, principal: p, bonus_available: a, bonus_scheduled: s, balance_after: after });
    const movements = [
      mv('topup', topup.topup_id, 20000, 0, 20000, { principal: 20000, bonus_available: 0, bonus_scheduled: 20000 }),
      mv('release', topup.topup_id, 0, 2000, -2000, { principal: 20000, bonus_available: 2000, bonus_scheduled: 18000 }),
      mv('spend', spend.spend_id, -3000, -2000, 0, { principal: 17000, bonus_available: 0, bonus_scheduled: 18000 }),
      { ...mv('expiry', topup.topup_id, 0, 0, -2000, { principal: 17000, bonus_available: 0, bonus_scheduled: 16000 }), at: '2026-02-28T02:00:00Z' },
    ];
    const schedule = topup.installments.map((i) => ({ topup_id: topup.topup_id, ...i }));
    const st = check('GET', '/v1/customers/cust-1001/wallet/statement', 200);
    st.ok({ wallet: after, movements, schedule });
    st.ok({ wallet: empty, movements: [], schedule: [] });
    st.ok({ wallet: after, movements: [mv('spend', 'sp-2', -5000, 0, 0, { principal: 15000, bonus_available: 0, bonus_scheduled: 0 }), mv('expiry', 'pay-1', 0, -5, 0, { principal: 15000, bonus_available: 0, bonus_scheduled: 0 })], schedule: [] });
    const bad = (m, re, what) => st.bad({ wallet: after, movements: [{ ...movements[0], ...m }], schedule }, re, what);
    bad({ kind: 'transfer' }, /kind/, 'seven kinds');
    bad({ kind: 'refund_of_topup' }, /kind/, 'the names of balances2.md');
    bad({ principal: 0 }, /principal/, 'a top-up adds principal');
    bad({ bonus_available: 100 }, /bonus_available/, 'a top-up releases nothing by itself');
    bad({ kind: 'release', principal: 0, bonus_available: 0, bonus_scheduled: 0 }, /bonus_available|bonus_scheduled/, 'a release moves something');
    bad({ kind: 'release', principal: 5, bonus_available: 5, bonus_scheduled: -5 }, /principal/, 'a release leaves principal alone');
    bad({ kind: 'spend', principal: 100, bonus_available: 0, bonus_scheduled: 0 }, /principal/, 'a spend takes');
    bad({ kind: 'spend', principal: -100, bonus_available: 0, bonus_scheduled: -1 }, /bonus_scheduled/, 'scheduled bonus cannot be spent');
    bad({ kind: 'expiry', principal: -1, bonus_available: 0, bonus_scheduled: -1 }, /principal/, 'principal never expires');
    bad({ kind: 'expiry', principal: 0, bonus_available: 1, bonus_scheduled: 0 }, /bonus_available/, 'an expiry takes back');
    bad({ principal: 1.5 }, /principal/, 'integers');
    bad({ balance_after: { principal: -1, bonus_available: 0, bonus_scheduled: 0 } }, /balance_after/, 'balances never below zero');
    bad({ balance_after: { principal: 1, bonus_available: 0 } }, /bonus_scheduled/, 'all three balances after');
    bad({ ref: '' }, /ref/, 'a reference');
    bad({ at: undefined }, /at/, 'at is required');
    st.bad({ wallet: after, movements, schedule: [{ ...schedule[0], topup_id: undefined }] }, /topup_id/, 'the schedule names the top-up');
    st.bad({ wallet: after, movements, schedule: [{ ...schedule[1], remaining: 5 }] }, /remaining/, 'nothing remains of a pending installment');
    st.bad({ wallet: after, movements }, /schedule/, 'schedule is required');
    problemAt('GET', '/v1/customers/cust-1001/wallet/statement', 404, 'not_found');
    problemAt('GET', '/v1/customers/cust-1001/wallet/statement', 400, 'invalid_parameter', { pointer: '/query/from' });

    // settings.balances: always shown, one of three orders.
    const shopCheck = check('GET', `/v1/shops/${SHOP_ID}`, 200);
    for (const order of ['bonus_first', 'principal_first', 'proportional']) shopCheck.ok({ ...shop, settings: { ...shop.settings, balances: { consumption_order: order } } });
    const { balances: _b, ...noBalances } = shop.settings;
    shopCheck.bad({ ...shop, settings: noBalances }, /balances/, 'balances is always shown');
    shopCheck.bad({ ...shop, settings: { ...shop.settings, balances: {} } }, /consumption_order/, 'the order is always shown');
    shopCheck.bad({ ...shop, settings: { ...shop.settings, balances: { consumption_order: 'lifo' } } }, /consumption_order/, 'three orders');
    problemAt('PATCH', `/v1/shops/${SHOP_ID}`, 422, 'validation_failed', { pointer: '/settings/balances/consumption_order' });
  });

  test('wallets slice 2: spend refunds, top-up refunds, adjustments, new movements, liability, holders', () => {
    const errorsMatch = (re) => (e) => re.test(e.message.split('\n  body: ')[0]);
    const check = (method, path, status, extra = {}) => ({
      ok: (body, headers = {}) => validateResponse({ method, path, status, headers: { ...json, ...extra, ...headers }, body: JSON.stringify(body) }),
      bad: (body, re, what) => assert.throws(
        () => validateResponse({ method, path, status, headers: { ...json, ...extra }, body: JSON.stringify(body) }), errorsMatch(re), what),
    });
    const problemAt = (method, path, status, code, more) =>
      validateResponse({ method, path, status, headers: problemHeaders, body: problem(status, code, more) });
    const T0 = '2026-01-31T02:00:00Z';
    const T1 = '2026-02-10T02:00:00Z';
    const wallet = {
      customer_id: 'cust-1001', currency: 'CNY', principal: 17000, bonus_available: 2000, bonus_scheduled: 16000, available: 19000,
      opened_at: T0, as_of: T1,
    };

    // Refund of a spend: 201 without Location, 200 for a repeated refund_id.
    const RP = '/v1/customers/cust-1001/wallet/spends/spend-20261122-0001/refunds';
    const refund = { refund_id: 'refund-20261122-0001', spend_id: 'spend-20261122-0001', amount: 4000, to_principal: 3000, to_bonus: 1000, to_breakage: 0, created_at: T1 };
    const rf = check('POST', RP, 201);
    rf.ok({ refund, wallet });
    rf.ok({ refund: { ...refund, to_bonus: 0, to_breakage: 1000 }, wallet });
    rf.ok({ refund, wallet }, { 'idempotent-replayed': 'true' });
    check('POST', RP, 200).ok({ refund, wallet });
    assert.throws(() => validateResponse({ method: 'POST', path: RP, status: 201, headers: { ...json, location: '/v1/x' }, body: JSON.stringify({ refund, wallet }) }), errorsMatch(/Location/), 'a refund has no URL');
    for (const k of Object.keys(refund)) {
      const { [k]: _, ...without } = refund;
      rf.bad({ refund: without, wallet }, new RegExp(k), `${k} is always shown`);
    }
    rf.bad({ refund: { ...refund, amount: 0 }, wallet }, /amount/, 'a refund gives something back');
    rf.bad({ refund: { ...refund, to_bonus: -1 }, wallet }, /to_bonus/, 'parts not negative');
    rf.bad({ refund: { ...refund, customer_id: 'cust-1001' }, wallet }, /additional properties/, 'the members of balances2.md only');
    rf.bad({ refund }, /wallet/, 'the refund and the wallet');
    rf.bad({ refund, wallet, spend: {} }, /additional properties/, 'nothing else');
    const rpost = (status, code, more) => problemAt('POST', RP, status, code, more);
    rpost(404, 'not_found');
    rpost(409, 'conflict', { pointer: '/refund_id' });
    rpost(409, 'idempotency_in_progress');
    rpost(422, 'validation_failed', { pointer: '/amount' });
    rpost(422, 'idempotency_key_reused', { pointer: '/header/Idempotency-Key' });
    rpost(400, 'invalid_parameter', { pointer: '/path/id' });
    rpost(403, 'forbidden');
    assert.throws(() => rpost(422, 'insufficient_funds', { principal: 0, bonus_available: 0, available: 0 }), errorsMatch(/\/code/), 'a refund never lacks funds');
    assert.throws(() => rpost(409, 'order_conflict'), errorsMatch(/\/code/));
    validateResponse({ method: 'GET', path: RP, status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });

    // Refund of a top-up: the top-up with its refund, the installments cancelled.
    const TP = '/v1/customers/cust-1001/wallet/topups/pay-20261122-0001/refund';
    const inst = (k, status, remaining = 0) => ({ k, amount: 2000, due_at: T0, expires_at: '2026-02-28T02:00:00Z', status, remaining });
    const topup = {
      topup_id: 'pay-20261122-0001', customer_id: 'cust-1001', amount: 20000, offer: 'top-up-200', offer_version: 1, bonus_total: 6000, created_at: T0,
      refund: { refunded_at: T1, principal_returned: 17000, bonus_cancelled: 2000, bonus_clawed_back: 1500 },
      installments: [inst(1, 'released'), inst(2, 'cancelled'), inst(3, 'cancelled')],
    };
    const emptied = { ...wallet, principal: 0, bonus_available: 0, bonus_scheduled: 0, available: 0 };
    const tr = check('POST', TP, 201);
    tr.ok({ topup, wallet: emptied });
    tr.ok({ topup: { ...topup, installments: [inst(1, 'expired'), inst(2, 'released'), inst(3, 'cancelled')] }, wallet: emptied });
    tr.ok({ topup: { ...topup, offer: null, offer_version: null, bonus_total: 0, installments: [], refund: { ...topup.refund, bonus_cancelled: 0, bonus_clawed_back: 0 } }, wallet: emptied });
    check('POST', TP, 200).ok({ topup, wallet: emptied });
    check('POST', TP, 200).ok({ topup, wallet: emptied }, { 'idempotent-replayed': 'true' });
    assert.throws(() => validateResponse({ method: 'POST', path: TP, status: 201, headers: { ...json, location: '/v1/x' }, body: JSON.stringify({ topup, wallet: emptied }) }), errorsMatch(/Location/), 'no URL');
    tr.bad({ topup: { ...topup, refund: null }, wallet: emptied }, /refund/, 'a refunded top-up shows its refund');
    for (const k of Object.keys(topup.refund)) {
      const { [k]: _, ...without } = topup.refund;
      tr.bad({ topup: { ...topup, refund: without }, wallet: emptied }, new RegExp(k), `refund.${k} is always shown`);
    }
    tr.bad({ topup: { ...topup, refund: { ...topup.refund, principal_returned: -1 } }, wallet: emptied }, /principal_returned/, 'not negative');
    tr.bad({ topup: { ...topup, refund: { ...topup.refund, refunded_at: null } }, wallet: emptied }, /refunded_at/, 'refunded_at is an instant');
    tr.bad({ topup: { ...topup, installments: [inst(1, 'pending')] }, wallet: emptied }, /status/, 'a refund leaves nothing pending');
    tr.bad({ topup: { ...topup, installments: [inst(2, 'cancelled', 5)] }, wallet: emptied }, /remaining/, 'nothing remains of a cancelled installment');
    tr.bad({ topup: { ...topup, offer: null, offer_version: null, bonus_total: 0, installments: [] }, wallet: emptied }, /bonus_cancelled|bonus_clawed_back/, 'no bonus to take back without an offer');
    const { refund: _r, ...noRefund } = topup;
    check('POST', '/v1/customers/cust-1001/wallet/topups', 201).bad({ topup: { ...noRefund, installments: [] }, wallet }, /refund/, 'refund is always present');
    const trpost = (status, code, more) => problemAt('POST', TP, status, code, more);
    trpost(404, 'not_found');
    trpost(409, 'idempotency_in_progress');
    trpost(422, 'validation_failed', { pointer: '/x' });
    trpost(422, 'validation_failed');
    trpost(415, 'unsupported_media_type', { pointer: '/header/Content-Type' });
    trpost(400, 'malformed_json');
    assert.throws(() => trpost(409, 'conflict'), errorsMatch(/\/code/), 'refunding again is not a conflict');
    validateResponse({ method: 'GET', path: TP, status: 405, headers: { ...problemHeaders, allow: 'POST' }, body: problem(405, 'method_not_allowed') });

    // Adjustments: signed, not 0; insufficient_funds with its members.
    const AP = '/v1/customers/cust-1001/wallet/adjustments';
    const adjustment = { adjustment_id: 'adj-20261122-0001', amount: 1000, reason: 'Goodwill credit for a late delivery', created_at: T1 };
    const ad = check('POST', AP, 201);
    ad.ok({ adjustment, wallet });
    ad.ok({ adjustment: { ...adjustment, amount: -1000 }, wallet });
    check('POST', AP, 200).ok({ adjustment, wallet });
    assert.throws(() => validateResponse({ method: 'POST', path: AP, status: 201, headers: { ...json, location: '/v1/x' }, body: JSON.stringify({ adjustment, wallet }) }), errorsMatch(/Location/), 'no URL');
    ad.bad({ adjustment: { ...adjustment, amount: 0 }, wallet }, /amount/, 'never 0');
    ad.bad({ adjustment: { ...adjustment, reason: '' }, wallet }, /reason/, 'a reason');
    for (const k of Object.keys(adjustment)) {
      const { [k]: _, ...without } = adjustment;
      ad.bad({ adjustment: without, wallet }, new RegExp(k), `${k} is always shown`);
    }
    const apost = (status, code, more) => problemAt('POST', AP, status, code, more);
    apost(422, 'insufficient_funds', { principal: 700, bonus_available: 500, available: 1200 });
    apost(422, 'validation_failed', { pointer: '/amount' });
    apost(422, 'idempotency_key_reused', { pointer: '/header/Idempotency-Key' });
    apost(409, 'conflict', { pointer: '/adjustment_id' });
    apost(409, 'idempotency_in_progress');
    apost(404, 'not_found');
    apost(403, 'forbidden');
    assert.throws(() => apost(422, 'insufficient_funds'), errorsMatch(/principal|available/), 'insufficient_funds carries its members');
    assert.throws(() => apost(422, 'offer_limit_reached'), errorsMatch(/\/code/));
    const adjOp = loadSpec().paths['/v1/customers/{id}/wallet/adjustments'].post;
    assert.deepEqual(adjOp.security, [{ bearerAuth: ['admin'] }], 'adjustments: admin only');
    for (const op of [loadSpec().paths['/v1/customers/{id}/wallet/spends/{spend_id}/refunds'].post, loadSpec().paths['/v1/customers/{id}/wallet/topups/{topup_id}/refund'].post]) {
      assert.deepEqual(op.security, [{ bearerAuth: ['admin', 'storefront'] }], `${op.operationId}: admin and storefront`);
    }
    for (const op of [adjOp, loadSpec().paths['/v1/customers/{id}/wallet/spends/{spend_id}/refunds'].post, loadSpec().paths['/v1/customers/{id}/wallet/topups/{topup_id}/refund'].post]) {
      const names = op.parameters.map((p) => p.$ref.split('/').pop());
      assert.deepEqual(names, ['IdempotencyKey', 'TestNow'], `${op.operationId}: Idempotency-Key and Rebuy-Test-Now`);
    }
    assert.equal(loadSpec().paths['/v1/customers/{id}/wallet/topups/{topup_id}/refund'].post.requestBody, undefined, 'the top-up refund takes no body');

    // The statement: the three new kinds with their signs, cancelled installments.
    const mv = (kind, ref, p, a, s, after) => ({ at: T1, kind, ref, principal: p, bonus_available: a, bonus_scheduled: s, balance_after: after });
    const bal = { principal: 0, bonus_available: 0, bonus_scheduled: 0 };
    const st = check('GET', '/v1/customers/cust-1001/wallet/statement', 200);
    const one = (m) => ({ wallet: emptied, movements: [m], schedule: [] });
    st.ok(one(mv('refund', 'refund-1', 3000, 1000, 0, bal)));
    st.ok(one(mv('refund', 'refund-2', 0, 0, 0, bal)));
    st.ok(one(mv('topup_refund', 'pay-1', -17000, -1500, -2000, bal)));
    st.ok(one(mv('topup_refund', 'pay-1', 0, 0, 0, bal)));
    st.ok(one(mv('adjustment', 'adj-1', 1000, 0, 0, bal)));
    st.ok(one(mv('adjustment', 'adj-1', -1000, 0, 0, bal)));
    st.ok({ wallet: emptied, movements: [], schedule: [{ topup_id: 'pay-1', ...inst(2, 'cancelled') }] });
    st.bad({ wallet: emptied, movements: [], schedule: [{ topup_id: 'pay-1', ...inst(2, 'cancelled', 1) }] }, /remaining/, 'nothing remains of a cancelled installment');
    st.bad(one(mv('refund', 'refund-1', -1, 0, 0, bal)), /principal/, 'a refund gives back');
    st.bad(one(mv('refund', 'refund-1', 0, -1, 0, bal)), /bonus_available/, 'a refund gives back bonus');
    st.bad(one(mv('refund', 'refund-1', 0, 0, 1, bal)), /bonus_scheduled/, 'a refund schedules nothing');
    st.bad(one(mv('topup_refund', 'pay-1', 1, 0, 0, bal)), /principal/, 'a top-up refund takes out');
    st.bad(one(mv('topup_refund', 'pay-1', 0, 1, 0, bal)), /bonus_available/, 'a top-up refund claws back');
    st.bad(one(mv('topup_refund', 'pay-1', 0, 0, 1, bal)), /bonus_scheduled/, 'a top-up refund cancels');
    st.bad(one(mv('adjustment', 'adj-1', 0, 0, 0, bal)), /principal/, 'an adjustment is never 0');
    st.bad(one(mv('adjustment', 'adj-1', 5, 5, 0, bal)), /bonus_available/, 'an adjustment leaves the bonus alone');
    st.bad(one(mv('adjustment', 'adj-1', 5, 0, -5, bal)), /bonus_scheduled/, 'and the scheduled bonus');

    // Prepaid liability: the figures, by offer; the identity holds in the fixture.
    const LP = '/v1/metrics/prepaid-liability';
    const liability = {
      principal_outstanding: 17700, bonus_available: 2000, bonus_scheduled: 16000, bonus_expired: 1000,
      cash_received: 20000, bonus_granted: 21000, spent: 5000, adjustments: 700, wallets: 2,
      by_offer: [
        { offer: 'imm', bonus_granted: 1000, bonus_released: 1000, bonus_scheduled: 0, bonus_expired: 1000, bonus_cancelled: 0 },
        { offer: 'top-up-200', bonus_granted: 20000, bonus_released: 4000, bonus_scheduled: 16000, bonus_expired: 0, bonus_cancelled: 0 },
      ],
    };
    const L = liability;
    assert.equal(L.cash_received + L.bonus_granted + L.adjustments, L.principal_outstanding + L.bonus_available + L.bonus_scheduled + L.spent + L.bonus_expired, 'fixture: the identity of balances2.md');
    const definition = { timezone: 'Asia/Shanghai', as_of: '2026-10-31', currency: 'CNY' };
    const lc = check('GET', `${LP}?as_of=2026-10-31`, 200);
    lc.ok({ definition, liability });
    lc.ok({ definition, liability: { ...liability, adjustments: -700, by_offer: [] } });
    for (const k of Object.keys(liability)) {
      const { [k]: _, ...without } = liability;
      lc.bad({ definition, liability: without }, new RegExp(k), `${k} is always shown`);
    }
    for (const k of Object.keys(liability.by_offer[0])) {
      const { [k]: _, ...without } = liability.by_offer[0];
      lc.bad({ definition, liability: { ...liability, by_offer: [without] } }, new RegExp(k), `by_offer[].${k} is always shown`);
    }
    lc.bad({ definition, liability: { ...liability, principal_outstanding: -1 } }, /principal_outstanding/, 'balances not negative');
    lc.bad({ definition, liability: { ...liability, wallets: -1 } }, /wallets/, 'a count');
    lc.bad({ definition, liability: { ...liability, breakage: 0 } }, /additional properties/, 'the members of balances2.md');
    lc.bad({ definition: { ...definition, from: '2026-10-01' }, liability }, /additional properties/, 'a day, not a range');
    lc.bad({ definition: { ...definition, currency: undefined }, liability }, /currency/, 'the currency');
    lc.bad({ liability }, /definition/, 'definition is required');
    problemAt('GET', LP, 400, 'invalid_parameter', { pointer: '/query/as_of' });
    problemAt('GET', LP, 400, 'invalid_parameter', { pointer: '/header/Rebuy-Test-Now' });
    problemAt('GET', LP, 403, 'forbidden');
    assert.throws(() => problemAt('GET', LP, 404, 'not_found'), errorsMatch(/status is not documented/));
    validateResponse({ method: 'POST', path: LP, status: 405, headers: { ...problemHeaders, allow: 'GET' }, body: problem(405, 'method_not_allowed') });
    assert.deepEqual(loadSpec().paths[LP].get.security, [{ bearerAuth: ['admin', 'readonly'] }], 'liability: admin and readonly');

    // Wallet holders vs non-holders: the membership groups under other names.
    const HP = '/v1/metrics/wallet-holders';
    const group = (name) => ({ group: name, customers: 4, repeat_customers: 1, repurchase_rate: 0.25, orders: 5, orders_per_customer: 1.25, intervals: 1, days_between_orders: 30 });
    const hdef = {
      timezone: 'Asia/Shanghai', from: '2026-08-26', to: '2026-11-23', as_of: '2026-11-23',
      rule: { exclude_refunded: true, min_order_amount: 0, merge_window_hours: 0 },
      caveat: 'A comparison of groups, not a causal effect: customers who buy more are likelier to top up a wallet.',
    };
    const hc = check('GET', HP, 200);
    hc.ok({ definition: hdef, holders: group('holders'), non_holders: group('non_holders') });
    hc.ok({ definition: hdef, holders: { ...group('holders'), customers: 0, repeat_customers: 0, repurchase_rate: null, orders: 0, orders_per_customer: null, intervals: 0, days_between_orders: null }, non_holders: group('non_holders') });
    hc.bad({ definition: hdef, holders: group('members'), non_holders: group('non_holders') }, /group/, 'the groups are named');
    hc.bad({ definition: hdef, holders: group('holders') }, /non_holders/, 'both groups');
    hc.bad({ definition: { ...hdef, caveat: 'A comparison of groups, not a causal effect: customers who buy more are likelier to join or earn a tier.' }, holders: group('holders'), non_holders: group('non_holders') }, /caveat/, 'its own caveat');
    hc.bad({ definition: { ...hdef, channel: null }, holders: group('holders'), non_holders: group('non_holders') }, /additional properties/, 'no channel');
    hc.bad({ definition: hdef, holders: group('holders'), non_holders: group('non_holders'), tiers: [] }, /additional properties/, 'no tiers');
    problemAt('GET', HP, 400, 'invalid_parameter', { pointer: '/query/from' });
    problemAt('GET', HP, 403, 'forbidden');
    assert.deepEqual(loadSpec().paths[HP].get.parameters.map((p) => p.$ref.split('/').pop()), ['MetricsFrom', 'MetricsTo', 'MetricsAsOf'], 'the parameters of /v1/metrics/membership');
  });
});

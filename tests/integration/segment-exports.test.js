// Segment exports and RFM fields in custom filters (export.md):
//   - GET /v1/segments/{code}/customers negotiates on Accept: a JSON page, or
//     the whole segment as CSV or NDJSON, streamed;
//   - custom segment filters on rfm_recency, rfm_frequency, rfm_monetary and
//     rfm_segment.
//
// As in segments.test.js, every history is built RELATIVE to today in the
// shop's time zone: "e1: 500, 400" means customer e1 has orders placed 500 and
// 400 local calendar days before today (at local noon unless a time is given).
// Every expected export text, membership and score is worked out by hand in
// the comment or table next to it; nothing here re-implements a rule. The one
// exception is the big shop, whose exports are compared with the JSON pages
// of the same segment (that is the promise: the same members, values and order).
//
// Time zone: the shops live in a fixed-offset zone (Etc/GMT±N) chosen when
// this file loads so that it is 12:xx local time there now. "Today" is then
// at least 11 hours away from either midnight, so a run never straddles a
// date change.
//
// Exports are read over a raw socket (rawHttp): fetch always sends an Accept
// header and hides the transfer coding, and the harness's JSON client would
// parse an NDJSON body as one JSON document.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, assertProblemShape, rawHttp, uniq, REQUEST_ID_RE,
} from '../lib/harness.js';
import {
  ZX, localAt, DEFAULT_RFM_MAP, historyCalls,
} from '../lib/history.js';
import { validateResponse } from '../lib/contract.js';

let svc;
let c;
let people, load, cancel;

const CSV_COLUMNS = [
  'id', 'name', 'email', 'phone', 'tags', 'consent_email', 'consent_sms', 'consent_wechat',
  'order_count', 'first_order_at', 'last_order_at', 'days_since_first_order', 'days_since_last_order',
  'total_spent', 'reason',
];
const HEADER = `${CSV_COLUMNS.join(',')}\r\n`;
/** The CSV columns of each `fields` name (export.md). */
const FIELD_COLUMNS = {
  name: ['name'],
  email: ['email'],
  phone: ['phone'],
  tags: ['tags'],
  consent: ['consent_email', 'consent_sms', 'consent_wechat'],
  facts: ['order_count', 'first_order_at', 'last_order_at', 'days_since_first_order', 'days_since_last_order', 'total_spent'],
  reason: ['reason'],
};
const CSV_TYPE = 'text/csv; charset=utf-8; header=present';
const NDJSON_TYPE = 'application/x-ndjson';
const CSV = 'text/csv';
const NDJSON = 'application/x-ndjson';
const BUILT_INS = ['second-purchase-window', 'due-for-repurchase', 'lapsing', 'lapsed', 'vip'];

// ---------------------------------------------------------------------------
// time zones and dates: zone X, TODAY and localAt come from ../lib/history.js

/** n local days before today in zone X, at the given local time: RFC 3339 with X's offset. */
const at = (n, hhmm = '12:00') => localAt(n, hhmm);
/** The same instant as the server writes it (UTC, six fractional digits; whole seconds here). */
const utc = (n, hhmm = '12:00') => new Date(Date.parse(at(n, hhmm))).toISOString().replace(/\.000Z$/, '.000000Z');

// ---------------------------------------------------------------------------
// helpers

/** The condition {field, op, value}. */
const C = (field, op, value) => ({ field, op, value });

/** One order of `cust`, n days ago, one line at `price`. */
function ord(id, cust, n, { price = 10000, time = '12:00' } = {}) {
  return {
    id,
    customer_id: cust,
    placed_at: at(n, time),
    channel: 'web',
    currency: 'CNY',
    lines: [{ sku: 'SKU-tea', category: 'tea', role: 'regular', quantity: 1, unit_price: price }],
    total: price,
  };
}

/**
 * `count` orders of `cust` worth `total` in all: the most recent `days` days
 * ago (id <cust>-0), the others `step` days further back each. Every order is
 * `base` except the oldest, which carries the rest (as in rfm.test.js).
 */
function hist(cust, days, count, total, { step = 7, base = 1000 } = {}) {
  const out = [];
  for (let k = 0; k < count; k++) {
    const price = k === count - 1 ? total - base * (count - 1) : base;
    assert.ok(price >= 0, `hist ${cust}: total ${total} too small for ${count} orders of ${base}`);
    out.push(ord(`${cust}-${k}`, cust, days + step * k, { price, time: '10:00' }));
  }
  return out;
}

/** A shop in zone X with admin, storefront and readonly keys; s.key is the admin key. */
async function mkShop() {
  const s = await setupShop(svc, { timezone: ZX, name: uniq('Exports Shop') });
  s.key = s.keys.admin;
  return s;
}

/** Query string; commas stay literal (fields=name,email). */
const qs = (q = {}) => {
  const s = Object.entries(q).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2C/g, ',')}`).join('&');
  return s ? `?${s}` : '';
};

/**
 * GET over a raw socket. accept: the Accept header (null: none at all).
 * Returns {method, path, status, headers, text, body, raw}; checks
 * X-Request-Id, the problem shape of errors and the OpenAPI contract.
 */
async function xget(path, { key, accept = null, headers = {}, timeoutMs = 120000 } = {}) {
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${svc.port}\r\n`;
  if (key) head += `Authorization: Bearer ${key}\r\n`;
  if (accept !== null) head += `Accept: ${accept}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  head += 'Connection: close\r\n\r\n';
  const r = await rawHttp(svc, head, { timeoutMs });
  assert.ok(!r.closed, `GET ${path}: the server closed without a response: ${r.raw?.slice(0, 500)}`);
  const res = { method: 'GET', path, status: r.status, headers: r.headers, text: r.text, body: null, raw: r.raw };
  const mt = (res.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (mt === 'application/json' || mt === 'application/problem+json') {
    try { res.body = JSON.parse(res.text); } catch { assert.fail(`GET ${path}: declared ${mt} but not JSON: ${res.text.slice(0, 300)}`); }
  }
  assert.match(res.headers['x-request-id'] || '', REQUEST_ID_RE, `GET ${path}: X-Request-Id`);
  if (res.status >= 400) assertProblemShape(res, `GET ${path} (Accept: ${accept})`);
  try {
    validateResponse({ method: 'GET', path, status: res.status, headers: res.headers, body: res.text });
  } catch (e) {
    e.message = `contract violation for GET ${path} (Accept: ${accept}) -> ${res.status}: ${e.message}`;
    throw e;
  }
  return res;
}

const membersPath = (code, q) => `/v1/segments/${code}/customers${qs(q)}`;

/** The value of a token list header (Vary) holds `token` (case-insensitive). */
const hasToken = (v, token) => (v || '').split(',').map((x) => x.trim().toLowerCase()).includes(token.toLowerCase());
function assertVary(res, what = '') {
  assert.ok(hasToken(res.headers.vary, 'Accept'), `${what} ${res.method} ${res.path} -> ${res.status}: Vary: Accept expected, got ${JSON.stringify(res.headers.vary)}`);
}

/** A CSV export: 200, the export headers, streamed (chunked, no Content-Length). Returns the text. */
async function csvOf(key, code, q = {}, accept = CSV) {
  const r = await xget(membersPath(code, q), { key, accept });
  assert.equal(r.status, 200, `CSV ${code}${qs(q)}: ${r.text.slice(0, 500)}`);
  assertExportHeaders(r, code, 'csv');
  return r.text;
}

/** An NDJSON export: 200, the export headers. Returns the text. */
async function ndjsonOf(key, code, q = {}, accept = NDJSON) {
  const r = await xget(membersPath(code, q), { key, accept });
  assert.equal(r.status, 200, `NDJSON ${code}${qs(q)}: ${r.text.slice(0, 500)}`);
  assertExportHeaders(r, code, 'ndjson');
  return r.text;
}

function assertExportHeaders(r, code, kind) {
  const what = `${kind} export of ${code}`;
  assert.equal(r.headers['content-type'], kind === 'csv' ? CSV_TYPE : NDJSON_TYPE, `${what}: Content-Type`);
  assert.equal(r.headers['content-disposition'], `attachment; filename="${code}.${kind}"`, `${what}: Content-Disposition`);
  assert.equal(r.headers['cache-control'], 'no-store', `${what}: Cache-Control`);
  assertVary(r, what);
  assert.equal(r.headers['content-length'], undefined, `${what}: streamed, no Content-Length`);
  assert.match(r.headers['transfer-encoding'] || '', /^chunked$/i, `${what}: Transfer-Encoding: chunked`);
}

/**
 * Parses RFC 4180 CSV: every record ends with CRLF (the last too); a field is
 * quoted exactly when it contains , " CR or LF (quotes doubled inside).
 * Returns an array of records (arrays of strings).
 */
function parseCsv(text) {
  assert.ok(text.endsWith('\r\n'), `CSV ends with CRLF: ${JSON.stringify(text.slice(-40))}`);
  const rows = [];
  let i = 0;
  while (i < text.length) {
    const row = [];
    for (;;) {
      let field = '';
      let quoted = false;
      if (text[i] === '"') {
        quoted = true;
        i++;
        for (;;) {
          const q = text.indexOf('"', i);
          assert.ok(q >= 0, `unterminated quoted field at ${i}`);
          field += text.slice(i, q);
          i = q + 1;
          if (text[i] === '"') { field += '"'; i++; } else break;
        }
      } else {
        let j = i;
        while (j < text.length && text[j] !== ',' && text[j] !== '\r' && text[j] !== '\n') {
          assert.notEqual(text[j], '"', `a quote inside an unquoted field at ${j}: ${JSON.stringify(text.slice(Math.max(0, j - 40), j + 40))}`);
          j++;
        }
        field = text.slice(i, j);
        i = j;
      }
      assert.equal(quoted, /[,"\r\n]/.test(field), `quoted exactly when needed: ${JSON.stringify(field)}`);
      row.push(field);
      if (text[i] === ',') { i++; continue; }
      assert.equal(text.slice(i, i + 2), '\r\n', `a record ends with CRLF at ${i}: ${JSON.stringify(text.slice(Math.max(0, i - 40), i + 40))}`);
      i += 2;
      break;
    }
    rows.push(row);
  }
  return rows;
}

/** Parses NDJSON: one object per line, every line ends with LF (the last too), no CR. */
function parseNdjson(text) {
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `NDJSON ends with LF: ${JSON.stringify(text.slice(-40))}`);
  const lines = text.slice(0, -1).split('\n');
  return lines.map((l, i) => {
    assert.ok(l.length > 0, `line ${i + 1} is not empty`);
    assert.ok(!l.endsWith('\r'), `line ${i + 1} ends with LF only`);
    const v = JSON.parse(l);
    assert.ok(v && typeof v === 'object' && !Array.isArray(v), `line ${i + 1} is an object: ${l}`);
    return v;
  });
}

/** The CSV columns picked by a `fields` value (undefined: all). */
function columnsOf(fields) {
  if (fields === undefined) return CSV_COLUMNS;
  const picked = new Set(['id', ...fields.split(',').flatMap((f) => FIELD_COLUMNS[f])]);
  return CSV_COLUMNS.filter((col) => picked.has(col));
}

/** A JSON list item's CSV value of a column (reason is compared as JSON, see csvMatches). */
function csvValue(item, col) {
  const f = item.facts;
  switch (col) {
    case 'id': return item.id;
    case 'name': case 'email': case 'phone': return item[col] ?? '';
    case 'tags': return item.tags.join(';');
    case 'consent_email': return String(item.consent.email);
    case 'consent_sms': return String(item.consent.sms);
    case 'consent_wechat': return String(item.consent.wechat);
    case 'order_count': case 'days_since_first_order': case 'days_since_last_order': case 'total_spent': return String(f[col]);
    case 'first_order_at': case 'last_order_at': return f[col];
    default: throw new Error(`test bug: column ${col}`);
  }
}

/** Asserts that the CSV records (header first) carry exactly the JSON items, in order. */
function csvMatches(rows, items, fields, what) {
  const cols = columnsOf(fields);
  assert.deepEqual(rows[0], cols, `${what}: header`);
  assert.equal(rows.length - 1, items.length, `${what}: one record per member`);
  for (let k = 0; k < items.length; k++) {
    const row = rows[k + 1];
    const it = items[k];
    assert.equal(row.length, cols.length, `${what}: record ${k + 1} has ${cols.length} fields: ${JSON.stringify(row)}`);
    cols.forEach((col, j) => {
      if (col === 'reason') {
        if (it.reason === null) assert.equal(row[j], '', `${what}: ${it.id} reason null → empty`);
        else assert.deepEqual(JSON.parse(row[j]), it.reason, `${what}: ${it.id} reason`);
      } else {
        assert.equal(row[j], csvValue(it, col), `${what}: ${it.id} ${col}`);
      }
    });
  }
}

/** All members of a segment through the JSON pages (limit 200 unless given), following next_cursor. */
async function pages(key, code, q = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 1000; page++) {
    const query = { limit: 200, ...q };
    if (cursor !== null) query.cursor = cursor;
    const r = await c.get(membersPath(code, query), { key, timeoutMs: 60000 });
    assert.equal(r.status, 200, `${code}${qs(query)}: ${r.text}`);
    items.push(...r.body.items);
    cursor = r.body.next_cursor;
    if (cursor === null) return items;
  }
  assert.fail('pagination did not terminate');
}

const ids = (items) => items.map((x) => x.id);

/** PUT a new custom segment; returns the body (201). */
async function create(key, code, filter, name = `Segment ${code}`) {
  const r = await c.put(`/v1/segments/${code}`, { name, filter }, { key });
  assert.equal(r.status, 201, `PUT ${code} ${JSON.stringify(filter)}: ${r.text}`);
  return r.body;
}

/** The CSV record of a lapsed member of shop E (reason {"days_since_last_order": dsl}). */
const lapsedRow = (fieldsText, dsl) => `${fieldsText},"{""days_since_last_order"": ${dsl}}"\r\n`;

// ---------------------------------------------------------------------------
// shop E: a small crafted history (default settings: lapse_days 365)
//
// Customers in this order (profile; orders days ago: amount):
//   e1: name `Wang, "Fang"⏎Jr.` (comma, quotes, a line feed), no email, phone "+86 138 0013 8000",
//       tags [vip, tea], consent email.                    Orders 500: 12000; 400: 8000
//   e2: name Li Wei, email li.wei@example.com, no tags, consent sms + wechat.   366: 5000
//   e3: no profile at all (name, email, phone null; no tags; no consent).      1000: 100
//   e4: Recent Buyer, email recent@example.com, consent email.                 10: 3000
//   e5: name "Carriage⏎Return" with a CR, email "x,y@example.com" (a comma), tags [a:b],
//       consent email + wechat.                                                367: 700
//   e6: Boundary.                                                              365: 100
//   e7: Cancelled (its only order is cancelled: no qualifying occasion).      400: 900
//   e8: name `He said "hi"` (quotes only), email he@example.com, tags [x],
//       consent email explicitly not granted.                                  800: 2500
// lapsed (days since last > 365), in creation order: e1 (400), e2 (366), e3 (1000), e5 (367),
// e8 (800). Not: e4 (10), e6 (365 is not > 365), e7 (no qualifying order).
// second-purchase-window (one purchase < 45 days ago): e4 (days_left 45 − 10 = 35).
const E_CUSTOMERS = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8'];
const E_PROFILES = {
  e1: { name: 'Wang, "Fang"\nJr.', phone: '+86 138 0013 8000', tags: ['vip', 'tea'], consent: { email: { granted: true } } },
  e2: { name: 'Li Wei', email: 'li.wei@example.com', consent: { sms: { granted: true }, wechat: { granted: true } } },
  e3: {},
  e4: { name: 'Recent Buyer', email: 'recent@example.com', consent: { email: { granted: true } } },
  e5: { name: 'Carriage\rReturn', email: 'x,y@example.com', tags: ['a:b'], consent: { email: { granted: true }, wechat: { granted: true } } },
  e6: { name: 'Boundary' },
  e7: { name: 'Cancelled' },
  e8: { name: 'He said "hi"', email: 'he@example.com', tags: ['x'], consent: { email: { granted: false } } },
};
const E_ORDERS = () => [
  ord('e1-1', 'e1', 500, { price: 12000 }), ord('e1-2', 'e1', 400, { price: 8000 }),
  ord('e2-1', 'e2', 366, { price: 5000 }),
  ord('e3-1', 'e3', 1000, { price: 100 }),
  ord('e4-1', 'e4', 10, { price: 3000 }),
  ord('e5-1', 'e5', 367, { price: 700 }),
  ord('e6-1', 'e6', 365, { price: 100 }),
  ord('e7-1', 'e7', 400, { price: 900 }),
  ord('e8-1', 'e8', 800, { price: 2500 }),
];
// The lapsed export, by hand: every column, in order; one record per member (e1, e2, e3, e5, e8).
const E_LAPSED_LINES = [
  lapsedRow(`e1,"Wang, ""Fang""\nJr.",,+86 138 0013 8000,vip;tea,true,false,false,2,${utc(500)},${utc(400)},500,400,20000`, 400),
  lapsedRow(`e2,Li Wei,li.wei@example.com,,,false,true,true,1,${utc(366)},${utc(366)},366,366,5000`, 366),
  lapsedRow(`e3,,,,,false,false,false,1,${utc(1000)},${utc(1000)},1000,1000,100`, 1000),
  lapsedRow(`e5,"Carriage\rReturn","x,y@example.com",,a:b,true,false,true,1,${utc(367)},${utc(367)},367,367,700`, 367),
  lapsedRow(`e8,"He said ""hi""",he@example.com,,x,false,false,false,1,${utc(800)},${utc(800)},800,800,2500`, 800),
];
const E_LAPSED_CSV = HEADER + E_LAPSED_LINES.join('');
/** The lapsed members as JSON list items, by hand. */
const member = (id, name, email, phone, tags, consent, n, first, last, spent) => ({
  id, name, email, phone, tags,
  consent: { email: consent.includes('email'), sms: consent.includes('sms'), wechat: consent.includes('wechat') },
  facts: {
    order_count: n, first_order_at: utc(first), last_order_at: utc(last),
    days_since_first_order: first, days_since_last_order: last, total_spent: spent,
  },
  reason: { days_since_last_order: last },
});
const E_LAPSED = [
  member('e1', 'Wang, "Fang"\nJr.', null, '+86 138 0013 8000', ['vip', 'tea'], ['email'], 2, 500, 400, 20000),
  member('e2', 'Li Wei', 'li.wei@example.com', null, [], ['sms', 'wechat'], 1, 366, 366, 5000),
  member('e3', null, null, null, [], [], 1, 1000, 1000, 100),
  member('e5', 'Carriage\rReturn', 'x,y@example.com', null, ['a:b'], ['email', 'wechat'], 1, 367, 367, 700),
  member('e8', 'He said "hi"', 'he@example.com', null, ['x'], [], 1, 800, 800, 2500),
];

let E; // the crafted shop (admin, storefront, readonly keys)
let EMPTY; // a shop without orders: every segment is empty

// ---------------------------------------------------------------------------
// shop R: RFM scores known by hand (the history of rfm.test.js's shop A, without its refunds)
//
// Customers (last order days ago, occasions one week apart, net spent):
//   a1: 2, 10, 20000    a2: 5, 1, 50000     a3: 10, 2, 5000     a4: 20, 7, 12000
//   a5: 30, 5, 30000    a6: 45, 3, 60000    a7: 60, 6, 8000     a8: 90, 9, 15000
//   a9: 120, 8, 25000   a10: 200, 4, 36000
// Not scored: a11 (no orders), a12 (only a cancelled order), a13 (1 day, 11 occasions,
// 1000000 — the best in every dimension — then erased). N = 10, quintiles:
// score = 1 + floor(5w/10), w = customers with a strictly worse value:
//   recency (most days first) a10 a9 | a8 a7 | a6 a5 | a4 a3 | a2 a1 → 1 | 2 | 3 | 4 | 5
//   frequency (fewest first) a2 a3 | a6 a10 | a5 a7 | a4 a9 | a8 a1 → 1 | 2 | 3 | 4 | 5
//   monetary (least first)   a3 a7 | a4 a8 | a1 a9 | a5 a10 | a2 a6 → 1 | 2 | 3 | 4 | 5
// Default map (rfm.md) → the segments below; nobody is lapsed (a10's last order, 200 days
// ago, is ≤ 365), so Lost is empty.
// Had a13 counted (N = 11), most scores would shift down.
const R_CUSTOMERS = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'a10', 'a11', 'a12', 'a13'];
const R_ORDERS = () => [
  ...hist('a1', 2, 10, 20000), ...hist('a2', 5, 1, 50000), ...hist('a3', 10, 2, 5000),
  ...hist('a4', 20, 7, 12000), ...hist('a5', 30, 5, 30000), ...hist('a6', 45, 3, 60000),
  ...hist('a7', 60, 6, 8000), ...hist('a8', 90, 9, 15000), ...hist('a9', 120, 8, 25000),
  ...hist('a10', 200, 4, 36000), ord('a12-0', 'a12', 3), ...hist('a13', 1, 11, 1000000),
];
const R_RFM = {
  a1: [5, 5, 3, 'Champions'],
  a2: [5, 1, 5, 'New customers'],
  a3: [4, 1, 1, 'Promising'],
  a4: [4, 4, 2, 'Loyal'],
  a5: [3, 3, 4, 'Need attention'],
  a6: [3, 2, 5, 'About to sleep'],
  a7: [2, 3, 1, 'At risk'],
  a8: [2, 5, 2, "Can't lose them"],
  a9: [1, 4, 3, 'At risk'],
  a10: [1, 2, 4, 'Hibernating'],
  a11: null,
  a12: null,
  a13: null,
};
const R_OCCASIONS = { a1: 10, a2: 1, a3: 2, a4: 7, a5: 5, a6: 3, a7: 6, a8: 9, a9: 8, a10: 4 };
const R_SCORED = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'a10'];
const DEFAULT_MAP = DEFAULT_RFM_MAP;
// members per default segment, by hand from R_RFM
const R_BY_SEGMENT = {
  Champions: ['a1'], Loyal: ['a4'], 'Potential loyalists': [], 'New customers': ['a2'], Promising: ['a3'],
  'Need attention': ['a5'], 'About to sleep': ['a6'], 'At risk': ['a7', 'a9'], "Can't lose them": ['a8'],
  Hibernating: ['a10'], Lost: [],
};

let R; // quintiles, default map; never changed
let R2; // the same history; its map and settings change

async function mkRfmShop() {
  const s = await mkShop();
  await people(s.key, R_CUSTOMERS);
  await load(s.key, R_ORDERS());
  await cancel(s.key, 'a12-0');
  const d = await c.del('/v1/customers/a13', { key: s.key });
  assert.equal(d.status, 204, d.text);
  return s;
}

/** {id: rfm} of the given customers (GET /v1/customers/{id}?include=rfm). */
async function rfmOf(key, customerIds) {
  const out = {};
  for (const id of customerIds) {
    const r = await c.get(`/v1/customers/${encodeURIComponent(id)}?include=rfm`, { key });
    assert.equal(r.status, 200, r.text);
    assert.ok('rfm' in r.body, `rfm of ${id}: ${r.text}`);
    out[id] = r.body.rfm;
  }
  return out;
}
const asRfm = (table) => Object.fromEntries(Object.entries(table).map(([id, v]) => [id, v && { r: v[0], f: v[1], m: v[2], segment: v[3] }]));

/** Whether a single RFM condition holds for a customer's rfm (null: not scored, never a member). */
function holds(cond, rfm) {
  if (rfm === null) return false;
  const v = { rfm_recency: rfm.r, rfm_frequency: rfm.f, rfm_monetary: rfm.m, rfm_segment: rfm.segment }[cond.field];
  const x = cond.value;
  switch (cond.op) {
    case 'eq': return v === x;
    case 'ne': return v !== x;
    case 'lt': return v < x;
    case 'lte': return v <= x;
    case 'gt': return v > x;
    case 'gte': return v >= x;
    case 'between': return v >= x[0] && v <= x[1];
    case 'in': return x.includes(v);
    default: throw new Error(`test bug: op ${cond.op}`);
  }
}

/**
 * Creates a custom segment with `filter` in shop s; asserts its members (by hand),
 * its size (PUT answer and GET), and that every customer of the shop is a member
 * exactly when `pred` holds for its rfm as GET /v1/customers/{id}?include=rfm shows it.
 */
async function expectRfmFilter(s, filter, want, rfms, pred = (rfm) => holds(filter, rfm)) {
  s.n = (s.n ?? 0) + 1;
  const code = `rfm-${s.n}`;
  const made = await create(s.key, code, filter);
  const got = ids(await pages(s.key, code));
  const what = `${code} ${JSON.stringify(filter)}`;
  assert.deepEqual(got, want, `members of ${what}`);
  assert.equal(made.size, want.length, `size of ${what}`);
  const byRfm = R_CUSTOMERS.filter((id) => pred(rfms[id], id));
  assert.deepEqual(got, byRfm, `members of ${what} agree with GET /v1/customers/{id}?include=rfm`);
  return code;
}

/** GET /v1/segments/{code}: the size now, and the members through the pages. */
async function sizeAndMembers(key, code) {
  const g = await c.get(`/v1/segments/${code}`, { key });
  assert.equal(g.status, 200, g.text);
  return [g.body.size, ids(await pages(key, code))];
}

/** The summary's customers per segment name: {name: count}. */
async function summaryCounts(key) {
  const r = await c.get('/v1/rfm/summary', { key });
  assert.equal(r.status, 200, r.text);
  return Object.fromEntries(r.body.segments.map((x) => [x.name, x.customers]));
}

// ---------------------------------------------------------------------------
// shop BIG: a few thousand members (bulk-loaded), compared with the JSON pages
//
// Customers b00001..b03000, created in this order by their first order (bulk):
//   b_i: one order 366 + (37 i mod 900) days ago worth 1000 + (53 i mod 9000);
//        when i mod 5 = 0 a second, earlier order (30 days before the first) worth 700;
//        when i mod 13 = 0 a last order 5 days ago (so not lapsed).
//   every 7th customer then gets a profile: a name with a comma and quotes (a line feed
//   every 14th), an email, tags [big, g<i mod 5>], consent email when i is even.
// lapsed: every b_i with i mod 13 ≠ 0 → 3000 − floor(3000 / 13) = 3000 − 230 = 2770 members.
const BIG_N = 3000;
const BIG_LAPSED = BIG_N - Math.floor(BIG_N / 13);
const bid = (i) => `b${String(i).padStart(5, '0')}`;
let BIG;

before(async () => {
  svc = await startService();
  c = api(svc);
  ({ people, load, cancel } = historyCalls(c));

  E = await mkShop();
  await people(E.key, E_CUSTOMERS, E_PROFILES);
  await load(E.key, E_ORDERS());
  await cancel(E.key, 'e7-1');

  EMPTY = await mkShop();
  await people(EMPTY.key, ['z1']);

  R = await mkRfmShop();
  R2 = await mkRfmShop();

  BIG = await mkShop();
  const orders = [];
  for (let i = 1; i <= BIG_N; i++) {
    const days = 366 + ((37 * i) % 900);
    orders.push(ord(`${bid(i)}-1`, bid(i), days, { price: 1000 + ((53 * i) % 9000) }));
    if (i % 5 === 0) orders.push(ord(`${bid(i)}-0`, bid(i), days + 30, { price: 700 }));
    if (i % 13 === 0) orders.push(ord(`${bid(i)}-2`, bid(i), 5, { price: 400 }));
  }
  await load(BIG.key, orders);
  for (let i = 7; i <= BIG_N; i += 7) {
    const profile = {
      name: `Big, "${i}"${i % 14 === 0 ? '\nsecond line' : ''}`,
      email: `c${i}@example.com`,
      tags: ['big', `g${i % 5}`],
      consent: { email: { granted: i % 2 === 0 } },
    };
    const r = await c.put(`/v1/customers/${bid(i)}`, profile, { key: BIG.key });
    assert.equal(r.status, 200, `profile of ${bid(i)}: ${r.text}`);
  }
});
after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------
// content negotiation

describe('content negotiation on Accept', () => {
  /** What an Accept header gets: 'json', 'csv', 'ndjson' or 406. */
  async function kindFor(accept, q = {}) {
    const r = await xget(membersPath('lapsed', q), { key: E.key, accept });
    assertVary(r, `Accept: ${accept}`);
    if (r.status === 406) {
      assertProblem(r, 406, 'not_acceptable', '/header/Accept');
      assert.equal(r.headers['content-disposition'], undefined, 'a 406 is no attachment');
      return 406;
    }
    assert.equal(r.status, 200, `Accept: ${accept}: ${r.text.slice(0, 300)}`);
    const ct = r.headers['content-type'];
    if (ct === CSV_TYPE) { assert.equal(r.text, E_LAPSED_CSV); return 'csv'; }
    if (ct === NDJSON_TYPE) { assert.deepEqual(parseNdjson(r.text), E_LAPSED); return 'ndjson'; }
    assert.match(ct, /^application\/json\b/, `Accept: ${accept}: content type ${ct}`);
    assert.deepEqual(r.body, { items: E_LAPSED, next_cursor: null }, `Accept: ${accept}: the JSON page`);
    assert.equal(r.headers['content-disposition'], undefined, 'a JSON page is no attachment');
    return 'json';
  }

  const cases = [
    // the JSON page: no Accept, */*, application/*, application/json
    [null, 'json'],
    ['*/*', 'json'],
    ['application/*', 'json'],
    ['application/json', 'json'],
    ['application/json; charset=utf-8', 'json'],
    // the exports
    ['text/csv', 'csv'],
    ['text/*', 'csv'], // matches text/csv only
    ['Text/CSV', 'csv'], // media types are case-insensitive
    ['text/csv; charset=utf-8', 'csv'],
    ['application/x-ndjson', 'ndjson'],
    // q-values: the highest q wins (export.md's example first)
    ['text/csv;q=0.5, application/x-ndjson', 'ndjson'],
    ['application/json;q=0.1, text/csv', 'csv'],
    ['application/x-ndjson;q=0.9, text/csv;q=0.8, application/json;q=0.7', 'ndjson'],
    ['application/x-ndjson;q=1.0, text/csv;q=0.999', 'ndjson'],
    ['text/csv;q=0.000, application/x-ndjson;q=0.001', 'ndjson'],
    ['text/csv ; q=0.5 , application/x-ndjson ; q=0.6', 'ndjson'], // optional whitespace
    ['text/html, */*;q=0.1', 'json'],
    ['text/html, text/csv;q=0.2', 'csv'],
    // ties go to json, then csv, then ndjson
    ['text/csv, application/x-ndjson', 'csv'],
    ['application/x-ndjson, text/csv', 'csv'],
    ['application/x-ndjson, text/csv, application/json', 'json'],
    ['application/json;q=0.5, text/csv;q=0.5', 'json'],
    ['text/csv;q=0.5, application/x-ndjson;q=0.5', 'csv'],
    // q=0 excludes
    ['text/csv;q=0, */*', 'json'],
    ['application/json;q=0, */*', 'csv'], // csv and ndjson tie at 1: csv
    ['application/json;q=0, text/csv;q=0, */*', 'ndjson'],
    ['application/json;q=0, text/csv', 'csv'],
    // a more specific range overrides a less specific one (RFC 9110 §12.5.1)
    ['*/*;q=0, text/csv', 'csv'],
    ['application/*;q=0, application/x-ndjson', 'ndjson'],
    // nothing acceptable → 406
    ['text/html', 406],
    ['image/png', 406],
    ['text/plain', 406],
    ['text/html, application/xml', 406],
    ['application/json;q=0', 406],
    ['*/*;q=0', 406],
    ['application/json;q=0, text/csv;q=0, application/x-ndjson;q=0', 406],
    ['text/csv;q=0, text/*', 406], // the specific q=0 wins over text/*
  ];
  for (const [accept, want] of cases) {
    test(`Accept: ${accept === null ? '(none)' : accept} → ${want}`, async () => {
      assert.equal(await kindFor(accept), want);
    });
  }

  test('an unknown code with an acceptable type → 404 not_found (with Vary: Accept)', async () => {
    const r = await xget(membersPath('nope'), { key: E.key, accept: CSV });
    assertProblem(r, 404, 'not_found');
    assertVary(r);
  });

  test('406: problem+json, pointer /header/Accept, Vary: Accept, readonly key too', async () => {
    for (const key of [E.keys.admin, E.keys.readonly]) {
      for (const code of ['lapsed', 'vip']) {
        const r = await xget(membersPath(code), { key, accept: 'text/html' });
        assertProblem(r, 406, 'not_acceptable', '/header/Accept');
        assertVary(r);
        assert.equal(r.headers['content-disposition'], undefined);
      }
    }
  });
});

describe('Vary: Accept on every response of the path', () => {
  const P = '/v1/segments/lapsed/customers';
  const cases = [
    ['200 JSON page', () => xget(P, { key: E.key, accept: 'application/json' }), 200],
    ['200 JSON page without Accept', () => xget(P, { key: E.key }), 200],
    ['200 CSV', () => xget(P, { key: E.key, accept: CSV }), 200],
    ['200 NDJSON', () => xget(P, { key: E.key, accept: NDJSON }), 200],
    ['200 CSV, empty segment', () => xget(P, { key: EMPTY.key, accept: CSV }), 200],
    ['406 not_acceptable', () => xget(P, { key: E.key, accept: 'text/html' }), 406],
    ['400 limit with an export', () => xget(`${P}?limit=10`, { key: E.key, accept: CSV }), 400],
    ['400 bad consent (JSON)', () => xget(`${P}?consent=fax`, { key: E.key }), 400],
    ['400 bad fields (CSV)', () => xget(`${P}?fields=nope`, { key: E.key, accept: CSV }), 400],
    ['400 unknown query parameter (JSON)', () => xget(`${P}?foo=1`, { key: E.key, accept: 'application/json' }), 400],
    ['400 unknown query parameter (CSV)', () => xget(`${P}?foo=1`, { key: E.key, accept: CSV }), 400],
    ['404 unknown code (NDJSON)', () => xget('/v1/segments/nope/customers', { key: E.key, accept: NDJSON }), 404],
    ['403 storefront key (CSV)', () => xget(P, { key: E.keys.storefront, accept: CSV }), 403],
    ['401 no key (CSV)', () => xget(P, { accept: CSV }), 401],
    ['405 POST (CSV)', async () => {
      const r = await rawHttp(svc, `POST ${P} HTTP/1.1\r\nHost: 127.0.0.1:${svc.port}\r\nAuthorization: Bearer ${E.key}\r\nAccept: text/csv\r\n`
        + 'Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
      const res = { method: 'POST', path: P, ...r };
      assertProblem(res, 405, 'method_not_allowed');
      validateResponse({ method: 'POST', path: P, status: r.status, headers: r.headers, body: r.text });
      return res;
    }, 405],
  ];
  for (const [what, fn, status] of cases) {
    test(`${what} → ${status} with Vary: Accept`, async () => {
      const r = await fn();
      assert.equal(r.status, status, r.text.slice(0, 300));
      assertVary(r, what);
    });
  }
});

// ---------------------------------------------------------------------------
// headers and framing

describe('export responses: headers and framing', () => {
  /** Strict HTTP/1.1 chunked framing of a raw response: returns the body bytes. */
  function strictDechunk(raw) {
    const buf = Buffer.from(raw, 'latin1');
    let i = buf.indexOf('\r\n\r\n') + 4;
    assert.ok(i >= 4, 'a header block');
    const out = [];
    let chunks = 0;
    for (;;) {
      const nl = buf.indexOf('\r\n', i);
      assert.ok(nl > i, `a chunk size line at ${i}`);
      const sizeLine = buf.subarray(i, nl).toString('latin1');
      assert.match(sizeLine, /^[0-9a-fA-F]+(;.*)?$/, `chunk size line ${JSON.stringify(sizeLine)}`);
      const size = parseInt(sizeLine, 16);
      if (size === 0) {
        assert.equal(buf.subarray(nl + 2, nl + 4).toString('latin1'), '\r\n', 'the last chunk ends the message (no trailers)');
        assert.equal(buf.length, nl + 4, 'nothing after the last chunk');
        break;
      }
      out.push(buf.subarray(nl + 2, nl + 2 + size));
      assert.equal(buf.subarray(nl + 2 + size, nl + 4 + size).toString('latin1'), '\r\n', 'CRLF after chunk data');
      i = nl + 4 + size;
      chunks++;
    }
    return { body: Buffer.concat(out).toString('utf8'), chunks };
  }

  for (const [accept, kind, type] of [[CSV, 'csv', CSV_TYPE], [NDJSON, 'ndjson', NDJSON_TYPE]]) {
    test(`${kind}: Content-Type, Content-Disposition, Cache-Control, X-Request-Id, Vary; chunked, no Content-Length`, async () => {
      const r = await xget(membersPath('lapsed'), { key: E.key, accept });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['content-type'], type);
      assert.equal(r.headers['content-disposition'], `attachment; filename="lapsed.${kind}"`);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.match(r.headers['x-request-id'], REQUEST_ID_RE);
      assertVary(r);
      assert.equal(r.headers['content-length'], undefined, 'no Content-Length');
      assert.equal((r.headers['transfer-encoding'] || '').toLowerCase(), 'chunked');
      const { body } = strictDechunk(r.raw);
      assert.equal(body, r.text, 'the chunked framing is well formed and carries the body');
      if (kind === 'csv') assert.equal(body, E_LAPSED_CSV);
      else assert.deepEqual(parseNdjson(body), E_LAPSED);
    });

    test(`${kind}: the filename is the segment's code (custom and built-in)`, async () => {
      await create(E.key, 'big-spenders', C('total_spent', 'gte', 5000));
      for (const code of [...BUILT_INS, 'big-spenders']) {
        const r = await xget(membersPath(code), { key: E.key, accept });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers['content-disposition'], `attachment; filename="${code}.${kind}"`);
        assert.equal(r.headers['content-type'], type);
      }
      const del = await c.del('/v1/segments/big-spenders', { key: E.key });
      assert.equal(del.status, 204);
    });

    test(`${kind}: an empty export is chunked too`, async () => {
      const r = await xget(membersPath('lapsed'), { key: EMPTY.key, accept });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['content-length'], undefined);
      assert.equal((r.headers['transfer-encoding'] || '').toLowerCase(), 'chunked');
      assert.equal(strictDechunk(r.raw).body, kind === 'csv' ? HEADER : '');
    });
  }

  test('a JSON page keeps its headers: application/json, no Content-Disposition', async () => {
    for (const accept of [null, 'application/json', '*/*']) {
      const r = await xget(membersPath('lapsed'), { key: E.key, accept });
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^application\/json\b/);
      assert.equal(r.headers['content-disposition'], undefined);
      assertVary(r);
    }
  });
});

// ---------------------------------------------------------------------------
// CSV and NDJSON content (shop E)

describe('export content (shop E, by hand)', () => {
  test('CSV: the exact text — header, quoting (comma, quote, CR, LF), null → empty, tags with ;, consent, facts, reason JSON, CRLF', async () => {
    const text = await csvOf(E.key, 'lapsed');
    assert.equal(text, E_LAPSED_CSV);
    // and the same through the parser: 6 records of 15 fields
    const rows = parseCsv(text);
    assert.equal(rows.length, 6);
    for (const row of rows) assert.equal(row.length, 15);
    assert.equal(rows[1][1], 'Wang, "Fang"\nJr.');
    assert.equal(rows[4][1], 'Carriage\rReturn');
  });

  test('NDJSON: one object per member, exactly the JSON items (by hand), LF after each line', async () => {
    const text = await ndjsonOf(E.key, 'lapsed');
    assert.equal(text.split('\n').length, E_LAPSED.length + 1, 'five lines, each ending with LF');
    assert.ok(text.endsWith('}\n'));
    assert.ok(!text.includes('\r\n'), 'no CRLF line ends (a CR in a name is escaped)');
    assert.deepEqual(parseNdjson(text), E_LAPSED);
  });

  test('the JSON page has the same members and values (by hand)', async () => {
    assert.deepEqual(await pages(E.key, 'lapsed'), E_LAPSED);
  });

  test('fields= picks the CSV columns (in the fixed order) and the NDJSON members', async () => {
    const cases = [
      ['name', 'id,name\r\ne1,"Wang, ""Fang""\nJr."\r\ne2,Li Wei\r\ne3,\r\ne5,"Carriage\rReturn"\r\ne8,"He said ""hi"""\r\n'],
      ['reason', `id,reason\r\n${[['e1', 400], ['e2', 366], ['e3', 1000], ['e5', 367], ['e8', 800]].map(([id, d]) => lapsedRow(id, d)).join('')}`],
      // the order of fields= does not matter: columns keep the export order
      ['tags,email', 'id,email,tags\r\ne1,,vip;tea\r\ne2,li.wei@example.com,\r\ne3,,\r\ne5,"x,y@example.com",a:b\r\ne8,he@example.com,x\r\n'],
      ['consent', 'id,consent_email,consent_sms,consent_wechat\r\ne1,true,false,false\r\ne2,false,true,true\r\ne3,false,false,false\r\ne5,true,false,true\r\ne8,false,false,false\r\n'],
      ['facts', 'id,order_count,first_order_at,last_order_at,days_since_first_order,days_since_last_order,total_spent\r\n'
        + `e1,2,${utc(500)},${utc(400)},500,400,20000\r\ne2,1,${utc(366)},${utc(366)},366,366,5000\r\n`
        + `e3,1,${utc(1000)},${utc(1000)},1000,1000,100\r\ne5,1,${utc(367)},${utc(367)},367,367,700\r\n`
        + `e8,1,${utc(800)},${utc(800)},800,800,2500\r\n`],
      ['phone,name', 'id,name,phone\r\ne1,"Wang, ""Fang""\nJr.",+86 138 0013 8000\r\ne2,Li Wei,\r\ne3,,\r\ne5,"Carriage\rReturn",\r\ne8,"He said ""hi""",\r\n'],
      ['reason,facts,consent,tags,phone,email,name', E_LAPSED_CSV],
    ];
    for (const [fields, want] of cases) {
      assert.equal(await csvOf(E.key, 'lapsed', { fields }), want, `CSV fields=${fields}`);
      const keep = ['id', ...fields.split(',')];
      const items = E_LAPSED.map((it) => Object.fromEntries(Object.entries(it).filter(([k]) => keep.includes(k))));
      assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'lapsed', { fields })), items, `NDJSON fields=${fields}`);
      assert.deepEqual(await pages(E.key, 'lapsed', { fields }), items, `JSON fields=${fields}`);
    }
  });

  test('consent= keeps the members who consented to the channel, as for JSON pages', async () => {
    // email: e1, e5 (e8 explicitly not); sms: e2; wechat: e2, e5
    const rowsOf = (text) => parseCsv(text).slice(1).map((r) => r[0]);
    const want = { email: ['e1', 'e5'], sms: ['e2'], wechat: ['e2', 'e5'] };
    for (const [consent, members] of Object.entries(want)) {
      const csv = await csvOf(E.key, 'lapsed', { consent });
      assert.deepEqual(rowsOf(csv), members, `CSV consent=${consent}`);
      assert.equal(csv, HEADER + E_LAPSED_LINES.filter((l) => members.includes(l.split(',')[0])).join(''), `CSV consent=${consent}: the same lines`);
      const nd = parseNdjson(await ndjsonOf(E.key, 'lapsed', { consent }));
      assert.deepEqual(nd, E_LAPSED.filter((it) => members.includes(it.id)), `NDJSON consent=${consent}`);
      assert.deepEqual(nd, await pages(E.key, 'lapsed', { consent }));
    }
    assert.equal(await csvOf(E.key, 'lapsed', { consent: 'sms', fields: 'name' }), 'id,name\r\ne2,Li Wei\r\n');
    assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'lapsed', { consent: 'sms', fields: 'email' })), [{ id: 'e2', email: 'li.wei@example.com' }]);
  });

  test('a built-in reason with two members: second-purchase-window and vip (JSON text as jsonb prints it)', async () => {
    // second-purchase-window: e4 alone (10 days, days_left 35).
    assert.equal(await csvOf(E.key, 'second-purchase-window', { fields: 'reason' }), 'id,reason\r\ne4,"{""days_left"": 35}"\r\n');
    // vip, spend over [today − 364, today]: e4 3000 alone (e6's order, 365 days ago, is
    // outside) → N = 1, k = ceil(1 × 5 / 100) = 1, cutoff 3000 → e4.
    // (jsonb prints shorter keys first: cutoff before spend_365d)
    assert.equal(await csvOf(E.key, 'vip', { fields: 'reason' }), 'id,reason\r\ne4,"{""cutoff"": 3000, ""spend_365d"": 3000}"\r\n');
    assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'vip', { fields: 'reason' })), [{ id: 'e4', reason: { spend_365d: 3000, cutoff: 3000 } }]);
  });

  test('every segment of shop E: NDJSON objects deep-equal the JSON items, CSV records carry the same values', async () => {
    for (const code of BUILT_INS) {
      for (const q of [{}, { consent: 'email' }, { fields: 'name,reason' }]) {
        const items = await pages(E.key, code, q);
        assert.deepEqual(parseNdjson(await ndjsonOf(E.key, code, q)), items, `NDJSON ${code}${qs(q)}`);
        csvMatches(parseCsv(await csvOf(E.key, code, q)), items, q.fields, `CSV ${code}${qs(q)}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// cursor, limit and bad parameters

describe('cursor, limit and bad parameters with an export', () => {
  test('cursor: an export after a JSON page holds exactly the rest', async () => {
    for (const limit of [1, 2, 4]) {
      const page = await c.get(membersPath('lapsed', { limit }), { key: E.key });
      assert.equal(page.status, 200, page.text);
      assert.deepEqual(ids(page.body.items), ids(E_LAPSED.slice(0, limit)));
      const cursor = page.body.next_cursor;
      assert.equal(typeof cursor, 'string');
      const rest = E_LAPSED.slice(limit);
      assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'lapsed', { cursor })), rest, `NDJSON after ${limit}`);
      const csv = await csvOf(E.key, 'lapsed', { cursor });
      csvMatches(parseCsv(csv), rest, undefined, `CSV after ${limit}`);
      assert.equal(csv, HEADER + E_LAPSED_LINES.slice(limit).join(''), `CSV after ${limit}: the same lines`);
    }
  });

  test('cursor with consent and fields: the export resumes the filtered read', async () => {
    // consent=email: e1, e5; a page of one gives e1, the export e5.
    const q = { consent: 'email', fields: 'name' };
    const page = await c.get(membersPath('lapsed', { ...q, limit: 1 }), { key: E.key });
    assert.equal(page.status, 200, page.text);
    assert.deepEqual(page.body.items, [{ id: 'e1', name: 'Wang, "Fang"\nJr.' }]);
    const cursor = page.body.next_cursor;
    assert.equal(await csvOf(E.key, 'lapsed', { ...q, cursor }), 'id,name\r\ne5,"Carriage\rReturn"\r\n');
    assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'lapsed', { ...q, cursor })), [{ id: 'e5', name: 'Carriage\rReturn' }]);
  });

  test('cursor near the end: the last member alone, or nothing (CSV header only, NDJSON 0 bytes)', async () => {
    // a page of four: e1 e2 e3 e5; the rest is e8 alone
    const page = await c.get(membersPath('lapsed', { limit: 4 }), { key: E.key });
    assert.deepEqual(ids(page.body.items), ['e1', 'e2', 'e3', 'e5']);
    const cursor = page.body.next_cursor;
    assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'lapsed', { cursor })), [E_LAPSED[4]]);
    assert.equal(await csvOf(E.key, 'lapsed', { cursor, fields: 'email' }), 'id,email\r\ne8,he@example.com\r\n');
    // consent=sms: e2 only; after e2 nobody (when the page of one hands out a cursor at all)
    const sms = await c.get(membersPath('lapsed', { consent: 'sms', limit: 1 }), { key: E.key });
    assert.deepEqual(ids(sms.body.items), ['e2']);
    if (sms.body.next_cursor !== null) {
      assert.equal(await csvOf(E.key, 'lapsed', { consent: 'sms', cursor: sms.body.next_cursor }), HEADER);
      assert.equal(await ndjsonOf(E.key, 'lapsed', { consent: 'sms', cursor: sms.body.next_cursor }), '');
    }
  });

  test('limit with an export → 400 invalid_parameter /query/limit (any value); the JSON page takes it', async () => {
    for (const accept of [CSV, NDJSON, 'text/csv;q=0.5, application/x-ndjson']) {
      for (const limit of ['1', '50', '200', '0', 'abc']) {
        const r = await xget(membersPath('lapsed', { limit }), { key: E.key, accept });
        assertProblem(r, 400, 'invalid_parameter', '/query/limit');
        assertVary(r);
      }
      const r = await xget(membersPath('lapsed', { limit: 2, consent: 'email' }), { key: E.key, accept });
      assertProblem(r, 400, 'invalid_parameter', '/query/limit');
    }
    const j = await xget(membersPath('lapsed', { limit: 2 }), { key: E.key, accept: 'application/json' });
    assert.equal(j.status, 200);
    assert.equal(j.body.items.length, 2);
  });

  test('bad consent, fields or cursor → the same 400 as for a JSON page', async () => {
    const cases = [
      [{ consent: 'fax' }, 'consent'], [{ consent: '' }, 'consent'], [{ consent: 'Email' }, 'consent'],
      [{ fields: 'foo' }, 'fields'], [{ fields: 'name,name' }, 'fields'], [{ fields: '' }, 'fields'], [{ fields: 'name,' }, 'fields'],
      [{ cursor: 'not-a-cursor' }, 'cursor'], [{ cursor: '' }, 'cursor'],
    ];
    for (const [q, name] of cases) {
      const json = await xget(membersPath('lapsed', q), { key: E.key, accept: 'application/json' });
      assertProblem(json, 400, 'invalid_parameter', `/query/${name}`);
      for (const accept of [CSV, NDJSON]) {
        const r = await xget(membersPath('lapsed', q), { key: E.key, accept });
        assertProblem(r, 400, 'invalid_parameter', `/query/${name}`);
        assert.equal(r.headers['content-disposition'], undefined);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// empty and custom segments

describe('empty and custom segments', () => {
  test('an empty segment: CSV is the header line alone, NDJSON an empty body', async () => {
    for (const code of BUILT_INS) {
      assert.equal(await csvOf(EMPTY.key, code), HEADER, `CSV ${code}`);
      assert.equal(await ndjsonOf(EMPTY.key, code), '', `NDJSON ${code}`);
      assert.equal(await csvOf(EMPTY.key, code, { fields: 'name,consent' }), 'id,name,consent_email,consent_sms,consent_wechat\r\n');
      assert.equal(await ndjsonOf(EMPTY.key, code, { fields: 'name' }), '');
    }
    // shop E: nobody bought 100 times; nobody in lapsed with sms and email
    await create(E.key, 'nobody', C('order_count', 'gte', 100));
    assert.equal(await csvOf(E.key, 'nobody'), HEADER);
    assert.equal(await ndjsonOf(E.key, 'nobody'), '');
    assert.equal(await csvOf(E.key, 'second-purchase-window', { consent: 'sms' }), HEADER);
    assert.equal(await ndjsonOf(E.key, 'second-purchase-window', { consent: 'sms' }), '');
  });

  test('a custom segment: reason empty in CSV, null in NDJSON; same members as its JSON pages', async () => {
    // total_spent ≥ 5000: e1 (20000), e2 (5000); not e4 (3000), e8 (2500), e5 (700), e3, e6 (100)
    await create(E.key, 'spent-5000', C('total_spent', 'gte', 5000));
    const csv = await csvOf(E.key, 'spent-5000');
    assert.equal(csv, HEADER
      + `e1,"Wang, ""Fang""\nJr.",,+86 138 0013 8000,vip;tea,true,false,false,2,${utc(500)},${utc(400)},500,400,20000,\r\n`
      + `e2,Li Wei,li.wei@example.com,,,false,true,true,1,${utc(366)},${utc(366)},366,366,5000,\r\n`);
    const nd = parseNdjson(await ndjsonOf(E.key, 'spent-5000'));
    assert.deepEqual(nd, [{ ...E_LAPSED[0], reason: null }, { ...E_LAPSED[1], reason: null }]);
    assert.deepEqual(nd, await pages(E.key, 'spent-5000'));
    assert.equal(await csvOf(E.key, 'spent-5000', { fields: 'reason' }), 'id,reason\r\ne1,\r\ne2,\r\n');
    assert.deepEqual(parseNdjson(await ndjsonOf(E.key, 'spent-5000', { fields: 'reason' })), [{ id: 'e1', reason: null }, { id: 'e2', reason: null }]);
    // membership is as of the request: a new order makes e4 a member of the next export
    await load(E.key, [ord('e4-2', 'e4', 1, { price: 2000 })]);
    assert.deepEqual(ids(parseNdjson(await ndjsonOf(E.key, 'spent-5000'))), ['e1', 'e2', 'e4']);
    assert.deepEqual(parseCsv(await csvOf(E.key, 'spent-5000', { fields: 'reason' })), [['id', 'reason'], ['e1', ''], ['e2', ''], ['e4', '']]);
    await cancel(E.key, 'e4-2');
    assert.deepEqual(ids(parseNdjson(await ndjsonOf(E.key, 'spent-5000'))), ['e1', 'e2']);
  });
});

// ---------------------------------------------------------------------------
// scopes and unknown codes

describe('scopes and unknown codes', () => {
  test('readonly exports the same bytes as admin', async () => {
    for (const accept of [CSV, NDJSON]) {
      const a = await xget(membersPath('lapsed'), { key: E.keys.admin, accept });
      const ro = await xget(membersPath('lapsed'), { key: E.keys.readonly, accept });
      assert.equal(a.status, 200);
      assert.equal(ro.status, 200);
      assert.equal(ro.text, a.text);
      assert.equal(ro.headers['content-type'], a.headers['content-type']);
    }
  });

  test('storefront and platform keys → 403 (also for an unknown code: 403 before 404); no key → 401', async () => {
    for (const accept of [CSV, NDJSON, 'text/html']) {
      for (const code of ['lapsed', 'nope']) {
        assertProblem(await xget(membersPath(code), { key: E.keys.storefront, accept }), 403, 'forbidden');
        assertProblem(await xget(membersPath(code), { key: svc.platformKey, accept }), 403, 'forbidden');
        assertProblem(await xget(membersPath(code), { accept }), 401, 'unauthenticated');
      }
    }
  });

  test('unknown or invalid codes → 404 not_found, with CSV or NDJSON asked for', async () => {
    for (const accept of [CSV, NDJSON]) {
      for (const code of ['nope', 'Lapsed', 'VIP', 'tea_lovers', 'x'.repeat(65), 'spent-5001']) {
        const r = await xget(membersPath(code), { key: E.key, accept });
        assertProblem(r, 404, 'not_found');
        assert.equal(r.headers['content-disposition'], undefined);
      }
    }
  });

  test("another shop's custom segment code is unknown here; its members are not exported", async () => {
    await create(E.key, 'e-only', C('order_count', 'gte', 1));
    assertProblem(await xget(membersPath('e-only'), { key: EMPTY.key, accept: CSV }), 404, 'not_found');
    const ndE = ids(parseNdjson(await ndjsonOf(E.key, 'e-only')));
    assert.deepEqual(ndE, ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e8']);
  });
});

// ---------------------------------------------------------------------------
// a few thousand members

describe('a segment of a few thousand members (shop BIG)', () => {
  let lapsed;
  before(async () => {
    lapsed = await pages(BIG.key, 'lapsed');
  });

  test(`the JSON pages: ${BIG_LAPSED} members, no duplicates; the size agrees`, async () => {
    assert.equal(lapsed.length, BIG_LAPSED);
    assert.equal(new Set(ids(lapsed)).size, BIG_LAPSED);
    const g = await c.get('/v1/segments/lapsed', { key: BIG.key });
    assert.equal(g.body.size, BIG_LAPSED);
    // by hand: every b_i with i mod 13 ≠ 0, in creation order (= i order)
    const want = [];
    for (let i = 1; i <= BIG_N; i++) if (i % 13 !== 0) want.push(bid(i));
    assert.deepEqual(ids(lapsed), want);
  });

  test('NDJSON: the same objects in the same order as the JSON pages', async () => {
    const text = await ndjsonOf(BIG.key, 'lapsed');
    const nd = parseNdjson(text);
    assert.equal(nd.length, BIG_LAPSED);
    assert.equal(new Set(ids(nd)).size, nd.length, 'no duplicates');
    assert.deepEqual(nd, lapsed);
  });

  test('CSV: the same members, order and values as the JSON pages', async () => {
    const rows = parseCsv(await csvOf(BIG.key, 'lapsed'));
    csvMatches(rows, lapsed, undefined, 'BIG lapsed CSV');
    assert.equal(new Set(rows.slice(1).map((r) => r[0])).size, BIG_LAPSED, 'no duplicates');
  });

  test('with consent and fields, and after a cursor', async () => {
    const q = { consent: 'email', fields: 'name,tags,reason' };
    const items = await pages(BIG.key, 'lapsed', q);
    // email consent: every 14th customer (profiles on multiples of 7, consent when even), not mod 13
    const want = [];
    for (let i = 14; i <= BIG_N; i += 14) if (i % 13 !== 0) want.push(bid(i));
    assert.deepEqual(ids(items), want);
    assert.deepEqual(parseNdjson(await ndjsonOf(BIG.key, 'lapsed', q)), items);
    csvMatches(parseCsv(await csvOf(BIG.key, 'lapsed', q)), items, q.fields, 'BIG lapsed CSV consent=email');

    const first = await c.get(membersPath('lapsed', { limit: 200 }), { key: BIG.key });
    const cursor = first.body.next_cursor;
    const rest = lapsed.slice(200);
    assert.deepEqual(parseNdjson(await ndjsonOf(BIG.key, 'lapsed', { cursor })), rest);
    csvMatches(parseCsv(await csvOf(BIG.key, 'lapsed', { cursor })), rest, undefined, 'BIG lapsed CSV after 200');
  });

  test('a custom segment of thousands: the same as its JSON pages, reason null', async () => {
    // order_count ≥ 1 and days since last > 365: the lapsed members again, as a filter
    await create(BIG.key, 'old-buyers', C('days_since_last_order', 'gt', 365));
    const items = await pages(BIG.key, 'old-buyers');
    assert.deepEqual(ids(items), ids(lapsed));
    for (const it of items) assert.equal(it.reason, null);
    assert.deepEqual(parseNdjson(await ndjsonOf(BIG.key, 'old-buyers')), items);
    csvMatches(parseCsv(await csvOf(BIG.key, 'old-buyers')), items, undefined, 'BIG custom CSV');
  });

  test('two exports at once give the same bytes', async () => {
    const [a, b, j] = await Promise.all([
      xget(membersPath('lapsed'), { key: BIG.key, accept: CSV }),
      xget(membersPath('lapsed'), { key: BIG.keys.readonly, accept: CSV }),
      xget(membersPath('lapsed'), { key: BIG.key, accept: NDJSON }),
    ]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(j.status, 200);
    assert.equal(a.text, b.text);
    assert.deepEqual(parseNdjson(j.text), lapsed);
  });
});

// ---------------------------------------------------------------------------
// RFM fields in custom segment filters

describe('RFM fields in custom filters (shop R, by hand)', () => {
  let rfms;
  before(async () => {
    rfms = await rfmOf(R.key, R_CUSTOMERS);
  });

  test('the scores of shop R are those worked out by hand', () => {
    assert.deepEqual(rfms, asRfm(R_RFM));
  });

  const scoreCases = [
    // rfm_recency: a1 a2 5 | a3 a4 4 | a5 a6 3 | a7 a8 2 | a9 a10 1
    [C('rfm_recency', 'eq', 5), ['a1', 'a2']],
    [C('rfm_recency', 'ne', 3), ['a1', 'a2', 'a3', 'a4', 'a7', 'a8', 'a9', 'a10']],
    [C('rfm_recency', 'lt', 2), ['a9', 'a10']],
    [C('rfm_recency', 'lte', 2), ['a7', 'a8', 'a9', 'a10']],
    [C('rfm_recency', 'gt', 4), ['a1', 'a2']],
    [C('rfm_recency', 'gte', 4), ['a1', 'a2', 'a3', 'a4']],
    [C('rfm_recency', 'between', [2, 3]), ['a5', 'a6', 'a7', 'a8']],
    [C('rfm_recency', 'between', [1, 5]), R_SCORED],
    // rfm_frequency: a2 a3 1 | a6 a10 2 | a5 a7 3 | a4 a9 4 | a1 a8 5
    [C('rfm_frequency', 'eq', 1), ['a2', 'a3']],
    [C('rfm_frequency', 'gte', 3), ['a1', 'a4', 'a5', 'a7', 'a8', 'a9']],
    [C('rfm_frequency', 'lte', 2), ['a2', 'a3', 'a6', 'a10']],
    [C('rfm_frequency', 'between', [4, 5]), ['a1', 'a4', 'a8', 'a9']],
    [C('rfm_frequency', 'ne', 5), ['a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a9', 'a10']],
    // rfm_monetary: a3 a7 1 | a4 a8 2 | a1 a9 3 | a5 a10 4 | a2 a6 5
    [C('rfm_monetary', 'eq', 5), ['a2', 'a6']],
    [C('rfm_monetary', 'between', [1, 2]), ['a3', 'a4', 'a7', 'a8']],
    [C('rfm_monetary', 'gte', 4), ['a2', 'a5', 'a6', 'a10']],
    [C('rfm_monetary', 'gt', 3), ['a2', 'a5', 'a6', 'a10']],
    [C('rfm_monetary', 'lt', 3), ['a3', 'a4', 'a7', 'a8']],
    // outside 1..5: nobody (the values are valid integers)
    [C('rfm_monetary', 'eq', 0), []],
    [C('rfm_monetary', 'eq', 6), []],
    [C('rfm_recency', 'gt', 5), []],
    [C('rfm_frequency', 'between', [6, 10]), []],
    [C('rfm_frequency', 'lt', 100), R_SCORED],
  ];
  for (const [filter, want] of scoreCases) {
    test(`${filter.field} ${filter.op} ${JSON.stringify(filter.value)} → [${want.join(', ')}]`, async () => {
      await expectRfmFilter(R, filter, want, rfms);
    });
  }

  const segmentCases = [
    [C('rfm_segment', 'eq', 'Champions'), ['a1']],
    [C('rfm_segment', 'eq', 'At risk'), ['a7', 'a9']],
    [C('rfm_segment', 'eq', "Can't lose them"), ['a8']],
    [C('rfm_segment', 'ne', 'At risk'), ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a8', 'a10']],
    [C('rfm_segment', 'ne', "Can't lose them"), ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a9', 'a10']],
    [C('rfm_segment', 'in', ['Champions', 'Loyal', 'Hibernating']), ['a1', 'a4', 'a10']],
    [C('rfm_segment', 'in', ["Can't lose them", 'Nobody here']), ['a8']],
    [C('rfm_segment', 'in', ['At risk']), ['a7', 'a9']],
    // in the map, nobody in it
    [C('rfm_segment', 'eq', 'Lost'), []],
    [C('rfm_segment', 'eq', 'Potential loyalists'), []],
    // not in the map: valid, matches nobody (ne: everybody)
    [C('rfm_segment', 'eq', 'Whales'), []],
    [C('rfm_segment', 'in', ['Whales', 'Dolphins']), []],
    [C('rfm_segment', 'ne', 'Whales'), R_SCORED],
    // names are compared exactly
    [C('rfm_segment', 'eq', 'champions'), []],
    [C('rfm_segment', 'eq', 'Champions '), []],
    [C('rfm_segment', 'eq', 'Cant lose them'), []],
  ];
  for (const [filter, want] of segmentCases) {
    test(`rfm_segment ${filter.op} ${JSON.stringify(filter.value)} → [${want.join(', ')}]`, async () => {
      await expectRfmFilter(R, filter, want, rfms);
    });
  }

  test('combined with each other and with other fields (all / any / not)', async () => {
    // R ≥ 4 and M ≤ 2: a3 (R4 M1), a4 (R4 M2)
    await expectRfmFilter(R, { all: [C('rfm_recency', 'gte', 4), C('rfm_monetary', 'lte', 2)] }, ['a3', 'a4'], rfms,
      (x) => x !== null && x.r >= 4 && x.m <= 2);
    // At risk with ≥ 8 occasions: a9 (8); a7 has 6
    await expectRfmFilter(R, { all: [C('rfm_segment', 'eq', 'At risk'), C('order_count', 'gte', 8)] }, ['a9'], rfms,
      (x, id) => x !== null && x.segment === 'At risk' && R_OCCASIONS[id] >= 8);
    // not At risk: everybody else
    await expectRfmFilter(R, { not: C('rfm_segment', 'eq', 'At risk') }, ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a8', 'a10'], rfms,
      (x) => x !== null && x.segment !== 'At risk');
    // Champions or M5: a1, a2, a6
    await expectRfmFilter(R, { any: [C('rfm_segment', 'eq', 'Champions'), C('rfm_monetary', 'eq', 5)] }, ['a1', 'a2', 'a6'], rfms,
      (x) => x !== null && (x.segment === 'Champions' || x.m === 5));
    // F5 and not Champions: a8
    await expectRfmFilter(R, { all: [C('rfm_frequency', 'eq', 5), { not: C('rfm_segment', 'in', ['Champions']) }] }, ['a8'], rfms,
      (x) => x !== null && x.f === 5 && x.segment !== 'Champions');
  });

  test('rfm_segment eq X has the size of X in GET /v1/rfm/summary, for every entry of the map', async () => {
    const counts = await summaryCounts(R.key);
    assert.deepEqual(Object.keys(counts), DEFAULT_MAP.map((e) => e.name));
    for (const [k, { name }] of DEFAULT_MAP.entries()) {
      const code = `sum-${k}`;
      const made = await create(R.key, code, C('rfm_segment', 'eq', name));
      assert.equal(made.size, counts[name], `size of rfm_segment eq ${JSON.stringify(name)} = the summary's count`);
      assert.equal(made.size, R_BY_SEGMENT[name].length, `${name}: by hand`);
      assert.deepEqual(ids(await pages(R.key, code)), R_BY_SEGMENT[name], `${name}: members`);
    }
  });

  test('an RFM segment exports like any custom segment (NDJSON = JSON pages, reason empty)', async () => {
    await create(R.key, 'risk-export', C('rfm_segment', 'eq', 'At risk'));
    const items = await pages(R.key, 'risk-export');
    assert.deepEqual(ids(items), ['a7', 'a9']);
    assert.deepEqual(parseNdjson(await ndjsonOf(R.key, 'risk-export')), items);
    assert.equal(await csvOf(R.key, 'risk-export', { fields: 'name,reason' }), 'id,name,reason\r\na7,Name a7,\r\na9,Name a9,\r\n');
  });
});

describe('RFM fields follow the map and settings.rfm (shop R2)', () => {
  test('renamed segments: a stored filter follows the new names', async () => {
    const rfms = await rfmOf(R2.key, R_CUSTOMERS);
    assert.deepEqual(rfms, asRfm(R_RFM));
    await create(R2.key, 'champ', C('rfm_segment', 'eq', 'Champions'));
    await create(R2.key, 'stars', C('rfm_segment', 'eq', 'Stars'));
    await create(R2.key, 'risk', C('rfm_segment', 'in', ['At risk', 'Nobody']));
    await create(R2.key, 'not-risk', C('rfm_segment', 'ne', 'At risk'));
    await create(R2.key, 'cant-stay', C('rfm_segment', 'eq', "Can't stay"));
    assert.deepEqual(await sizeAndMembers(R2.key, 'champ'), [1, ['a1']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'stars'), [0, []]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'risk'), [2, ['a7', 'a9']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'cant-stay'), [0, []]);

    // Champions → Stars, At risk → Can't stay; the cells are unchanged
    const renamed = DEFAULT_MAP.map((e) => ({
      ...e, name: e.name === 'Champions' ? 'Stars' : e.name === 'At risk' ? "Can't stay" : e.name,
    }));
    const put = await c.put('/v1/rfm/map', { segments: renamed }, { key: R2.key });
    assert.equal(put.status, 200, put.text);
    const now = await rfmOf(R2.key, R_CUSTOMERS);
    assert.equal(now.a1.segment, 'Stars');
    assert.equal(now.a7.segment, "Can't stay");
    assert.deepEqual(await sizeAndMembers(R2.key, 'champ'), [0, []]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'stars'), [1, ['a1']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'risk'), [0, []]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'not-risk'), [10, R_SCORED]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'cant-stay'), [2, ['a7', 'a9']]);
    const counts = await summaryCounts(R2.key);
    assert.equal(counts.Stars, 1);
    assert.equal(counts["Can't stay"], 2);
  });

  test('a coarser map: Top (R4–5) and Rest (R1–3); then thresholds; then the Lost override', async () => {
    const put = await c.put('/v1/rfm/map', { segments: [{ name: 'Top', r: [4, 5], f: [1, 5] }, { name: 'Rest', r: [1, 3], f: [1, 5] }] }, { key: R2.key });
    assert.equal(put.status, 200, put.text);
    await create(R2.key, 'top', C('rfm_segment', 'eq', 'Top'));
    await create(R2.key, 'rest', C('rfm_segment', 'in', ['Rest']));
    await create(R2.key, 'r-eq-4', C('rfm_recency', 'eq', 4));
    await create(R2.key, 'f-gte-4', C('rfm_frequency', 'gte', 4));
    await create(R2.key, 'm-eq-3', C('rfm_monetary', 'eq', 3));
    assert.deepEqual(await sizeAndMembers(R2.key, 'top'), [4, ['a1', 'a2', 'a3', 'a4']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'rest'), [6, ['a5', 'a6', 'a7', 'a8', 'a9', 'a10']]);
    assert.deepEqual(await summaryCounts(R2.key), { Top: 4, Rest: 6 });

    // thresholds recency_days [7, 30, 90, 180], frequency [2, 3, 5, 8], monetary [10000, 20000, 50000, 100000]:
    //   R: a1 2 → 5, a2 5 → 5, a3 10 → 4, a4 20 → 4, a5 30 → 4, a6 45 → 3, a7 60 → 3, a8 90 → 3, a9 120 → 2, a10 200 → 1
    //   F (1 + thresholds reached): a1 10 → 5, a2 1 → 1, a3 2 → 2, a4 7 → 4, a5 5 → 4, a6 3 → 3, a7 6 → 4,
    //     a8 9 → 5, a9 8 → 5, a10 4 → 3
    //   M: a1 20000 → 3, a2 50000 → 4, a3 5000 → 1, a4 12000 → 2, a5 30000 → 3, a6 60000 → 4,
    //     a7 8000 → 1, a8 15000 → 2, a9 25000 → 3, a10 36000 → 3
    //   Top (R4–5): a1 a2 a3 a4 a5; Rest: a6 … a10
    const p = await c.patch(`/v1/shops/${R2.shopId}`, {
      settings: { rfm: { method: 'thresholds', recency_days: [7, 30, 90, 180], frequency: [2, 3, 5, 8], monetary: [10000, 20000, 50000, 100000] } },
    }, { key: R2.key });
    assert.equal(p.status, 200, p.text);
    const th = await rfmOf(R2.key, R_CUSTOMERS);
    assert.deepEqual(th, asRfm({
      a1: [5, 5, 3, 'Top'], a2: [5, 1, 4, 'Top'], a3: [4, 2, 1, 'Top'], a4: [4, 4, 2, 'Top'], a5: [4, 4, 3, 'Top'],
      a6: [3, 3, 4, 'Rest'], a7: [3, 4, 1, 'Rest'], a8: [3, 5, 2, 'Rest'], a9: [2, 5, 3, 'Rest'], a10: [1, 3, 3, 'Rest'],
      a11: null, a12: null, a13: null,
    }));
    assert.deepEqual(await sizeAndMembers(R2.key, 'r-eq-4'), [3, ['a3', 'a4', 'a5']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'f-gte-4'), [6, ['a1', 'a4', 'a5', 'a7', 'a8', 'a9']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'm-eq-3'), [4, ['a1', 'a5', 'a9', 'a10']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'top'), [5, ['a1', 'a2', 'a3', 'a4', 'a5']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'rest'), [5, ['a6', 'a7', 'a8', 'a9', 'a10']]);
    assert.deepEqual(await summaryCounts(R2.key), { Top: 5, Rest: 5 });
    for (const [code, pred] of [['r-eq-4', (x) => x.r === 4], ['f-gte-4', (x) => x.f >= 4], ['m-eq-3', (x) => x.m === 3], ['top', (x) => x.segment === 'Top']]) {
      const [, members] = await sizeAndMembers(R2.key, code);
      assert.deepEqual(members, R_CUSTOMERS.filter((id) => th[id] !== null && pred(th[id])), `${code} agrees with ?include=rfm`);
    }

    // back to quintiles and the default map, then lapse_days 199: a10 (R1 F2, 200 days) → Lost
    const q = await c.patch(`/v1/shops/${R2.shopId}`, { settings: { rfm: { method: 'quintiles' }, segments: { lapse_days: 199 } } }, { key: R2.key });
    assert.equal(q.status, 200, q.text);
    const d = await c.put('/v1/rfm/map', { segments: DEFAULT_MAP }, { key: R2.key });
    assert.equal(d.status, 200, d.text);
    await create(R2.key, 'lost', C('rfm_segment', 'eq', 'Lost'));
    await create(R2.key, 'hib', C('rfm_segment', 'eq', 'Hibernating'));
    assert.deepEqual(await sizeAndMembers(R2.key, 'lost'), [1, ['a10']]);
    assert.deepEqual(await sizeAndMembers(R2.key, 'hib'), [0, []]);
    assert.equal((await rfmOf(R2.key, ['a10'])).a10.segment, 'Lost');
    const counts = await summaryCounts(R2.key);
    assert.equal(counts.Lost, 1);
    assert.equal(counts.Hibernating, 0);
  });
});

describe('RFM fields: invalid filters → 422 validation_failed with a pointer; nothing is stored', () => {
  const long = (n) => 'x'.repeat(n);
  const cases = [
    // rfm_segment values
    [C('rfm_segment', 'eq', 5), '/filter/value'],
    [C('rfm_segment', 'eq', null), '/filter/value'],
    [C('rfm_segment', 'eq', true), '/filter/value'],
    [C('rfm_segment', 'eq', ['Loyal']), '/filter/value'],
    [C('rfm_segment', 'eq', { name: 'Loyal' }), '/filter/value'],
    [C('rfm_segment', 'eq', ''), '/filter/value'],
    [C('rfm_segment', 'ne', ''), '/filter/value'],
    [C('rfm_segment', 'eq', long(65)), '/filter/value'],
    [C('rfm_segment', 'eq', '茶'.repeat(65)), '/filter/value'], // 65 characters
    [C('rfm_segment', 'in', []), '/filter/value'],
    [C('rfm_segment', 'in', 'Loyal'), '/filter/value'],
    [C('rfm_segment', 'in', ['Loyal', 'Champions', 'Loyal']), '/filter/value/2'],
    [C('rfm_segment', 'in', ["Can't lose them", "Can't lose them"]), '/filter/value/1'],
    [C('rfm_segment', 'in', ['Loyal', 5]), '/filter/value/1'],
    [C('rfm_segment', 'in', ['Loyal', '']), '/filter/value/1'],
    [C('rfm_segment', 'in', ['Loyal', long(65)]), '/filter/value/1'],
    [C('rfm_segment', 'in', Array.from({ length: 101 }, (_, i) => `s${i}`)), '/filter/value'],
    // rfm_segment operators
    [C('rfm_segment', 'contains', 'Loyal'), '/filter/op'],
    [C('rfm_segment', 'contains_any', ['Loyal']), '/filter/op'],
    [C('rfm_segment', 'lt', 'Loyal'), '/filter/op'],
    [C('rfm_segment', 'between', ['A', 'B']), '/filter/op'],
    [C('rfm_segment', 'EQ', 'Loyal'), '/filter/op'],
    // scores
    [C('rfm_recency', 'eq', '5'), '/filter/value'],
    [C('rfm_recency', 'eq', 1.5), '/filter/value'],
    [C('rfm_frequency', 'eq', null), '/filter/value'],
    [C('rfm_monetary', 'between', [4, 2]), '/filter/value'],
    [C('rfm_monetary', 'between', [1]), '/filter/value'],
    [C('rfm_monetary', 'between', 3), '/filter/value'],
    [C('rfm_recency', 'in', [1, 2]), '/filter/op'],
    [C('rfm_frequency', 'contains', 3), '/filter/op'],
    // unknown field
    [C('rfm_score', 'eq', 3), '/filter/field'],
    [C('rfm', 'eq', 'Loyal'), '/filter/field'],
    // nested
    [{ all: [C('order_count', 'gte', 1), C('rfm_segment', 'in', ['A', 'B', 'A'])] }, '/filter/all/1/value/2'],
    [{ any: [{ not: C('rfm_segment', 'contains', 'Loyal') }] }, '/filter/any/0/not/op'],
    [{ all: [C('rfm_recency', 'gte', 4), C('rfm_segment', 'eq', '')] }, '/filter/all/1/value'],
  ];
  let V;
  before(async () => { V = await mkShop(); });

  for (const [k, [filter, pointer]] of cases.entries()) {
    test(`${JSON.stringify(filter).slice(0, 120)} → ${pointer}`, async () => {
      const code = `bad-${k}`;
      const r = await c.put(`/v1/segments/${code}`, { name: 'Bad', filter }, { key: V.key });
      assertProblem(r, 422, 'validation_failed', pointer);
      assertProblem(await c.get(`/v1/segments/${code}`, { key: V.key }), 404, 'not_found');
    });
  }

  test('the limits themselves are accepted: 64 characters (also multi-byte), 100 names, any characters', async () => {
    const ok = [
      C('rfm_segment', 'eq', long(64)),
      C('rfm_segment', 'eq', '茶'.repeat(64)),
      C('rfm_segment', 'ne', "Can't lose them"),
      C('rfm_segment', 'eq', 'a "quoted", name; with\ttab'),
      C('rfm_segment', 'in', Array.from({ length: 100 }, (_, i) => `s${i}`)),
      C('rfm_segment', 'in', ['x']),
      C('rfm_recency', 'between', [5, 5]),
      C('rfm_monetary', 'eq', -1),
    ];
    for (const [k, filter] of ok.entries()) {
      const made = await create(V.key, `ok-${k}`, filter);
      assert.deepEqual(made.filter, filter, 'the filter as stored');
      assert.equal(made.size, 0, 'a shop without orders has no members');
    }
  });
});

// ---------------------------------------------------------------------------
// days since, in zones that move their clocks

// An export finds each member's local day of first and last order from the
// zone's midnights (binary search), unless the zone moves its clocks near a
// midnight, when SQL computes them as the JSON pages always do. Either way
// the days must be the pages' days. Each shop has one customer per order,
// placed every 30 minutes through three days around its zone's clock
// changes: midnights inside a change (Havana, Santiago), changes at 02:00 and
// 03:00 (Berlin), a whole day skipped (Apia, 2011-12-30), none (Shanghai), and
// none over a span too long for the lookup (Tokyo).
const CLOCK_ZONES = {
  'Europe/Berlin': ['2025-03-30', '2025-10-26'],
  'America/Havana': ['2025-03-09', '2025-11-02'],
  'America/Santiago': ['2025-04-06', '2025-09-07'],
  'Pacific/Apia': ['2011-12-30', '2021-04-04'],
  'Asia/Shanghai': ['2025-01-01'],
  // 50 years apart: more days than the export looks up (15,000), so SQL counts them
  'Asia/Tokyo': ['1975-06-01', '2025-06-01'],
};

describe('days since, in zones that move their clocks', () => {
  for (const [zone, dates] of Object.entries(CLOCK_ZONES)) {
    test(`${zone}: CSV and NDJSON give the JSON pages' days since first and last order`, async () => {
      const s = await setupShop(svc, { timezone: zone, name: uniq('Clock Shop') });
      const orders = [];
      for (const date of dates) {
        // from 36 hours before the date's UTC midnight to 36 hours after: every local midnight near it
        const mid = Date.parse(`${date}T00:00:00Z`);
        for (let t = mid - 36 * 3600e3; t < mid + 36 * 3600e3; t += 1800e3) {
          const id = `k${orders.length}`;
          orders.push({
            id: `${id}-1`, customer_id: id, placed_at: new Date(t).toISOString(), channel: 'web', currency: 'CNY',
            lines: [{ sku: 'SKU-tea', category: 'tea', role: 'regular', quantity: 1, unit_price: 500 }], total: 500,
          });
        }
      }
      await load(s.keys.admin, orders);
      const put = await c.put('/v1/segments/everyone', { name: 'Everyone', filter: C('order_count', 'gte', 1) },
        { key: s.keys.admin });
      assert.ok([200, 201].includes(put.status), put.text);
      const items = await pages(s.keys.admin, 'everyone');
      assert.equal(items.length, orders.length);
      // the pages' days, by hand where a day starts at an odd hour
      const since = (utcAt) => items.find((x) => x.facts.first_order_at === utcAt).facts.days_since_first_order;
      if (zone === 'America/Havana') {
        // 04:30Z is 23:30 CST on 03-08; 05:00Z is 01:00 CDT on 03-09 (00:00 does not exist)
        assert.equal(since('2025-03-09T04:30:00.000000Z') - since('2025-03-09T05:00:00.000000Z'), 1);
      }
      if (zone === 'Pacific/Apia') {
        // 09:30Z is 23:30 on 2011-12-29 (-10); 10:00Z is 00:00 on 2011-12-31 (+14)
        assert.equal(since('2011-12-30T09:30:00.000000Z') - since('2011-12-30T10:00:00.000000Z'), 2);
      }
      const nd = parseNdjson(await ndjsonOf(s.keys.admin, 'everyone'));
      assert.deepEqual(nd, items, `${zone}: NDJSON`);
      csvMatches(parseCsv(await csvOf(s.keys.admin, 'everyone')), items, undefined, `${zone}: CSV`);
      // the days differ across the window: a wrong midnight would show
      const days = new Set(items.map((x) => x.facts.days_since_first_order));
      assert.ok(days.size >= 3 * dates.length - 1, `${zone}: ${days.size} distinct days`);
    });
  }
});

// History import: `rebuyd import orders FILE --shop ID` for CSV and NDJSON.
// Bad orders are rejected with the API's own reasons and reported; good ones
// land; a re-run changes nothing; the facts match a recomputation.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startService, api, setupShop } from '../lib/harness.js';

let svc;
let c;
let S;
let dir;

const HEADER = 'order_id,customer_id,placed_at,channel,currency,sku,name,category,role,quantity,unit_price,line_discount,shipping,order_discount,total';

before(async () => {
  svc = await startService();
  c = api(svc);
  S = await setupShop(svc);
  dir = mkdtempSync(path.join(tmpdir(), 'rebuy-import-'));
});
after(async () => { await svc?.stop(); });

const importFile = (file, extra = []) =>
  svc.cli(['import', 'orders', file, '--shop', S.shopId, ...extra]);
const summary = (stdout) => Object.fromEntries(stdout.split('\n')
  .map((l) => l.match(/^([a-z ]+):\s+(\d+)/)).filter(Boolean).map((m) => [m[1].trim(), Number(m[2])]));
const rejects = (file) => readFileSync(`${file}.rejects.ndjson`, 'utf8').trim().split('\n')
  .filter(Boolean).map((l) => JSON.parse(l));
const orderCount = async () => Number((await svc.db.query(
  'SELECT count(*) FROM orders WHERE shop_id = $1', [S.shopId])).rows[0].count);

describe('CSV', () => {
  const file = () => path.join(dir, 'history.csv');
  const rows = [
    HEADER,
    'h-1,hc-1,2025-01-01T10:00:00+08:00,web,CNY,TEA,"Longjing, 250 g",tea,traffic,2,1000,0,500,0,2500',
    'h-2,hc-1,2025-02-01T10:00:00+08:00,tmall,CNY,CUP,,teaware,regular,1,3000,,,,3900',
    'h-2,hc-1,2025-02-01T10:00:00+08:00,tmall,CNY,TEA,,tea,regular,1,1000,100,,,3900',
    'h-3,hc-2,2025-02-01T10:00:00+08:00,web,CNY,TEA,,tea,bogus,1,1000,,,,1000',
    'h-4,hc-2,2025-03-01T10:00:00+08:00,web,USD,TEA,,tea,regular,1,1000,,,,1000',
    'h-5,hc-2,2025-03-02T10:00:00+08:00,web,CNY,TEA,,tea,regular,1,1000,,,,999',
    'h-6,hc-3,2025-03-05T10:00:00Z,web,CNY,TEA,,tea,regular,x,1000,,,,1000',
    'h-7,hc-3,2025-03-06T10:00:00Z,web,CNY,TEA,,tea,regular,1,1000,,,,1000',
    'h-7,hc-3,2025-03-07T10:00:00Z,web,CNY,CUP,,teaware,regular,1,1000,,,,1000',
    'h-8,hc-2,2025-04-01T10:00:00+08:00,douyin,CNY,TEA,,tea,activity,3,800,,,,2400',
  ];

  test('good orders land, bad ones are rejected with the API\'s reasons and row numbers', async () => {
    writeFileSync(file(), rows.join('\n') + '\n');
    const r = await importFile(file());
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s['rows read'], 10); // data rows; the header is not one
    assert.equal(s.imported, 3, r.stdout); // h-1, h-2, h-8
    assert.equal(s.rejected, 5, r.stdout);
    const rj = rejects(file());
    const by = Object.fromEntries(rj.map((x) => [x.order_id, x]));
    assert.match(by['h-3'].reason, /^\/lines\/0\/role: must be one of traffic, activity, regular/);
    assert.equal(by['h-3'].row, 5);
    assert.match(by['h-4'].reason, /\/currency: the shop trades in CNY, not USD/);
    assert.match(by['h-5'].reason, /^\/total: must equal .* = 1000$/);
    assert.match(by['h-6'].reason, /whole numbers/);
    assert.match(by['h-7'].reason, /placed_at differs from row 9 of the same order/);
    assert.equal(await orderCount(), 3);
    // imported orders read back exactly as the API would store them
    const o = (await c.get('/v1/orders/h-2', { key: S.keys.admin })).body;
    assert.equal(o.total, 3900);
    assert.deepEqual(o.lines.map((l) => [l.sku, l.line_total]), [['CUP', 3000], ['TEA', 900]]);
    assert.equal((await c.get('/v1/orders/h-1', { key: S.keys.admin })).body.lines[0].name, 'Longjing, 250 g');
    const f = (await c.get('/v1/customers/hc-1', { key: S.keys.admin })).body.facts;
    assert.equal(f.order_count, 2);
    assert.equal(f.total_spent, 6400);
    assert.equal(f.first_order_channel, 'web');
  });

  test('importing the same file again changes nothing', async () => {
    const before = (await svc.db.query('SELECT seq, id FROM orders ORDER BY seq')).rows;
    const r = await importFile(file());
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.imported, 0);
    assert.equal(s.unchanged, 3);
    assert.deepEqual((await svc.db.query('SELECT seq, id FROM orders ORDER BY seq')).rows, before);
  });

  test('an existing id with other content is rejected as a conflict', async () => {
    const f2 = path.join(dir, 'conflict.csv');
    writeFileSync(f2, [HEADER,
      'h-1,hc-1,2025-01-01T10:00:00+08:00,web,CNY,TEA,,tea,traffic,1,2500,0,0,0,2500'].join('\n'));
    const r = await importFile(f2);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(summary(r.stdout).rejected, 1);
    assert.match(rejects(f2)[0].reason, /conflicts with an existing order/);
    assert.equal((await c.get('/v1/orders/h-1', { key: S.keys.admin })).body.lines[0].quantity, 2);
  });

  test('a wrong header is a usage error and imports nothing', async () => {
    const f3 = path.join(dir, 'badheader.csv');
    writeFileSync(f3, 'order,customer\nx,y\n');
    const n = await orderCount();
    const r = await importFile(f3);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /header/);
    assert.equal(await orderCount(), n);
  });

  test('text that is not UTF-8 rejects its order, whichever column (the name too)', async () => {
    const f4 = path.join(dir, 'latin1.csv');
    const bad = Buffer.from([0x43, 0x61, 0x66, 0xe9]); // "Café" in Latin-1
    const row = (id, sku, name) => Buffer.concat([Buffer.from(`${id},hc-9,2025-05-01T10:00:00Z,web,CNY,`),
      sku, Buffer.from(','), name, Buffer.from(',tea,regular,1,1000,,,,1000\n')]);
    writeFileSync(f4, Buffer.concat([Buffer.from(HEADER + '\n'),
      row('u-1', Buffer.from('TEA'), bad), row('u-2', bad, Buffer.from('ok')),
      row('u-3', Buffer.from('TEA'), Buffer.from('Café'))]));
    const n = await orderCount();
    const r = await importFile(f4);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.imported, 1, r.stdout);
    assert.equal(s.rejected, 2, r.stdout);
    assert.deepEqual(rejects(f4).map((x) => [x.order_id, x.reason]).sort(),
      [['u-1', 'text is not valid UTF-8'], ['u-2', 'text is not valid UTF-8']]);
    assert.equal(await orderCount(), n + 1);
    assert.equal((await c.get('/v1/orders/u-3', { key: S.keys.admin })).body.lines[0].name, 'Café');
  });
});

describe('NDJSON', () => {
  test('orders as PUT bodies plus id; bad lines rejected; facts verified', async () => {
    const file = path.join(dir, 'history.ndjson');
    const order = (id, cust, day, total, extra = {}) => JSON.stringify({
      id, customer_id: cust, placed_at: `2025-05-${day}T09:00:00+08:00`, channel: 'jd', currency: 'CNY',
      lines: [{ sku: 'SNK', category: 'snacks', role: 'regular', quantity: 1, unit_price: total }],
      total, ...extra });
    writeFileSync(file, [
      order('n-1', 'nc-1', '01', 1200),
      '',
      order('n-2', 'nc-1', '20', 1500),
      '{"id": "n-3", broken',
      order('n-4', 'nc-2', '02', 800, { unknown: 1 }),
      order('n-5', 'nc-2', '03', 800, { currency: 'EUR' }),
      JSON.stringify({ customer_id: 'nc-2' }),
    ].join('\n') + '\n');
    const r = await importFile(file);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.imported, 2, r.stdout);
    assert.equal(s.rejected, 4, r.stdout);
    const reasons = rejects(file).map((x) => `${x.row}:${x.reason}`);
    assert.ok(reasons.some((x) => /^4:invalid JSON/.test(x)), reasons.join('\n'));
    assert.ok(reasons.some((x) => /^5:\/unknown: unknown field/.test(x)), reasons.join('\n'));
    assert.ok(reasons.some((x) => /^6:\/currency/.test(x)), reasons.join('\n'));
    assert.ok(reasons.some((x) => /^7:\/id/.test(x)), reasons.join('\n'));
    const f = (await c.get('/v1/customers/nc-1', { key: S.keys.admin })).body.facts;
    assert.equal(f.order_count, 2);
    assert.equal(f.second_order_at, '2025-05-20T01:00:00.000000Z');
    const v = await svc.cli(['verify']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /^0 differences$/m);
  });
});

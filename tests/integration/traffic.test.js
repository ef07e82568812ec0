// POST /v1/traffic (metrics2.md §4): the storefront's daily traffic feed.
// Upsert per (date, channel), all-or-nothing validation with pointers,
// scopes and shop isolation. What is stored is read back through
// GET /v1/metrics/sales-decomposition (visitors, sessions, traffic_days are
// sums over the stored rows); every expected sum is worked out by hand in
// the comment next to it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startService, api, setupShop, assertProblem, uniq,
} from '../lib/harness.js';

let svc;
let c;

const TRAFFIC = '/v1/traffic';
const DEC = '/v1/metrics/sales-decomposition';

// ---------------------------------------------------------------------------
// helpers

/** A shop (platform key) in the given time zone; returns {shopId, key}. */
async function mkShop(timezone = 'Asia/Shanghai') {
  const r = await c.post('/v1/shops', { name: uniq('Traffic Shop'), currency: 'CNY', timezone }, { key: svc.platformKey });
  assert.equal(r.status, 201, r.text);
  return { shopId: r.body.shop.id, key: r.body.admin_key.key };
}

const post = (key, body) => c.post(TRAFFIC, body, { key });

/** POST /v1/traffic; asserts 200 and returns the body. */
async function postOk(key, days) {
  const r = await post(key, { days });
  assert.equal(r.status, 200, `POST /v1/traffic: ${r.text}`);
  return r.body;
}

const qs = (q) => `?${new URLSearchParams(q).toString()}`;

/** Traffic figures of a range as [visitors, sessions, traffic_days] (sales decomposition). */
async function stored(key, from, to, extra = {}) {
  const r = await c.get(DEC + qs({ from, to, as_of: to, ...extra }), { key });
  assert.equal(r.status, 200, r.text);
  return [r.body.visitors, r.body.sessions, r.body.traffic_days];
}

const NONE = [null, null, 0];

/** Today's date in a time zone, YYYY-MM-DD. */
const today = (timeZone) => new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
const addDays = (date, n) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);

const day = (date, channel = 'web', visitors = 100, sessions = 120) => ({ date, channel, visitors, sessions });

before(async () => {
  svc = await startService();
  c = api(svc);
});

after(async () => { await svc?.stop(); });

// ---------------------------------------------------------------------------

describe('upsert', () => {
  test('created and updated counts; a second post replaces the row; re-sending is harmless', async () => {
    const S = await mkShop();
    const may = (extra) => stored(S.key, '2025-05-01', '2025-05-31', extra);
    assert.deepEqual(await may(), NONE);

    let body = await postOk(S.key, [day('2025-05-01', 'web', 100, 150), day('2025-05-01', 'tmall', 50, 60)]);
    assert.deepEqual(body, { days: [day('2025-05-01', 'web', 100, 150), day('2025-05-01', 'tmall', 50, 60)], created: 2, updated: 0 });
    // visitors 100 + 50 = 150, sessions 150 + 60 = 210, one date
    assert.deepEqual(await may(), [150, 210, 1]);
    assert.deepEqual(await may({ channel: 'tmall' }), [50, 60, 1]);

    // a new row and a replacement, answered in request order
    const second = [day('2025-05-02', 'web', 10, 20), day('2025-05-01', 'web', 300, 400)];
    body = await postOk(S.key, second);
    assert.deepEqual(body, { days: second, created: 1, updated: 1 });
    // web 05-01 replaced (not added): 300 + 50 + 10 = 360 visitors, 400 + 60 + 20 = 480 sessions, dates 05-01 and 05-02
    assert.deepEqual(await may(), [360, 480, 2]);
    assert.deepEqual(await may({ channel: 'web' }), [310, 420, 2]);

    // the same body again: nothing new is created, the sums stay
    body = await postOk(S.key, second);
    assert.deepEqual(body.days, second);
    assert.equal(body.created, 0);
    assert.equal(body.created + body.updated, 2, 'every entry is either created or updated');
    assert.deepEqual(await may(), [360, 480, 2]);

    // a row set to zero stays a row: 05-02 still counts as a traffic day
    body = await postOk(S.key, [day('2025-05-02', 'web', 0, 0)]);
    assert.deepEqual(body, { days: [day('2025-05-02', 'web', 0, 0)], created: 0, updated: 1 });
    // 300 + 50 + 0 = 350, 400 + 60 + 0 = 460
    assert.deepEqual(await may(), [350, 460, 2]);
    // 05-02 alone: one row with 0 visitors → visitors 0 (not null), 1 traffic day
    assert.deepEqual(await stored(S.key, '2025-05-02', '2025-05-02'), [0, 0, 1]);
  });

  test('the same date on different channels and the same channel on different dates are different rows', async () => {
    const S = await mkShop();
    const days = [day('2025-06-01', 'web', 1, 2), day('2025-06-01', 'Web', 10, 20), day('2025-06-02', 'web', 100, 200)];
    const body = await postOk(S.key, days);
    assert.deepEqual(body, { days, created: 3, updated: 0 });
    // 1 + 10 + 100 = 111, 2 + 20 + 200 = 222; dates 06-01, 06-02. Channels are case-sensitive: "web" has 101.
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), [111, 222, 2]);
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30', { channel: 'web' }), [101, 202, 2]);
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30', { channel: 'Web' }), [10, 20, 1]);
  });

  test('1 and 1000 entries are accepted; the limits of the values too', async () => {
    const S = await mkShop();
    // 1000 distinct dates from 2022-01-01: 2022-01-01 + 999 days = 2024-09-26.
    const days = Array.from({ length: 1000 }, (_, i) => day(addDays('2022-01-01', i), 'web', 1, 2));
    assert.equal(days[999].date, '2024-09-26');
    const body = await postOk(S.key, days);
    assert.equal(body.created, 1000);
    assert.equal(body.updated, 0);
    assert.deepEqual(body.days, days);
    // 2022 (365 days) + 2023 (365) + 2024-01-01..09-26 (270: 31+29+31+30+31+30+31+31+26) = 1000 rows
    assert.deepEqual(await stored(S.key, '2022-01-01', '2024-12-31'), [1000, 2000, 1000]);
    // one of them: 2023 alone holds 365 rows
    assert.deepEqual(await stored(S.key, '2023-01-01', '2023-12-31'), [365, 730, 365]);

    const big = 10 ** 12;
    const edge = [day('2025-01-01', 'c'.repeat(64), big, big), day('2025-01-01', 'store:jingan.main_1-A', 0, 0)];
    assert.deepEqual(await postOk(S.key, edge), { days: edge, created: 2, updated: 0 });
    assert.deepEqual(await stored(S.key, '2025-01-01', '2025-01-01'), [big, big, 1]);
    assert.deepEqual(await stored(S.key, '2025-01-01', '2025-01-01', { channel: 'store:jingan.main_1-A' }), [0, 0, 1]);
  });

  test("today in the shop's time zone is accepted", async () => {
    const S = await mkShop();
    const t = today('Asia/Shanghai');
    const r = await post(S.key, { days: [day(t, 'web', 5, 6)] });
    if (r.status !== 200) {
      // the date may have changed between today() and the request
      assert.notEqual(today('Asia/Shanghai'), t, r.text);
    } else {
      assert.equal(r.body.created, 1);
    }
  });
});

describe('validation → 422, nothing stored', () => {
  test('an invalid entry rejects the whole body: pointer /days/3/visitors, nothing stored or replaced', async () => {
    const S = await mkShop();
    await postOk(S.key, [day('2025-05-01', 'web', 100, 150)]);
    const r = await post(S.key, {
      days: [
        day('2025-06-01'), day('2025-06-02'),
        day('2025-05-01', 'web', 999, 999), // would replace the stored row
        day('2025-06-03', 'web', -1, 10),
        day('2025-06-04'),
      ],
    });
    assertProblem(r, 422, 'validation_failed', '/days/3/visitors');
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), NONE);
    assert.deepEqual(await stored(S.key, '2025-05-01', '2025-05-31'), [100, 150, 1], 'the stored row is unchanged');
  });

  test('duplicate (date, channel) in one body → pointer to the later one; nothing stored', async () => {
    const S = await mkShop();
    let r = await post(S.key, { days: [day('2025-06-01', 'web', 1, 1), day('2025-06-02'), day('2025-06-01', 'web', 2, 2)] });
    assertProblem(r, 422, 'validation_failed', '/days/2');
    r = await post(S.key, { days: [day('2025-06-01'), day('2025-06-02', 'tmall'), day('2025-06-02', 'web'), day('2025-06-02', 'tmall'), day('2025-06-03')] });
    assertProblem(r, 422, 'validation_failed', '/days/3');
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), NONE);
  });

  test('a date after today in the shop zone → /days/<i>/date', async () => {
    const S = await mkShop();
    // tomorrow in Shanghai (unless the date changes during the request: then it is today and accepted)
    const tomorrow = addDays(today('Asia/Shanghai'), 1);
    const r = await post(S.key, { days: [day('2025-06-01'), day(tomorrow)] });
    if (r.status === 200) assert.equal(today('Asia/Shanghai'), tomorrow, `tomorrow ${tomorrow} accepted: ${r.text}`);
    else assertProblem(r, 422, 'validation_failed', '/days/1/date');
    assertProblem(await post(S.key, { days: [day('2999-01-01')] }), 422, 'validation_failed', '/days/0/date');
    if (r.status !== 200) assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), NONE);
  });

  test("the shop's zone decides what today is: Kiritimati (UTC+14) vs Pago Pago (UTC−11)", async () => {
    // Kiritimati is 25 hours ahead of Pago Pago: its date is always 1 or 2 days after Pago Pago's.
    const K = await mkShop('Pacific/Kiritimati');
    const P = await mkShop('Pacific/Pago_Pago');
    const kToday = today('Pacific/Kiritimati');
    const r = await post(K.key, { days: [day(kToday)] });
    if (r.status !== 200) assert.notEqual(today('Pacific/Kiritimati'), kToday, `Kiritimati today ${kToday}: ${r.text}`);
    assertProblem(await post(P.key, { days: [day(kToday)] }), 422, 'validation_failed', '/days/0/date');
  });

  const bad = [
    // [name, body, pointer]
    ['no entries', { days: [] }, '/days'],
    ['1001 entries', { days: Array.from({ length: 1001 }, (_, i) => day(addDays('2022-01-01', i))) }, '/days'],
    ['days missing', {}, '/days'],
    ['days not an array', { days: { date: '2025-06-01' } }, '/days'],
    ['days null', { days: null }, '/days'],
    ['unknown top-level field', { days: [day('2025-06-01')], source: 'ga' }, '/source'],
    ['entry not an object', { days: ['2025-06-01'] }, '/days/0'],
    ['entry null', { days: [day('2025-06-01'), null] }, '/days/1'],
    ['unknown entry field', { days: [{ ...day('2025-06-01'), orders: 3 }] }, '/days/0/orders'],
    ['date missing', { days: [{ channel: 'web', visitors: 1, sessions: 1 }] }, '/days/0/date'],
    ['date not a real date', { days: [day('2025-02-29')] }, '/days/0/date'],
    ['date 2025-06-31', { days: [day('2025-06-31')] }, '/days/0/date'],
    ['date without zero padding', { days: [day('2025-6-01')] }, '/days/0/date'],
    ['date with a time', { days: [day('2025-06-01T00:00:00Z')] }, '/days/0/date'],
    ['date as a number', { days: [day(20250601)] }, '/days/0/date'],
    ['date empty', { days: [day('')] }, '/days/0/date'],
    ['channel missing', { days: [{ date: '2025-06-01', visitors: 1, sessions: 1 }] }, '/days/0/channel'],
    ['channel empty', { days: [day('2025-06-01', '')] }, '/days/0/channel'],
    ['channel 65 characters', { days: [day('2025-06-01', 'w'.repeat(65))] }, '/days/0/channel'],
    ['channel with a space', { days: [day('2025-06-01', 'web shop')] }, '/days/0/channel'],
    ['channel with a slash', { days: [day('2025-06-01', 'tea/green')] }, '/days/0/channel'],
    ['channel not a string', { days: [day('2025-06-01', 7)] }, '/days/0/channel'],
    ['visitors missing', { days: [{ date: '2025-06-01', channel: 'web', sessions: 1 }] }, '/days/0/visitors'],
    ['visitors negative', { days: [day('2025-06-01', 'web', -1, 1)] }, '/days/0/visitors'],
    ['visitors 1.5', { days: [day('2025-06-01', 'web', 1.5, 1)] }, '/days/0/visitors'],
    ['visitors a string', { days: [day('2025-06-01', 'web', '5', 1)] }, '/days/0/visitors'],
    ['visitors null', { days: [day('2025-06-01', 'web', null, 1)] }, '/days/0/visitors'],
    ['visitors above 10^12', { days: [day('2025-06-01', 'web', 10 ** 12 + 1, 1)] }, '/days/0/visitors'],
    ['sessions missing', { days: [{ date: '2025-06-01', channel: 'web', visitors: 1 }] }, '/days/0/sessions'],
    ['sessions negative', { days: [day('2025-06-01', 'web', 1, -1)] }, '/days/0/sessions'],
    ['sessions above 10^12', { days: [day('2025-06-01', 'web', 1, 10 ** 12 + 1)] }, '/days/0/sessions'],
    ['sessions boolean', { days: [day('2025-06-01', 'web', 1, true)] }, '/days/0/sessions'],
    ['bad entry in the middle', { days: [day('2025-06-01'), day('2025-06-02'), day('2025-06-03', 'web', 1, 2.5), day('2025-06-04')] }, '/days/2/sessions'],
  ];
  for (const [name, body, pointer] of bad) {
    test(`${name} → 422 ${pointer}`, async () => {
      const S = await mkShop();
      assertProblem(await post(S.key, body), 422, 'validation_failed', pointer);
      assert.deepEqual(await stored(S.key, '2022-01-01', '2025-06-30'), NONE, 'nothing stored');
    });
  }

  test('integers only: 1.0 is not an integer → 422', async () => {
    const S = await mkShop();
    const r = await c.req('POST', TRAFFIC, { key: S.key, rawBody: '{"days":[{"date":"2025-06-01","channel":"web","visitors":1.0,"sessions":1}]}' });
    assertProblem(r, 422, 'validation_failed', '/days/0/visitors');
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), NONE);
  });

  test('a body that is not JSON → 400 malformed_json; not application/json → 415', async () => {
    const S = await mkShop();
    assertProblem(await c.req('POST', TRAFFIC, { key: S.key, rawBody: '{"days": [' }), 400, 'malformed_json');
    assertProblem(await c.req('POST', TRAFFIC, {
      key: S.key, rawBody: JSON.stringify({ days: [day('2025-06-01')] }), headers: { 'content-type': 'text/plain' },
    }), 415, 'unsupported_media_type');
    assertProblem(await post(S.key, [day('2025-06-01')]), 422, 'validation_failed');
    assert.deepEqual(await stored(S.key, '2025-06-01', '2025-06-30'), NONE);
  });
});

describe('authentication and scopes', () => {
  let S;
  before(async () => { S = await setupShop(svc); });
  const sum = (from, to) => stored(S.keys.admin, from, to);

  test('admin and storefront → 200', async () => {
    assert.deepEqual(await postOk(S.keys.admin, [day('2025-07-01', 'web', 10, 11)]), { days: [day('2025-07-01', 'web', 10, 11)], created: 1, updated: 0 });
    assert.deepEqual(await postOk(S.keys.storefront, [day('2025-07-02', 'web', 20, 21)]), { days: [day('2025-07-02', 'web', 20, 21)], created: 1, updated: 0 });
    // 10 + 20, 11 + 21, 2 dates
    assert.deepEqual(await sum('2025-07-01', '2025-07-31'), [30, 32, 2]);
  });

  test('readonly and platform → 403, no key → 401; nothing stored', async () => {
    const body = { days: [day('2025-08-01')] };
    assertProblem(await post(S.keys.readonly, body), 403, 'forbidden');
    assertProblem(await post(svc.platformKey, body), 403, 'forbidden');
    assertProblem(await c.post(TRAFFIC, body), 401, 'unauthenticated');
    assertProblem(await post(`rb_aaaaaaaa_${'A'.repeat(43)}`, body), 401, 'unauthenticated');
    // the scope is checked before the body
    assertProblem(await post(S.keys.readonly, { days: [] }), 403, 'forbidden');
    assert.deepEqual(await sum('2025-08-01', '2025-08-31'), NONE);
  });

  test('other methods → 405 with Allow: POST', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const r = await c.req(method, TRAFFIC, { key: S.keys.admin, body: method === 'GET' || method === 'DELETE' ? undefined : {} });
      assertProblem(r, 405, 'method_not_allowed');
      assert.equal(r.headers.allow, 'POST', method);
    }
  });
});

describe('shop isolation', () => {
  test("each shop has its own rows: the same (date, channel) in two shops", async () => {
    const X = await mkShop();
    const Y = await mkShop();
    assert.deepEqual(await postOk(X.key, [day('2025-07-01', 'web', 100, 100)]), { days: [day('2025-07-01', 'web', 100, 100)], created: 1, updated: 0 });
    assert.deepEqual(await stored(Y.key, '2025-07-01', '2025-07-31'), NONE, "Y does not see X's row");
    // the same (date, channel) in Y is a new row of Y
    assert.deepEqual(await postOk(Y.key, [day('2025-07-01', 'web', 200, 250)]), { days: [day('2025-07-01', 'web', 200, 250)], created: 1, updated: 0 });
    assert.deepEqual(await stored(X.key, '2025-07-01', '2025-07-31'), [100, 100, 1]);
    assert.deepEqual(await stored(Y.key, '2025-07-01', '2025-07-31'), [200, 250, 1]);
    // updating X leaves Y alone
    assert.deepEqual(await postOk(X.key, [day('2025-07-01', 'web', 101, 102)]), { days: [day('2025-07-01', 'web', 101, 102)], created: 0, updated: 1 });
    assert.deepEqual(await stored(X.key, '2025-07-01', '2025-07-31'), [101, 102, 1]);
    assert.deepEqual(await stored(Y.key, '2025-07-01', '2025-07-31'), [200, 250, 1]);
  });
});

// Shared by the segment, RFM and export tests: histories built relative to
// today in a shop's time zone, and the calls that load them.
//
// Zone X is a fixed-offset zone (Etc/GMT±N) chosen when this module loads so
// that it is 12:xx local time there now: "today" is at least 11 hours away
// from either midnight, so a run never straddles a date change.
import assert from 'node:assert/strict';

/** Etc/GMT±N for a UTC offset in whole hours (the Etc sign is inverted). */
export const etcZone = (off) => (off === 0 ? 'Etc/GMT' : off > 0 ? `Etc/GMT-${off}` : `Etc/GMT+${-off}`);
export const offStr = (off) => `${off < 0 ? '-' : '+'}${String(Math.abs(off)).padStart(2, '0')}:00`;
/** The calendar date (YYYY-MM-DD) of an instant in a time zone. */
export const localDate = (timeZone, ms = Date.now()) => new Intl.DateTimeFormat('en-CA', {
  timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
}).format(new Date(ms));
export const addDays = (date, n) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);

// X: it is 12:xx local time there now (the UTC offsets −11..+12 exist as Etc zones).
export const OFF_X = 12 - new Date().getUTCHours();
export const ZX = etcZone(OFF_X);
export const TODAY = localDate(ZX);

/** n local days before today in zone X (negative: after), at local time hhmm, with X's offset. */
export const localAt = (n, hhmm) => `${addDays(TODAY, -n)}T${hhmm}:00${offStr(OFF_X)}`;

/** The default RFM map (as GET /v1/rfm/map gives it). */
const E = (name, r, f, lapsed = false) => ({ name, r, f, lapsed });
export const DEFAULT_RFM_MAP = [
  E('Champions', [5, 5], [4, 5]),
  E('Loyal', [3, 4], [4, 5]),
  E('Potential loyalists', [4, 5], [2, 3]),
  E('New customers', [5, 5], [1, 1]),
  E('Promising', [4, 4], [1, 1]),
  E('Need attention', [3, 3], [3, 3]),
  E('About to sleep', [3, 3], [1, 2]),
  E('At risk', [1, 2], [3, 4]),
  E("Can't lose them", [1, 2], [5, 5]),
  E('Hibernating', [1, 2], [1, 2]),
  E('Lost', [1, 1], [1, 2], true),
];

/** Customer and order calls through client c, each asserting it succeeded. */
export function historyCalls(c) {
  return {
    /** PUT customers in the given order (that is their listing order); profile per id. */
    async people(key, ids, profiles = {}) {
      for (const id of ids) {
        const body = profiles[id] ?? { name: `Name ${id}` };
        const r = await c.put(`/v1/customers/${encodeURIComponent(id)}`, body, { key });
        assert.equal(r.status, 201, `PUT customer ${id}: ${r.text}`);
      }
    },
    /** Records the orders through POST /v1/orders/bulk, 1000 a request, in order; all must be new. */
    async load(key, orders) {
      for (let i = 0; i < orders.length; i += 1000) {
        const part = orders.slice(i, i + 1000);
        const text = part.map((o) => JSON.stringify(o)).join('\n') + '\n';
        const r = await c.req('POST', '/v1/orders/bulk', {
          key, rawBody: text, headers: { 'content-type': 'application/x-ndjson' }, timeoutMs: 300000,
        });
        assert.equal(r.status, 200, r.text.slice(0, 2000));
        assert.equal(r.body.created, part.length,
          `bulk load: ${JSON.stringify(r.body.results.filter((x) => x.status !== 201).slice(0, 5))}`);
      }
    },
    async cancel(key, id) {
      const r = await c.req('POST', `/v1/orders/${encodeURIComponent(id)}/cancel`, { key });
      assert.equal(r.status, 200, `cancel ${id}: ${r.text}`);
    },
    async refund(key, id, amount) {
      const r = await c.post(`/v1/orders/${encodeURIComponent(id)}/refunds`, { id: `rf-${id}`, amount }, { key });
      assert.ok(r.status === 201 || r.status === 200, `refund ${id}: ${r.status} ${r.text}`);
    },
  };
}

// Calendar-date arithmetic on 'YYYY-MM-DD' strings (no time zones: these are
// already the shop's local dates), and the exact rounding rules of the
// metrics contracts (metrics.md, metrics2.md), done on integers.

const DAY = 86400000;
const ms = (d) => Date.parse(`${d}T00:00:00Z`);
const fmt = (t) => new Date(t).toISOString().slice(0, 10);

export const addDays = (d, n) => fmt(ms(d) + n * DAY);
export const diffDays = (a, b) => Math.round((ms(a) - ms(b)) / DAY); // a - b
export const minDate = (a, b) => (a < b ? a : b);
export const maxDate = (a, b) => (a > b ? a : b);

/** First day of the month containing d, shifted by k months. */
export function monthStart(d, k = 0) {
  const t = new Date(ms(d));
  return fmt(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + k, 1));
}
export const monthEnd = (d) => addDays(monthStart(d, 1), -1);
/** Monday of the ISO week containing d, shifted by k weeks. */
export function weekStart(d, k = 0) {
  const dow = (new Date(ms(d)).getUTCDay() + 6) % 7; // Monday = 0
  return addDays(d, -dow + 7 * k);
}
export const weekEnd = (d) => addDays(weekStart(d), 6);

/** Calendar period (month or week) containing d, shifted by k periods: [start, end]. */
export function period(interval, d, k = 0) {
  if (interval === 'month') { const s = monthStart(d, k); return [s, monthEnd(s)]; }
  if (interval === 'week') { const s = weekStart(d, k); return [s, addDays(s, 6)]; }
  throw new Error(`bad interval ${interval}`);
}

/** [from, to] cut into calendar weeks/months, first and last clipped: [[from, to], ...]. */
export function buckets(interval, from, to) {
  const out = [];
  let k = 0;
  for (;;) {
    const [s, e] = period(interval, from, k++);
    if (s > to) break;
    out.push([maxDate(s, from), minDate(e, to)]);
  }
  return out;
}

/** a / b rounded half up to 4 decimals (a, b >= 0 integers); null when b = 0. */
export function ratio(a, b) {
  a = BigInt(a); b = BigInt(b);
  if (b === 0n) return null;
  if (a < 0n) throw new Error('ratio of a negative numerator');
  const q = (a * 20000n + b) / (2n * b); // floor(a*10^4/b + 1/2)
  return Number(q) / 10000;
}

/** a / b rounded half up to a whole number (minor units); null when b = 0. */
export function money(a, b) {
  a = BigInt(a); b = BigInt(b);
  if (b === 0n) return null;
  if (a < 0n) throw new Error('money of a negative numerator');
  return Number((2n * a + b) / (2n * b));
}

/** Round a float half away from zero to 4 decimals. */
export const round4 = (x) => Math.sign(x) * Math.round(Math.abs(x) * 10000) / 10000;

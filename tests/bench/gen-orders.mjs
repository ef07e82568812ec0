#!/usr/bin/env node
// Deterministic generator of order history for `rebuyd import orders` and
// the benchmarks.  No dependencies (Node 20).
//
//   node tests/bench/gen-orders.mjs --customers N --orders M
//        [--format csv|ndjson] [--seed S] [--out FILE]
//        [--start YYYY-MM-DD] [--days D] [--order-prefix P] [--customer-prefix P]
//
// Data only on stdout (or FILE); a summary on stderr.  The same arguments
// give the same bytes.  Memory is O(customers) (about 40 bytes each), never
// O(orders): orders are produced in time order from a heap holding each
// customer's next order, and written in ~1 MiB chunks.
//
// Shape (see /work/shared/DOMAIN.md):
//   - every one of the N customers buys when M >= 1.5 N (else M / 1.5 of
//     them do); ~65% buy once, the others 2 + geometric orders, adjusted so
//     that exactly M orders come out;
//   - each customer has a main category; the time to the second purchase is
//     log-normal around the category's median (cosmetics 76 days, women's
//     shoes 78, men's shoes 108, women's clothing 47, tea 35, snacks 21);
//     later intervals shrink when needed to fit the customer's orders in the
//     window (heavy buyers buy more often);
//   - channels tmall, douyin, jd, web, store-12 (a home channel per customer,
//     70% of their orders there);
//   - 1-3 lines; roles traffic ~15% / activity ~25% / regular ~60% of lines,
//     first orders more often traffic; prices in CNY fen; line discounts,
//     threshold coupons (order discount) and shipping; totals add up exactly;
//   - placed_at over --days (730) from --start (2024-01-01), +08:00, with a
//     daily rhythm (evening peak); orders sorted by time, so the CSV rows of
//     one order are consecutive.
import fs from "node:fs";

// ---------------------------------------------------------------- arguments
const usage = `usage: node gen-orders.mjs --customers N --orders M [--format csv|ndjson] [--seed S]
                      [--out FILE] [--start YYYY-MM-DD] [--days D]
                      [--order-prefix P] [--customer-prefix P]`;
const opt = { customers: null, orders: null, format: "csv", seed: 1, out: null,
              start: "2024-01-01", days: 730, "order-prefix": "ord-", "customer-prefix": "cust-" };
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    let k = a[i], v;
    if (k === "-h" || k === "--help") { process.stdout.write(usage + "\n"); process.exit(0); }
    if (!k.startsWith("--")) die(`unexpected argument ${k}`);
    k = k.slice(2);
    const eq = k.indexOf("=");
    if (eq >= 0) { v = k.slice(eq + 1); k = k.slice(0, eq); } else v = a[++i];
    if (!(k in opt)) die(`unknown option --${k}`);
    if (v === undefined) die(`--${k} needs a value`);
    opt[k] = v;
  }
}
function die(msg) { process.stderr.write(`gen-orders: ${msg}\n${usage}\n`); process.exit(2); }
function posInt(name, min) {
  const v = opt[name];
  if (v === null) die(`--${name} is required`);
  if (!/^\d+$/.test(String(v)) || Number(v) < min || !Number.isSafeInteger(Number(v)))
    die(`--${name} must be an integer >= ${min}`);
  return Number(v);
}
const NCUST = posInt("customers", 1), NORD = posInt("orders", 1), DAYS = posInt("days", 1);
const SEED = Number(opt.seed) >>> 0;
if (!/^\d+$/.test(String(opt.seed))) die("--seed must be a non-negative integer");
if (opt.format !== "csv" && opt.format !== "ndjson") die("--format must be csv or ndjson");
if (!/^\d{4}-\d{2}-\d{2}$/.test(opt.start) || isNaN(Date.parse(opt.start + "T00:00:00Z")))
  die("--start must be YYYY-MM-DD");
const CSV = opt.format === "csv";
const OPFX = opt["order-prefix"], CPFX = opt["customer-prefix"];
if (!/^[A-Za-z0-9._:@-]{0,100}$/.test(OPFX) || !/^[A-Za-z0-9._:@-]{0,100}$/.test(CPFX))
  die("prefixes must be at most 100 characters of [A-Za-z0-9._:@-]");

// ---------------------------------------------------------------- PRNG
// mulberry32; R is the state of the main stream (catalogue, customers,
// order contents, in emission order, which is itself deterministic).
let R = SEED ^ 0x5bd1e995;
function rnd() {
  R = (R + 0x6d2b79f5) | 0;
  let t = Math.imul(R ^ (R >>> 15), 1 | R);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function fmix32(h) { // murmur3 finaliser: independent per-customer seeds
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16; return h | 0;
}
let spare = NaN;
function gauss() { // Box-Muller on the current stream
  if (spare === spare) { const s = spare; spare = NaN; return s; }
  const u = 1 - rnd(), v = rnd(), r = Math.sqrt(-2 * Math.log(u));
  spare = r * Math.sin(2 * Math.PI * v);
  return r * Math.cos(2 * Math.PI * v);
}
function pick(cdf) { const u = rnd(); let i = 0; while (u >= cdf[i]) i++; return i; }
function cdfOf(w) {
  const s = w.reduce((a, b) => a + b, 0); let c = 0;
  const out = w.map((x) => (c += x / s)); out[out.length - 1] = 1.0000001; return out;
}

// ---------------------------------------------------------------- the shop
// median days to the second purchase; weight = share of customers whose
// main category it is; [lo, hi] regular price range in yuan
const CATS = [
  { name: "cosmetics",       median: 76,  w: 20, lo: 89,  hi: 599, qty: 1,
    zh: ["玻尿酸精华液 30ml", "氨基酸洁面乳", "保湿面霜 50g", "口红 #316", "防晒霜 SPF50"] },
  { name: "womens-shoes",    median: 78,  w: 12, lo: 199, hi: 899, qty: 1,
    zh: ["真皮单鞋", "小白鞋", "乐福鞋", "切尔西靴"] },
  { name: "mens-shoes",      median: 108, w: 8,  lo: 259, hi: 1299, qty: 1,
    zh: ["商务皮鞋", "跑步鞋", "板鞋"] },
  { name: "womens-clothing", median: 47,  w: 22, lo: 99,  hi: 699, qty: 1,
    zh: ["针织开衫", "连衣裙", "阔腿裤", "羽绒服"] },
  { name: "tea",             median: 35,  w: 18, lo: 58,  hi: 688, qty: 2,
    zh: ["西湖龙井 250g", "正山小种 100g", "白茶饼 357g", "铁观音 礼盒"] },
  { name: "snacks",          median: 21,  w: 20, lo: 19,  hi: 129, qty: 3,
    zh: ["每日坚果 30包", "牛肉干 200g", "芒果干", "海苔卷"] },
];
const CAT_CDF = cdfOf(CATS.map((c) => c.w));
const CHANNELS = ["tmall", "douyin", "jd", "web", "store-12"];
const CHAN_CDF = cdfOf([35, 25, 15, 15, 10]);
const ROLES = ["traffic", "activity", "regular"];

// Catalogue: per category and role, SKUs with a name (some none, some with
// a comma and quotes, to exercise CSV quoting), a price, and the line
// fragments preformatted for both output formats.
function csvField(s) { return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
function yuanPrice(y) { y = Math.max(1, Math.round(y)); if (y >= 20) y = y - (y % 10) + 9; return y * 100; }
const CATALOG = CATS.map((cat, ci) => {
  const byRole = [[], [], []];
  const counts = [3, 8, 30];
  let n = 0;
  for (let r = 0; r < 3; r++) {
    for (let k = 0; k < counts[r]; k++, n++) {
      const sku = `${cat.name.slice(0, 3).toUpperCase()}${ci}-${ROLES[r][0].toUpperCase()}${String(k + 1).padStart(3, "0")}`;
      let name;
      const u = rnd();
      if (u < 0.1) name = null;
      else if (u < 0.13) name = `Gift set "${cat.name}", ${k + 2} pcs`;
      else if (u < 0.55) name = cat.zh[n % cat.zh.length] + (k ? ` ${k}` : "");
      else name = `${cat.name} item ${ROLES[r]} ${k + 1}`;
      const regular = cat.lo * Math.exp(rnd() * Math.log(cat.hi / cat.lo));
      const price = r === 0 ? [990, 1990, 2990][k % 3]        // at or below cost
                  : r === 1 ? yuanPrice(regular * (0.5 + 0.2 * rnd()))
                  : yuanPrice(regular);
      byRole[r].push({
        price,
        csv: `${sku},${name === null ? "" : csvField(name)},${cat.name},${ROLES[r]}`,
        json: `{"sku":"${sku}",${name === null ? "" : `"name":${JSON.stringify(name)},`}"category":"${cat.name}","role":"${ROLES[r]}"`,
      });
    }
  }
  return byRole;
});

// ---------------------------------------------------------------- customers
const W = DAYS;
const buyers = NORD >= 1.5 * NCUST ? NCUST : Math.max(1, Math.min(NCUST, Math.floor(NORD / 1.5)));
const P_ONCE = 0.65;
const count = new Int32Array(buyers);   // orders the customer will place
const left = new Int32Array(buyers);    // orders still to place
const mainCat = new Uint8Array(buyers);
const homeChan = new Uint8Array(buyers);
const scale = new Float64Array(buyers); // factor on the intervals after the second order
const next = new Float64Array(buyers);  // days since start of the next order
const irng = new Int32Array(buyers);    // seed of the customer's interval stream

{
  const meanRepeat = Math.max(2, (NORD / buyers - P_ONCE) / (1 - P_ONCE));
  const p = 1 / (1 + (meanRepeat - 2)), lq = Math.log(1 - p);
  let sum = 0, repeaters = 0;
  for (let i = 0; i < buyers; i++) {
    mainCat[i] = pick(CAT_CDF);
    homeChan[i] = pick(CHAN_CDF);
    let k = 1;
    if (rnd() >= P_ONCE)
      k = 2 + (p >= 1 ? 0 : Math.floor(Math.log(1 - rnd()) / lq));
    count[i] = k; sum += k; if (k > 1) repeaters++;
  }
  // exact total: nudge random repeat customers up or down
  let diff = NORD - sum;
  if (diff > 0 && repeaters === 0) { count[0]++; diff--; repeaters = 1; }
  while (diff > 0) {
    const i = Math.floor(rnd() * buyers);
    if (count[i] > 1 || repeaters === 0) { count[i]++; diff--; }
  }
  let guard = 0;
  while (diff < 0) {
    const i = Math.floor(rnd() * buyers);
    if (count[i] > 2 || (guard > 50 * buyers && count[i] > 1)) { count[i]--; diff++; }
    guard++;
  }
}

// Interval stream of one customer: the same draws at planning time and at
// emission time, so only its seed is kept.
let IR = 0;
function irnd() {
  IR = (IR + 0x6d2b79f5) | 0;
  let t = Math.imul(IR ^ (IR >>> 15), 1 | IR);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function lognormal(median, sigma) { // Box-Muller, one value per call (no spare)
  const u = 1 - irnd(), v = irnd();
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}
const firstInterval = (i) => Math.min(lognormal(CATS[mainCat[i]].median, 0.8), 0.5 * W);
const laterInterval = (i) => lognormal(CATS[mainCat[i]].median * 0.8, 0.9);

for (let i = 0; i < buyers; i++) {
  const k = count[i];
  left[i] = k;
  scale[i] = 1;
  irng[i] = fmix32(SEED * 0x9e3779b1 + i + 1);
  if (k === 1) { next[i] = rnd() * W; continue; }
  IR = irng[i];
  const d1 = firstInterval(i);
  let rest = 0;
  for (let j = 2; j < k; j++) rest += laterInterval(i);
  const room = 0.97 * (W - d1);
  if (rest > room) scale[i] = room / rest;
  const span = d1 + rest * scale[i];
  next[i] = rnd() * Math.max(0, W - span);
}

// binary min-heap of customers by next order time (ties: lower index)
const heap = new Int32Array(buyers);
let hn = buyers;
for (let i = 0; i < buyers; i++) heap[i] = i;
const less = (a, b) => next[a] < next[b] || (next[a] === next[b] && a < b);
function siftDown(pos) {
  const c = heap[pos];
  for (;;) {
    let l = 2 * pos + 1;
    if (l >= hn) break;
    if (l + 1 < hn && less(heap[l + 1], heap[l])) l++;
    if (!less(heap[l], c)) break;
    heap[pos] = heap[l]; pos = l;
  }
  heap[pos] = c;
}
for (let i = (hn >> 1) - 1; i >= 0; i--) siftDown(i);

// ---------------------------------------------------------------- time
const DAY_STR = [];
{
  const base = Date.parse(opt.start + "T00:00:00Z");
  for (let d = 0; d < W; d++) DAY_STR.push(new Date(base + d * 86400000).toISOString().slice(0, 10));
}
// orders per hour of the day, Asia/Shanghai: quiet nights, lunch, evening peak
const HOUR_W = [3, 1.5, 1, 0.6, 0.4, 0.4, 0.8, 1.5, 3, 4.5, 5.5, 5.5, 6, 5.5, 5, 5, 5, 5.5, 6, 7, 8.5, 9.5, 9, 6];
const HOUR_CDF = [0];
for (const c of cdfOf(HOUR_W)) HOUR_CDF.push(Math.min(c, 1));
const pad2 = (n) => (n < 10 ? "0" + n : "" + n);
// monotone in t, so the order of the heap is the order of the timestamps
function stamp(t) {
  let d = Math.floor(t);
  if (d >= W) d = W - 1;
  if (d < 0) d = 0;
  const u = Math.min(Math.max(t - d, 0), 0.9999999);
  let h = 0;
  while (u >= HOUR_CDF[h + 1]) h++;
  const sec = Math.min(3599, Math.floor(((u - HOUR_CDF[h]) / (HOUR_CDF[h + 1] - HOUR_CDF[h])) * 3600));
  return `${DAY_STR[d]}T${pad2(h)}:${pad2(Math.floor(sec / 60))}:${pad2(sec % 60)}+08:00`;
}

// ---------------------------------------------------------------- output
const out = opt.out ? fs.createWriteStream(opt.out) : process.stdout;
let buf = CSV
  ? "order_id,customer_id,placed_at,channel,currency,sku,name,category,role,quantity,unit_price,line_discount,shipping,order_discount,total\n"
  : "";
let bytes = 0;
// one encoding pass per ~1 MiB chunk; waits when the reader is slower
function emit(chunk) {
  const b = Buffer.from(chunk, "utf8");
  bytes += b.length;
  return out.write(b) ? null : new Promise((res) => out.once("drain", res));
}
out.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  process.stderr.write(`gen-orders: ${e.message}\n`); process.exit(1);
});

// share of traffic lines on repeat orders such that ~15% of all lines are traffic
const firstShare = buyers / NORD;
const TRAFFIC_FIRST = 0.3;
const trafficLater = Math.min(0.15, Math.max(0.03, (0.15 - firstShare * TRAFFIC_FIRST) / Math.max(1e-9, 1 - firstShare)));
const ROLE_FIRST = cdfOf([TRAFFIC_FIRST, 0.25, 0.6 - TRAFFIC_FIRST + 0.15]);
const ROLE_LATER = cdfOf([trafficLater, 0.25, 0.75 - trafficLater]);
const LINES_CDF = cdfOf([60, 28, 12]);

const stats = { orders: 0, rows: 0, repeatCustomers: 0, chan: [0, 0, 0, 0, 0], role: [0, 0, 0],
                cat: new Array(CATS.length).fill(0), revenue: 0, discounted: 0, shipped: 0 };
for (let i = 0; i < buyers; i++) if (count[i] > 1) stats.repeatCustomers++;

const t0 = Date.now();
await generate(); // in a function: V8 optimises locals better than module scope
async function generate() {
const lp = [], lq = [], ld = [];
let seq = 0;
while (hn > 0) {
  const c = heap[0];
  const t = next[c];
  const first = left[c] === count[c];
  // ---- contents (main stream)
  const chan = rnd() < 0.7 ? homeChan[c] : pick(CHAN_CDF);
  const nl = pick(LINES_CDF);
  const roleCdf = first ? ROLE_FIRST : ROLE_LATER;
  let sub = 0, lines = 0;
  for (let j = 0; j <= nl; j++) {
    const ci = j === 0 || rnd() < 0.7 ? mainCat[c] : pick(CAT_CDF); // first line: main category
    const r = pick(roleCdf);
    const list = CATALOG[ci][r];
    let p = list[Math.floor(list.length * rnd() * rnd())]; // popular SKUs first
    for (let k = 0; k < j && p; k++) if (lp[k] === p) p = null; // no repeated SKU in an order
    if (!p) break;
    const uq = rnd();
    const q = uq < 0.8 ? 1 : uq < 0.94 ? 2 : uq < 0.98 ? 3 : 3 + CATS[ci].qty;
    const amount = q * p.price;
    let d = 0;
    const ud = rnd();
    if ((r === 1 && ud < 0.5) || ud < 0.08)
      d = Math.min(amount, Math.round((amount * (0.05 + 0.25 * rnd())) / 100) * 100);
    lp[j] = p; lq[j] = q; ld[j] = d; lines++;
    sub += amount - d;
    stats.role[r]++; stats.cat[ci]++;
    if (d) stats.discounted++;
  }
  let shipping = 0;
  if (chan !== 4) {
    const us = rnd();
    if (sub < 9900 ? us < 0.7 : us < 0.03) shipping = [600, 800, 1000][Math.floor(rnd() * 3)];
  }
  let coupon = 0;
  const uc = rnd();
  if (sub >= 29900 ? uc < 0.3 : sub >= 19900 ? uc < 0.25 : sub >= 9900 ? uc < 0.2 : uc < 0.05)
    coupon = sub >= 29900 ? (rnd() < 0.5 ? 3000 : 5000) : sub >= 19900 ? 2000 : sub >= 9900 ? 1000 : 300;
  coupon = Math.min(coupon, sub + shipping);
  const total = sub + shipping - coupon;
  if (shipping) stats.shipped++;

  // ---- text
  seq++;
  const oid = OPFX + seq, cid = CPFX + (c + 1), ts = stamp(t), ch = CHANNELS[chan];
  if (CSV) {
    const head = `${oid},${cid},${ts},${ch},CNY,`;
    const tail = `,${shipping},${coupon},${total}\n`;
    for (let j = 0; j < lines; j++)
      buf += head + lp[j].csv + "," + lq[j] + "," + lp[j].price + "," + (ld[j] ? ld[j] : "") + tail;
  } else {
    let l = "";
    for (let j = 0; j < lines; j++)
      l += (j ? "," : "") + lp[j].json + `,"quantity":${lq[j]},"unit_price":${lp[j].price},"discount":${ld[j]}}`;
    buf += `{"id":"${oid}","customer_id":"${cid}","placed_at":"${ts}","channel":"${ch}","currency":"CNY","lines":[${l}],"shipping":${shipping},"discount":${coupon},"total":${total}}\n`;
  }
  stats.orders++; stats.rows += lines; stats.chan[chan]++; stats.revenue += total;
  if (buf.length >= 1 << 20) {
    const wait = emit(buf);
    buf = "";
    if (wait) await wait;
  }

  // ---- this customer's next order
  if (--left[c] > 0) {
    IR = irng[c];
    const placed = count[c] - left[c]; // orders placed so far (>= 1)
    next[c] = t + (placed === 1 ? firstInterval(c) : laterInterval(c) * scale[c]);
    irng[c] = IR;
    siftDown(0);
  } else {
    heap[0] = heap[--hn];
    if (hn > 0) siftDown(0);
  }
}
if (buf.length) await emit(buf);
buf = "";
}
await new Promise((res) => (opt.out ? out.end(res) : res()));

const pct = (n, d) => (d ? ((100 * n) / d).toFixed(1) : "0.0") + "%";
const secs = (Date.now() - t0) / 1000;
process.stderr.write(
  `gen-orders: ${stats.orders} orders, ${stats.rows} lines, ${buyers} customers ` +
  `(${stats.repeatCustomers} repeat, ${pct(stats.repeatCustomers, buyers)}), ${(bytes / 1048576).toFixed(1)} MiB ${opt.format}, ` +
  `${secs.toFixed(1)} s\n` +
  `  channels: ${CHANNELS.map((n, i) => `${n} ${pct(stats.chan[i], stats.orders)}`).join(", ")}\n` +
  `  roles: ${ROLES.map((n, i) => `${n} ${pct(stats.role[i], stats.rows)}`).join(", ")}\n` +
  `  categories: ${CATS.map((c, i) => `${c.name} ${pct(stats.cat[i], stats.rows)}`).join(", ")}\n` +
  `  discounted lines ${pct(stats.discounted, stats.rows)}, orders with shipping ${pct(stats.shipped, stats.orders)}, ` +
  `revenue ${(stats.revenue / 100).toFixed(2)} CNY\n`);

// node-postgres settings from a libpq keyword/value conninfo or a postgres:// URL
// (the benchmarks take either, as rebuyd does).
export function pgConfig(s) {
  if (/^postgres(ql)?:\/\//.test(s)) return { connectionString: s };
  const names = { host: 'host', hostaddr: 'host', port: 'port', user: 'user', dbname: 'database', password: 'password' };
  const cfg = {};
  for (const m of s.matchAll(/(\w+)\s*=\s*('((?:[^'\\]|\\.)*)'|\S+)/g)) {
    const v = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    if (names[m[1]]) cfg[names[m[1]]] = m[1] === 'port' ? Number(v) : v;
  }
  return cfg;
}

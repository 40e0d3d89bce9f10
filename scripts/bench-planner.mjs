// The planner alone on a synthetic release of 1,000 components with random
// dependencies (each on up to three earlier components, so acyclic), from an
// appliance at the previous release. Prints one line for the bench report.
const { plan } = await import('../dist/installer/plan.js');

const runs = Number(process.argv[2] ?? 3);
let seed = 42;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const count = 1000;
const names = Array.from({ length: count }, (_, i) => `c${String(i).padStart(4, '0')}`);
const empty = { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] };
const components = {};
const previous = {};
const installed = {};
for (const [i, name] of names.entries()) {
  const requires = {};
  for (let d = 0; d < 3 && i > 0; d++) requires[names[Math.floor(random() * i)]] = '>=1.0.0';
  const changed = random() < 0.3;
  const version = changed ? '1.1.0' : '1.0.0';
  components[name] = {
    version,
    requires,
    artifacts: empty,
    payload: changed ? { type: 'included', size: 1024, files: [] } : { type: 'unchanged' },
  };
  previous[name] = '1.0.0';
  installed[name] = { version: '1.0.0', requires };
}
const meta = {
  formatVersion: 1,
  kind: 'update',
  product: 'synthetic',
  release: { version: '2.0.0', createdAt: '2026-01-01T00:00:00Z', notes: '' },
  platform: { name: 'os', range: '*' },
  target: Object.fromEntries(names.map((n) => [n, components[n].version])),
  supportedFrom: [{ version: '1.0.0', components: previous }],
  changes: [],
  components,
  removed: {},
  verification: [],
};
const facts = {
  product: 'synthetic',
  platform: { name: 'os', version: '1.0.0' },
  release: '1.0.0',
  verified: true,
  highestRelease: '1.0.0',
  components: installed,
};
const controls = { force: [], skip: [names[10]], delete: [], allowDowngrade: false, partial: true };
const times = [];
let result;
for (let i = 0; i < Math.max(runs, 3); i++) {
  const start = process.hrtime.bigint();
  result = plan(facts, meta, controls);
  times.push(Number(process.hrtime.bigint() - start) / 1e9);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const acting = result.order.length;
console.log(
  `Planner alone, ${count} components with random dependencies (${acting} acting, one skipped): median ${(median * 1000).toFixed(0)} ms over ${times.length} runs; target under 1 s.`,
);

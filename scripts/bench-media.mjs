// Install of one bundle from its single file and from its parts on volumes
// (`ferry media`), in alternating rounds on the same machine, with peak RSS.
// Standalone so it can run alone: node scripts/bench-media.mjs [RUNS] [GIB] [DIR]
// (after `npm run build`); scripts/bench.mjs runs it as one section.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 3);
const gib = Number(process.argv[3] ?? 1);
const work = join(process.argv[4] ?? join(tmpdir(), 'ferry-bench'), 'media');
const MiB = 1024 * 1024;

function ferry(...args) {
  const result = spawnSync(process.execPath, [join(root, 'bin/ferry'), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  if (result.status !== 0)
    throw new Error(`ferry ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

/** One install in-process (bench-run.mjs), timed, with its peak RSS in MiB. */
function install(bundle, appliance) {
  // Untimed: an fsync on ext4 would otherwise write back what the step before left dirty.
  spawnSync('sync');
  const start = process.hrtime.bigint();
  const result = spawnSync(
    process.execPath,
    [
      join(root, 'scripts/bench-run.mjs'),
      'install',
      bundle,
      '--root',
      appliance,
      '--yes',
      '--json',
    ],
    { encoding: 'utf8', maxBuffer: 64 * MiB },
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`install from ${bundle} failed: ${result.stderr}`);
  return { seconds, rss: Number(/maxrss (\d+)/.exec(result.stderr)?.[1] ?? 0) / 1024 };
}

rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'payload'), { recursive: true });
const buffer = Buffer.alloc(4 * MiB);
for (let i = 0; i < 8; i++) {
  const fd = openSync(join(work, 'payload', `part-${i}.bin`), 'w');
  for (let written = 0; written < (gib * 1024 * MiB) / 8; written += buffer.length)
    writeSync(fd, randomFillSync(buffer));
  closeSync(fd);
}
writeFileSync(
  join(work, 'release.yaml'),
  `product: bench\nrelease: "1.0.0"\nplatform: { name: os, range: "*" }\ncomponents:\n  big: { version: "1.0.0", payload: ./payload }\n`,
);
ferry('keygen', '--out', join(work, 'keys'), '--name', 'bench');
const key = join(work, 'keys', 'bench.key');
const trust = join(work, 'trust.json');
ferry('trust', 'init', '--key', join(work, 'keys', 'bench.pub'), '--out', trust);
const bundle = JSON.parse(
  ferry('build', join(work, 'release.yaml'), '--out', join(work, 'out'), '--key', key, '--json'),
).bundle;
// Volumes of 300 MiB: a 1 GiB bundle on four, as on four small sticks.
const media = JSON.parse(
  ferry(
    'media',
    bundle,
    '--out',
    join(work, 'volumes'),
    '--key',
    key,
    '--volume-size',
    '300M',
    '--no-installer',
    '--json',
  ),
);
const appliance = join(work, 'appliance');
const fresh = () => {
  rmSync(appliance, { recursive: true, force: true });
  ferry(
    'init',
    '--root',
    appliance,
    '--product',
    'bench',
    '--platform',
    'os@1.0.0',
    '--trust',
    trust,
  );
};
const single = [];
const parts = [];
for (let i = 0; i < runs; i++) {
  fresh();
  single.push(install(bundle, appliance));
  fresh();
  parts.push(install(join(work, 'volumes'), appliance));
}
const median = (rows, key) =>
  rows.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
const ratios = single.map((s, i) => parts[i].seconds / s.seconds).sort((a, b) => a - b);
console.log(
  `## Install from removable media: ${gib} GiB bundle, ${media.volumes.length} volumes of 300 MiB`,
);
console.log();
console.log('| install | median (s) | peak RSS |');
console.log('|---|---:|---:|');
console.log(
  `| from the single bundle file | ${median(single, 'seconds').toFixed(2)} | ${median(single, 'rss').toFixed(0)} MiB |`,
);
console.log(
  `| from its parts on ${media.volumes.length} volume folders | ${median(parts, 'seconds').toFixed(2)} | ${median(parts, 'rss').toFixed(0)} MiB |`,
);
console.log();
console.log(
  `Target: within 1.1× the single file and the same memory: ${ratios[Math.floor(ratios.length / 2)].toFixed(2)}× (median of per-round ratios).`,
);
rmSync(work, { recursive: true, force: true });

// `npm run bench`: Ferry's speed and memory beside the floor of the same work
// done by standard tools, in one run, on the same files. Medians of several
// runs (FERRY_BENCH_RUNS, default 3); the machine is small and noisy, so
// compare the ratios, not the seconds. Writes bench-report/report.md.
//
//   FERRY_BENCH_GIB=1      payload size for the build section
//   FERRY_BENCH_DIR=...    where the payload and bundles go (default: the OS temp folder)
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.env.FERRY_BENCH_RUNS ?? 3);
const gib = Number(process.env.FERRY_BENCH_GIB ?? 1);
const work = process.env.FERRY_BENCH_DIR ?? join(tmpdir(), 'ferry-bench');
const MiB = 1024 * 1024;
const report = [];

function log(line = '') {
  console.log(line);
  report.push(line);
}

/**
 * Flushes every dirty page on the machine, untimed, before a timed run: on
 * ext4 an fsync commits the journal and so writes back other files' dirty
 * data too, and a case that fsyncs would pay for what the case before it
 * left in the page cache (a 1 GiB pull after a 1 GiB upload took 0.7 s longer).
 */
function settle() {
  spawnSync('sync');
}

/** Runs a command `runs` times (or `options.runs`); returns the median wall time in seconds and the last result. */
function timed(label, command, args, options = {}) {
  const times = [];
  let last;
  for (let i = 0; i < (options.runs ?? runs); i++) {
    options.before?.();
    settle();
    const start = process.hrtime.bigint();
    last = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * MiB, ...options });
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
    if (last.status !== 0) throw new Error(`${label} failed (${last.status}): ${last.stderr}`);
  }
  times.sort((a, b) => a - b);
  return { label, seconds: times[Math.floor(times.length / 2)], result: last };
}

/** ferry in-process, reporting its peak RSS (the worker threads included). */
function ferry(label, args, options = {}) {
  return measured(label, 'bench-run.mjs', args, options);
}

/** A script of ours that prints `maxrss N` (KiB) on stderr, with its peak RSS. */
function measured(label, script, args, options = {}) {
  const run = timed(label, process.execPath, [join(root, 'scripts', script), ...args], options);
  const rss = Number(/maxrss (\d+)/.exec(run.result.stderr)?.[1] ?? 0) / 1024;
  return { ...run, rssMiB: rss };
}

/** Runs ferry for the bench's own setup; a failing step stops the bench instead of skewing it. */
function cli(...args) {
  const result = spawnSync(process.execPath, [join(root, 'bin/ferry'), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  if (result.status !== 0)
    throw new Error(`ferry ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

function shell(label, script, options) {
  return timed(label, 'bash', ['-c', script], options);
}

function table(rows) {
  log('| measurement | median (s) | × floor | peak RSS |');
  log('|---|---:|---:|---:|');
  const floor = rows[0].seconds;
  for (const row of rows) {
    log(
      `| ${row.label} | ${row.seconds.toFixed(2)} | ${(row.seconds / floor).toFixed(2)} | ${row.rssMiB ? `${row.rssMiB.toFixed(0)} MiB` : ''} |`,
    );
  }
}

function makePayload(folder, bytes, files) {
  const each = Math.floor(bytes / files);
  mkdirSync(folder, { recursive: true });
  const buffer = Buffer.alloc(4 * MiB);
  for (let i = 0; i < files; i++) {
    const file = join(folder, `part-${String(i).padStart(2, '0')}.bin`);
    if (existsSync(file) && statSync(file).size === each) continue;
    const fd = openSync(file, 'w');
    for (let written = 0; written < each; written += buffer.length) {
      randomFillSync(buffer);
      writeSync(fd, buffer, 0, Math.min(buffer.length, each - written));
    }
    closeSync(fd);
  }
}

function spec(folder, name) {
  const file = join(folder, `${name}.yaml`);
  writeFileSync(
    file,
    `product: bench\nrelease: "1.0.0"\nplatform: { name: os, range: "*" }\ncomponents:\n  big: { version: "1.0.0", payload: ./payload }\n`,
  );
  return file;
}

mkdirSync(work, { recursive: true });
const keys = join(work, 'keys');
if (!existsSync(join(keys, 'bench.key'))) cli('keygen', '--out', keys, '--name', 'bench');
const key = join(keys, 'bench.key');

log(`# Ferry benchmark`);
log();
log(
  `${new Date().toISOString()} · Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · medians of ${runs} runs`,
);

// ---------------------------------------------------------------- build
const build = join(work, 'build');
const payload = join(build, 'payload');
makePayload(payload, gib * 1024 * MiB, 8);
const buildSpec = spec(build, 'release');
const files = Array.from({ length: 8 }, (_, i) =>
  join(payload, `part-${String(i).padStart(2, '0')}.bin`),
);
const out = join(build, 'out');
const clean = () => rmSync(out, { recursive: true, force: true });

log();
log(`## Build: ${gib} GiB payload in 8 files`);
log();
const floor = shell(
  'floor: `openssl dgst -sha256` over the payload',
  `openssl dgst -sha256 ${files.join(' ')} > /dev/null`,
);
const tarHash = shell(
  'reference: `tar -cf - payload \\| sha256sum`',
  `tar -cf - -C ${build} payload | sha256sum > /dev/null`,
);
const gnu = join(build, 'gnu.tar');
const half = (odd) => files.filter((_, i) => i % 2 === (odd ? 1 : 0)).join(' ');
const tarWrite = shell(
  'reference: GNU tar writing the archive, then `openssl dgst`',
  `tar -cf ${gnu} -C ${build} payload && openssl dgst -sha256 ${gnu} > /dev/null; rm -f ${gnu}`,
);
// What the bundle format itself demands, done by standard tools as parallel as
// they go: bundle.json (first in the file) holds every payload hash, so the
// payload is hashed (both cores) while the archive is written, and only then
// can the one sequential sha256 of the whole bundle (build --json's) run.
const formatFloor = shell(
  'reference: the work the format requires: payload hashed on both cores while GNU tar writes the archive, then `openssl dgst` of the archive',
  `(openssl dgst -sha256 ${half(false)} > /dev/null & openssl dgst -sha256 ${half(true)} > /dev/null & tar -cf ${gnu} -C ${build} payload & wait) && openssl dgst -sha256 ${gnu} > /dev/null; rm -f ${gnu}`,
);
const buildTar = ferry(
  '`ferry build --format tar`',
  ['build', buildSpec, '--out', out, '--key', key, '--json'],
  { before: clean },
);
const buildZip = ferry(
  '`ferry build --format zip`',
  ['build', buildSpec, '--out', out, '--key', key, '--format', 'zip', '--json'],
  { before: clean },
);
table([floor, tarHash, tarWrite, formatFloor, buildTar, buildZip]);
log();
log(
  `Target: build within 1.3× the floor and under 200 MiB. tar: ${(buildTar.seconds / floor.seconds).toFixed(2)}× the floor, ${(buildTar.seconds / tarWrite.seconds).toFixed(2)}× GNU tar's write-and-hash, ${(buildTar.seconds / formatFloor.seconds).toFixed(2)}× the work the format requires (which is itself ${(formatFloor.seconds / floor.seconds).toFixed(2)}× the floor); peak ${buildTar.rssMiB.toFixed(0)} MiB.`,
);

// ---------------------------------------------------------------- inspect
const bundle = JSON.parse(
  ferry('build for inspect', ['build', buildSpec, '--out', out, '--key', key, '--json'], {
    before: clean,
  }).result.stdout,
).bundle;
const size = statSync(bundle).size;
log();
log(`## Inspect: metadata of a ${(size / 1024 ** 3).toFixed(2)} GiB bundle`);
log();
const cat = shell('floor: `cat bundle > /dev/null`', `cat ${bundle} > /dev/null`);
const inspect = ferry('`ferry inspect --json`', ['inspect', bundle, '--json']);
const bytesRead = JSON.parse(inspect.result.stdout).bytesRead;
table([cat, inspect]);
log();
log(
  `ferry inspect read ${bytesRead} bytes (${(bytesRead / 1024).toFixed(1)} KiB) of ${size}; target: under 1 MiB whatever the size.`,
);

// ---------------------------------------------------------------- verify
log();
log(`## Verify: every byte of the same bundle against its signed hashes`);
log();
const verifyTrust = join(build, 'trust.json');
cli('trust', 'init', '--key', join(keys, 'bench.pub'), '--out', verifyTrust);
const bundleHash = shell(
  'floor: `openssl dgst -sha256` of the bundle',
  `openssl dgst -sha256 ${bundle} > /dev/null`,
);
const verify = ferry('`ferry verify` (headers, signature, every entry hashed)', [
  'verify',
  bundle,
  '--trust',
  verifyTrust,
]);
table([bundleHash, verify]);

// ---------------------------------------------------------------- plan
log();
log('## Plan: metadata only, whatever the bundle size');
log();
const planDir = join(work, 'plan');
const smallDir = join(planDir, 'small');
const hugeDir = join(planDir, 'huge');
makePayload(join(smallDir, 'payload'), MiB, 1);
// 4.25 GiB of sparse files (fast to make, real to hash and write), then one
// small file whose zip entry starts past 4 GiB: zip64 offsets get exercised.
mkdirSync(join(hugeDir, 'payload'), { recursive: true });
for (let i = 0; i < 5; i++) {
  const file = join(hugeDir, 'payload', `part-${i}.bin`);
  if (!existsSync(file)) spawnSync('truncate', ['-s', String(870 * MiB), file]);
}
makePayload(join(hugeDir, 'payload', 'tail'), MiB, 1);
const planRows = [];
const planRuns = Math.max(runs, 11);
const appliance = join(planDir, 'appliance');
rmSync(appliance, { recursive: true, force: true });
cli('trust', 'init', '--key', join(keys, 'bench.pub'), '--out', join(planDir, 'trust.json'));
cli(
  'init',
  '--root',
  appliance,
  '--product',
  'bench',
  '--platform',
  'os@1.0.0',
  '--trust',
  join(planDir, 'trust.json'),
);
const planBytes = {};
for (const [name, folder] of [
  ['1 MiB', smallDir],
  ['4 GiB', hugeDir],
]) {
  for (const format of ['tar', 'zip']) {
    const built = cli(
      'build',
      spec(folder, 'release'),
      '--out',
      join(folder, 'out'),
      '--key',
      key,
      '--format',
      format,
      '--json',
    );
    const { bundle: file, size: bytes } = JSON.parse(built);
    const row = ferry(
      `\`ferry plan\` ${format}, ${name} bundle (${(bytes / 1024 ** 2).toFixed(1)} MiB)`,
      ['plan', file, '--root', appliance, '--json'],
      // A plan takes a third of a second, where one stray tenth moves the ratio
      // by 30 %: short commands get more runs.
      { runs: planRuns },
    );
    planRows.push(row);
    const read = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { planFor } = await import(${JSON.stringify(join(root, 'dist/installer/planning.js'))}); const p = await planFor({ bundle: ${JSON.stringify(file)}, root: ${JSON.stringify(appliance)} }, {}); await p.opened.reader.close(); console.log(p.opened.reader.bytesRead());`,
      ],
      { encoding: 'utf8' },
    );
    if (read.status !== 0) throw new Error(`counting the bytes plan reads failed: ${read.stderr}`);
    planBytes[`${format} ${name}`] = Number(read.stdout.trim());
  }
}
log('| measurement | median (s) | × 1 MiB bundle (same format) | peak RSS |');
log('|---|---:|---:|---:|');
for (const [index, row] of planRows.entries()) {
  const baseline = planRows[index % 2].seconds;
  log(
    `| ${row.label} | ${row.seconds.toFixed(2)} | ${(row.seconds / baseline).toFixed(2)} | ${row.rssMiB.toFixed(0)} MiB |`,
  );
}
log();
log(
  `Bytes of the bundle read to plan: ${Object.entries(planBytes)
    .map(([k, v]) => `${k}: ${(v / 1024).toFixed(1)} KiB`)
    .join(
      '; ',
    )}. Targets: under 1 MiB, and the 4 GiB plan within 1.2× the 1 MiB one (medians of ${planRuns} runs).`,
);
for (const folder of [smallDir, hugeDir])
  rmSync(join(folder, 'out'), { recursive: true, force: true });

// ---------------------------------------------------------------- single executable
log();
log('## The single executable: `dist/package/ferry-installer` beside `bin/ferry`');
log();
const packaged = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs')], {
  encoding: 'utf8',
});
if (packaged.status !== 0) throw new Error(`scripts/package.mjs failed: ${packaged.stderr}`);
const executable = join(root, 'dist', 'package', 'ferry-installer');
// The same few variables for both: the executable refuses NODE_OPTIONS and the like.
const plainEnv = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() } };
log('| command | `bin/ferry` median (s) | `ferry-installer` median (s) | ratio |');
log('|---|---:|---:|---:|');
const seaRatios = [];
// A start is tens of milliseconds, where one stray scheduling delay moves a
// ratio by a third: medians of at least 21 runs.
const seaRuns = Math.max(runs, 21);
for (const [name, args] of [
  ['`--version`', ['--version']],
  ['`--help`', ['--help']],
  ['`status --json`', ['status', '--root', appliance, '--json']],
  [
    `\`plan --json\` of the ${(size / 1024 ** 3).toFixed(2)} GiB bundle`,
    ['plan', bundle, '--root', appliance, '--json'],
  ],
]) {
  const options = { ...plainEnv, runs: seaRuns };
  const mine = timed(name, process.execPath, [join(root, 'bin', 'ferry'), ...args], options);
  const theirs = timed(name, executable, args, options);
  seaRatios.push(theirs.seconds / mine.seconds);
  log(
    `| ${name} | ${mine.seconds.toFixed(3)} | ${theirs.seconds.toFixed(3)} | ${(theirs.seconds / mine.seconds).toFixed(2)} |`,
  );
}
log();
log(
  `Target: within 1.2× bin/ferry (medians of ${seaRuns} runs): --version ${seaRatios[0].toFixed(2)}× (answered before Ferry loads), --help ${seaRatios[1].toFixed(2)}× (every command's module loaded: both run Ferry as CommonJS from V8's code cache), status ${seaRatios[2].toFixed(2)}×, plan ${seaRatios[3].toFixed(2)}×. The executable is ${(statSync(executable).size / MiB).toFixed(0)} MiB.`,
);

// ---------------------------------------------------------------- install
log();
log(`## Install: ${gib} GiB payload`);
log();
const installDir = join(work, 'install');
rmSync(installDir, { recursive: true, force: true });
mkdirSync(installDir, { recursive: true });
const installBundle = JSON.parse(
  cli('build', buildSpec, '--out', join(installDir, 'bundle'), '--key', key, '--json'),
).bundle;
cli('trust', 'init', '--key', join(keys, 'bench.pub'), '--out', join(installDir, 'trust.json'));
const target = join(installDir, 'appliance');
const freshAppliance = () => {
  rmSync(target, { recursive: true, force: true });
  cli(
    'init',
    '--root',
    target,
    '--product',
    'bench',
    '--platform',
    'os@1.0.0',
    '--trust',
    join(installDir, 'trust.json'),
  );
};
const extracted = join(installDir, 'gnu');
const installFloor = shell(
  'floor: GNU tar extracts the bundle, then `openssl dgst` over the files',
  `rm -rf ${extracted} && mkdir -p ${extracted} && tar -xf ${installBundle} -C ${extracted} && openssl dgst -sha256 ${extracted}/payload/big/* > /dev/null`,
);
// A commit must not come before its bytes are on disk (a power cut would leave
// empty files under a new state.json): ferry fsyncs them, so the fair floor flushes too.
const durableFloor = shell(
  'floor, durable: the same, then `sync -f` flushes the files to disk',
  `rm -rf ${extracted} && mkdir -p ${extracted} && tar -xf ${installBundle} -C ${extracted} && openssl dgst -sha256 ${extracted}/payload/big/* > /dev/null && sync -f ${extracted}/payload/big/*`,
);
rmSync(extracted, { recursive: true, force: true });
const installRun = ferry(
  '`ferry install` (verify, stage, place, test, commit)',
  ['install', installBundle, '--root', target, '--yes', '--json'],
  { before: freshAppliance },
);
table([installFloor, durableFloor, installRun]);
log();
log(
  `Durability: flushing the payload costs ${(durableFloor.seconds - installFloor.seconds).toFixed(2)} s on the floor; ferry pays the same before its commit record.`,
);
log(
  `Target: within 1.5× the floor and under 200 MiB: ${(installRun.seconds / installFloor.seconds).toFixed(2)}×, peak ${installRun.rssMiB.toFixed(0)} MiB.`,
);
// The same release as a tar.gz: inflated once, its artifacts staged and run on
// the way to the payload (the bytes read say so: the bundle once, plus the few
// KiB of reading bundle.json first).
const gzBundle = JSON.parse(
  cli(
    'build',
    buildSpec,
    '--out',
    join(installDir, 'gz'),
    '--key',
    key,
    '--format',
    'tar.gz',
    '--json',
  ),
).bundle;
const gzFloor = shell(
  'floor: GNU tar extracts the tar.gz bundle, then `openssl dgst` over the files',
  `rm -rf ${extracted} && mkdir -p ${extracted} && tar -xzf ${gzBundle} -C ${extracted} && openssl dgst -sha256 ${extracted}/payload/big/* > /dev/null`,
);
rmSync(extracted, { recursive: true, force: true });
const gzRun = ferry(
  '`ferry install` of the tar.gz bundle',
  ['install', gzBundle, '--root', target, '--yes', '--json'],
  { before: freshAppliance },
);
const gzRead = JSON.parse(gzRun.result.stdout.trim().split('\n').at(-1)).bytesRead;
log();
table([gzFloor, gzRun]);
log();
log(
  `tar.gz: ${(gzRun.seconds / gzFloor.seconds).toFixed(2)}× its floor (plain tar above: ${(installRun.seconds / installFloor.seconds).toFixed(2)}×); read ${(gzRead / statSync(gzBundle).size).toFixed(4)}× the bundle; peak ${gzRun.rssMiB.toFixed(0)} MiB.`,
);
// What a correct plan costs: re-hashing the installed GiB (drift by file) beside the record alone.
const driftPlans = [
  ferry('`ferry plan` of the same bundle, installed files re-hashed', [
    'plan',
    installBundle,
    '--root',
    target,
    '--json',
  ]),
  ferry('`ferry plan --no-drift-check` (the record alone)', [
    'plan',
    installBundle,
    '--root',
    target,
    '--no-drift-check',
    '--json',
  ]),
];
log();
table(driftPlans);
rmSync(target, { recursive: true, force: true });

// A zip update where one of four equal components changed, from a release
// in which all four differ from the oldest supported one: the bundle carries
// all four, and the install reads only the one it needs.
const four = join(installDir, 'four');
mkdirSync(four, { recursive: true });
const part = 64 * MiB;
const releaseSpec = (release, versions) => {
  for (const [name, version] of Object.entries(versions))
    makePayload(join(four, name, version), part, 1);
  const file = join(four, `release-${release}.yaml`);
  writeFileSync(
    file,
    `product: four\nrelease: "${release}"\nplatform: { name: os, range: "*" }\nhistory: ./history\ncomponents:\n${Object.entries(
      versions,
    )
      .map(
        ([name, version]) => `  ${name}: { version: "${version}", payload: ./${name}/${version} }`,
      )
      .join('\n')}\n`,
  );
  return file;
};
const fourRoot = join(four, 'appliance');
cli(
  'init',
  '--root',
  fourRoot,
  '--product',
  'four',
  '--platform',
  'os@1.0.0',
  '--trust',
  join(installDir, 'trust.json'),
);
let fourBundle;
for (const [release, versions] of [
  ['1.0.0', { a: '1.0.0', b: '1.0.0', c: '1.0.0', d: '1.0.0' }],
  ['1.1.0', { a: '1.1.0', b: '1.1.0', c: '1.1.0', d: '1.1.0' }],
  ['1.2.0', { a: '1.2.0', b: '1.1.0', c: '1.1.0', d: '1.1.0' }],
]) {
  const built = JSON.parse(
    cli(
      'build',
      releaseSpec(release, versions),
      '--out',
      join(four, 'out'),
      '--key',
      key,
      '--format',
      'zip',
      ...(release === '1.0.0' ? ['--first-release'] : []),
      '--json',
    ),
  );
  fourBundle = built;
  if (release !== '1.2.0') cli('install', built.bundle, '--root', fourRoot, '--yes');
}
const fourInstall = cli('install', fourBundle.bundle, '--root', fourRoot, '--yes', '--json');
const fourResult = JSON.parse(fourInstall.trim().split('\n').at(-1));
log();
log(
  `Zip update 1.1.0 → 1.2.0, one of four 64 MiB components changed; the bundle carries all four (${(fourBundle.size / MiB).toFixed(0)} MiB) because it also updates from 1.0.0. ferry install: ${fourResult.outcome}, read ${(fourResult.bytesRead / MiB).toFixed(2)} MiB of the bundle (the changed component is ${(part / MiB).toFixed(0)} MiB): ${fourResult.bytesRead <= part + MiB ? 'within' : 'OVER'} its bytes plus metadata.`,
);
rmSync(four, { recursive: true, force: true });

// ---------------------------------------------------------------- publish and pull
// Publish and pull to a registry on loopback and a directory, against curl and cp.
const registryBench = spawnSync(
  process.execPath,
  [join(root, 'scripts', 'bench-registry.mjs'), String(runs), String(gib), work],
  { encoding: 'utf8' },
);
if (registryBench.status !== 0) throw new Error(registryBench.stderr);
log();
log(registryBench.stdout.trim());

// Install from the parts `ferry media` cuts, against the single file.
const mediaBench = spawnSync(
  process.execPath,
  [join(root, 'scripts', 'bench-media.mjs'), String(runs), String(gib), work],
  { encoding: 'utf8' },
);
if (mediaBench.status !== 0) throw new Error(mediaBench.stderr);
log();
log(mediaBench.stdout.trim());

// The planner alone: 1,000 components with random (acyclic) dependencies.
const synthetic = spawnSync(
  process.execPath,
  [join(root, 'scripts', 'bench-planner.mjs'), String(runs)],
  { encoding: 'utf8' },
);
if (synthetic.status !== 0) throw new Error(synthetic.stderr);
log();
log(synthetic.stdout.trim());

mkdirSync(join(root, 'bench-report'), { recursive: true });
writeFileSync(join(root, 'bench-report', 'report.md'), `${report.join('\n')}\n`);
console.log(`\nwrote bench-report/report.md`);

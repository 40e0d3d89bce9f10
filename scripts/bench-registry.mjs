// Publish and pull of one bundle to and from a registry on loopback and a
// directory repository, beside curl and cp doing the same transfer (the floor),
// in alternating rounds on the same machine, with peak RSS.
// Standalone so it can run alone: node scripts/bench-registry.mjs [RUNS] [GIB] [DIR]
// (after `npm run build`); scripts/bench.mjs runs it as one section.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry } from './registry-up.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 3);
const gib = Number(process.argv[3] ?? 1);
const work = join(process.argv[4] ?? join(tmpdir(), 'ferry-bench'), 'registry');
const MiB = 1024 * 1024;

function cli(...args) {
  const result = spawnSync(process.execPath, [join(root, 'bin/ferry'), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  if (result.status !== 0)
    throw new Error(`ferry ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

/**
 * What every timed command runs in, Ferry's and the floor's alike: the
 * environment a CI runner gives, not this machine's. Here NODE_EXTRA_CA_CERTS
 * names the system's 140-odd CAs, which Node reads at every start, TLS or not
 * (`node -e 0`: 0.06 s against 0.02 s); curl reads its CA file only for
 * HTTPS. One case (`ferryPullHere`) runs in this machine's environment.
 */
const plainEnv = () => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: work,
  FERRY_STATE_DIR: state,
});

/** One timed run; a script of ours reports its peak RSS (`maxrss N` KiB) on stderr. */
function timed(label, command, args, before, env = plainEnv()) {
  before?.();
  // Untimed: an fsync on ext4 would otherwise write back what the case before left dirty.
  spawnSync('sync');
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * MiB, env });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`${label} failed (${result.status}): ${result.stderr}`);
  return { label, seconds, rssMiB: Number(/maxrss (\d+)/.exec(result.stderr)?.[1] ?? 0) / 1024 };
}
const shell = (label, script, before) => timed(label, 'bash', ['-c', script], before);
const script = (label, name, args, before, env) =>
  timed(label, process.execPath, [join(root, 'scripts', name), ...args], before, env);
const ferry = (label, args, before, env) => script(label, 'bench-run.mjs', args, before, env);

const registryBinary = spawnSync('sh', ['-c', 'command -v docker-registry'], {
  encoding: 'utf8',
}).stdout.trim();
console.log(`## Publish and pull: a ${gib} GiB bundle, registry on loopback and directory`);
console.log();
if (!registryBinary) {
  console.log('Skipped: docker-registry is not installed (scripts/setup-system.sh installs it).');
  process.exit(0);
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
cli('keygen', '--out', join(work, 'keys'), '--name', 'bench');
const key = join(work, 'keys', 'bench.key');
const trust = join(work, 'trust.json');
cli('trust', 'init', '--key', join(work, 'keys', 'bench.pub'), '--out', trust);
const blob = JSON.parse(
  cli('build', join(work, 'release.yaml'), '--out', join(work, 'out'), '--key', key, '--json'),
).bundle;
rmSync(join(work, 'payload'), { recursive: true, force: true });
const blobSize = statSync(blob).size;
const digest = `sha256:${spawnSync('openssl', ['dgst', '-sha256', '-r', blob], { encoding: 'utf8' }).stdout.split(' ')[0]}`;

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
// Debian's docker-registry (Distribution 2.8), its storage on the bench's disk.
const storage = join(work, 'storage');
const config = join(work, 'registry.yml');
writeFileSync(
  config,
  `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
);
const origin = `http://127.0.0.1:${port}`;
const registry = await startRegistry(registryBinary, config, origin);

const repository = `oci://127.0.0.1:${port}/bench/blob`;
const bundles = `oci://127.0.0.1:${port}/bench/bundle`;
const folder = join(work, 'repo');
const uploads = `${origin}/v2/bench/blob/blobs/uploads/`;
const pulled = join(work, 'pulled.bin');
const pulledDir = join(work, 'pulled');
const copied = join(work, 'copied.bin');
const url = `${origin}/v2/bench/blob/blobs/${digest}`;
const empty = () => rmSync(storage, { recursive: true, force: true });
// Each round publishes into a repository made anew, which a pull that remembered the
// last one would refuse (E_CHANNEL_SET_BACK): pulls record into the bench's own folder,
// cleared with their output.
const state = join(work, 'state');
const extraCAs = process.env.NODE_EXTRA_CA_CERTS;
const noOutput = () => {
  rmSync(pulled, { force: true });
  rmSync(pulledDir, { recursive: true, force: true });
  rmSync(copied, { force: true });
  rmSync(state, { recursive: true, force: true });
};
const publishArgs = (repo) => [
  'publish',
  blob,
  '--repo',
  repo,
  '--trust',
  trust,
  '--key',
  key,
  '--channel',
  'dev',
  '--json',
];
const pullArgs = (repo) => [
  'pull',
  '--repo',
  repo,
  '--channel',
  'dev',
  '--out',
  pulledDir,
  '--json',
];
// Each round runs every case once, floor and Ferry side by side, so that the
// machine's slow and fast moments fall on both; ratios are per round. Order
// matters: the blob pulls read what push wrote, publish empties the registry
// first, and each pull of a repository reads what the publish before it wrote.
const cases = {
  curlPush: () =>
    shell(
      'floor: curl, POST then a monolithic PUT streaming the file (`curl -T`)',
      `loc=$(curl -sf -D - -o /dev/null -X POST ${uploads} | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}') && curl -sf -o /dev/null -T ${blob} "$loc&digest=${digest}"`,
      empty,
    ),
  push: () =>
    script(
      'Ferry `pushBlob` (POST, one streamed PATCH, PUT)',
      'bench-oci.mjs',
      ['push', repository, blob, digest],
      empty,
    ),
  curlPull: () =>
    shell('floor: curl GET of the blob to a file', `curl -sf -o ${pulled} ${url}`, noOutput),
  // Not a floor Ferry could reach: what Node's own HTTP client costs before
  // anything is hashed or written, the same client `ferry pull` is built on.
  nodePull: () =>
    timed('reference: Node 20 `http.get` of the blob, every byte dropped', process.execPath, [
      '-e',
      `require('node:http').get(${JSON.stringify(url)}, (r) => r.resume().on('end', () => process.exit(r.statusCode === 200 ? 0 : 1)))`,
    ]),
  curlPullSync: () =>
    shell(
      'reference: curl GET, then `sync` of the file (a download that survives a power cut)',
      `curl -sf -o ${pulled} ${url} && sync ${pulled}`,
      noOutput,
    ),
  // What a pull has to do, by standard tools: every byte hashed (the digest
  // is checked) and on disk (the bundle survives a power cut).
  curlPullHashSync: () =>
    shell(
      'reference: the work a checked, durable pull requires: curl GET through `tee` to the file and to `openssl dgst -sha256`, then `sync`',
      `set -o pipefail; curl -sf ${url} | tee ${pulled} | openssl dgst -sha256 >/dev/null && sync ${pulled}`,
      noOutput,
    ),
  // What checking the digest costs by itself. Where the link brings bytes faster than
  // one core hashes them (loopback here), this, not curl, is what a checked pull waits on.
  sha256Pass: () =>
    shell(
      'reference: one `openssl dgst -sha256` pass over the bundle, read from the page cache (the digest check alone)',
      `openssl dgst -sha256 ${blob} >/dev/null`,
    ),
  pull: () =>
    script(
      'Ferry `pullBlob` (sha256 and size checked as it streams, fsync, rename)',
      'bench-oci.mjs',
      ['pull', repository, digest, String(blobSize), pulled],
      noOutput,
    ),
  publish: () =>
    ferry(
      'Ferry `ferry publish` (signature check, upload hashing as it goes, manifests, audit events)',
      publishArgs(bundles),
      empty,
    ),
  ferryPull: () =>
    ferry(
      'Ferry `ferry pull --channel dev` (records and signature checked, atomic)',
      pullArgs(bundles),
      noOutput,
    ),
  // The one file a CI runner with only Node fetches (README, "Publishing from CI"): an ES
  // module compiled whole at start, where bin/ferry's script comes from V8's code cache.
  ferryPullMjs: () =>
    timed(
      'Ferry `node ferry.mjs pull --channel dev` (the packaged single file)',
      process.execPath,
      [join(root, 'dist', 'package', 'ferry.mjs'), ...pullArgs(bundles)],
      noOutput,
    ),
  ...(extraCAs && {
    ferryPullHere: () =>
      ferry(
        `Ferry \`ferry pull --channel dev\`, in this machine's environment (NODE_EXTRA_CA_CERTS=${extraCAs})`,
        pullArgs(bundles),
        noOutput,
        { ...process.env, FERRY_STATE_DIR: state },
      ),
  }),
  cpSync: () =>
    shell(
      'floor: `cp` of the bundle, then `sync` of the copy',
      `cp ${blob} ${copied} && sync ${copied}`,
      noOutput,
    ),
  cpHashSync: () =>
    shell(
      'reference: the work a checked, durable copy requires: the bundle through `tee` to the copy and to `openssl dgst -sha256`, then `sync`',
      `set -o pipefail; tee ${copied} < ${blob} | openssl dgst -sha256 >/dev/null && sync ${copied}`,
      noOutput,
    ),
  dirPublish: () =>
    ferry('Ferry `ferry publish` to a directory', publishArgs(folder), () =>
      rmSync(folder, { recursive: true, force: true }),
    ),
  dirPull: () => ferry('Ferry `ferry pull` from a directory', pullArgs(folder), noOutput),
};
const rounds = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, run] of Object.entries(cases)) rounds[name].push(run());
}

/**
 * Loopback carries a GiB in 0.6-1 s, faster than one core hashes it: there the
 * pull waits on SHA-256, which curl never computes. A CI runner's or a site's
 * link is slower. The same pull through loopback held to a link's rate, curl
 * beside it: bench-link.mjs, in a network namespace of its own (root only),
 * whose loopback alone is shaped, with a registry of its own on this one's
 * storage (the bundle the last round published).
 */
function throughLinks(rates) {
  const skipped = (why) => ({ rounds: [], skipped: why });
  if (process.getuid?.() !== 0)
    return skipped('needs root, for a network namespace of its own whose loopback `tc` shapes.');
  for (const tool of ['tc', 'ip', 'unshare'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return skipped(
        `\`${tool}\` is not installed (scripts/setup-system.sh installs iproute2 and util-linux).`,
      );
  const result = spawnSync(
    'unshare',
    [
      '--net',
      '--pid',
      '--kill-child',
      process.execPath,
      join(root, 'scripts', 'bench-link.mjs'),
      JSON.stringify({
        registry: registryBinary,
        config,
        origin,
        digest,
        repo: 'bench/bundle',
        runs,
        rates,
        work,
        state,
      }),
    ],
    { encoding: 'utf8', maxBuffer: 64 * MiB },
  );
  if (result.status !== 0)
    return skipped(`its run in a namespace failed (${result.status}): ${result.stderr.trim()}`);
  return { rounds: JSON.parse(result.stdout) };
}
const links = throughLinks(['1gbit', '5gbit']);
registry.kill();

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
const ratio = (name, floor) =>
  median(rounds[name].map((r, i) => r.seconds / rounds[floor][i].seconds));
function table(names) {
  console.log('| measurement | median (s) | × floor (median of rounds) | peak RSS |');
  console.log('|---|---:|---:|---:|');
  for (const name of names) {
    const rss = Math.max(...rounds[name].map((r) => r.rssMiB));
    console.log(
      `| ${rounds[name][0].label} | ${median(rounds[name].map((r) => r.seconds)).toFixed(2)} | ${ratio(name, names[0]).toFixed(2)} | ${rss ? `${rss.toFixed(0)} MiB` : ''} |`,
    );
  }
  console.log();
}
table(['curlPush', 'push', 'publish']);
table([
  'curlPull',
  'nodePull',
  'curlPullSync',
  'curlPullHashSync',
  'sha256Pass',
  'pull',
  'ferryPull',
  'ferryPullMjs',
  ...(extraCAs ? ['ferryPullHere'] : []),
]);
table(['cpSync', 'cpHashSync', 'dirPublish', 'dirPull']);
console.log(
  `Through a link: loopback held to a rate by \`tc\`, in a network namespace of its own (${runs} alternating rounds).`,
);
console.log();
if (links.skipped) console.log(`Skipped: ${links.skipped}`);
else {
  const linkRounds = links.rounds;
  console.log(
    '| link | curl GET (median, s) | `ferry pull --channel dev` (median, s) | × curl (median of rounds) | peak RSS |',
  );
  console.log('|---|---:|---:|---:|---:|');
  for (const rate of new Set(linkRounds.map((r) => r.rate))) {
    const of = linkRounds.filter((r) => r.rate === rate);
    console.log(
      `| ${rate} | ${median(of.map((r) => r.curl)).toFixed(2)} | ${median(of.map((r) => r.ferry)).toFixed(2)} | ${median(of.map((r) => r.ferry / r.curl)).toFixed(2)} | ${Math.max(...of.map((r) => r.rssMiB)).toFixed(0)} MiB |`,
    );
  }
}
console.log();
// Whether 1.3× curl can be met here at all: a pull that checks the digest takes at
// least one SHA-256 pass, whatever else it overlaps with.
const hashOverCurl = ratio('sha256Pass', 'curlPull');
const linkRatio = (rate) =>
  median(links.rounds.filter((r) => r.rate === rate).map((r) => r.ferry / r.curl)).toFixed(2);
console.log(
  `One SHA-256 pass over the bundle takes ${hashOverCurl.toFixed(2)}× curl's download on loopback here: ${hashOverCurl >= 1.3 ? 'no pull that checks the digest can come within 1.3× of curl on this machine' : `a pull that checks the digest takes at least that, which leaves it ${(1.3 - hashOverCurl).toFixed(2)}× curl within 1.3× for all else (starting, receiving, writing)`}.`,
);
console.log();
console.log(
  `Target: within 1.3× of the floor and under 200 MiB. publish ${ratio('publish', 'curlPush').toFixed(2)}×, ferry pull ${ratio('ferryPull', 'curlPull').toFixed(2)}× curl (\`node ferry.mjs\` ${ratio('ferryPullMjs', 'curlPull').toFixed(2)}×)${extraCAs ? ` (${ratio('ferryPullHere', 'curlPull').toFixed(2)}× in this machine's environment)` : ''} (${ratio('ferryPull', 'curlPullSync').toFixed(2)}× curl and sync, ${ratio('ferryPull', 'curlPullHashSync').toFixed(2)}× the work a checked, durable pull requires); directory: publish ${ratio('dirPublish', 'cpSync').toFixed(2)}× (${ratio('dirPublish', 'cpHashSync').toFixed(2)}×), pull ${ratio('dirPull', 'cpSync').toFixed(2)}× cp and sync (${ratio('dirPull', 'cpHashSync').toFixed(2)}× the work a checked, durable copy requires).${links.skipped ? '' : ` Through a link: ferry pull ${linkRatio('1gbit')}× curl at 1 Gbit/s, ${linkRatio('5gbit')}× at 5 Gbit/s.`}`,
);
rmSync(work, { recursive: true, force: true });

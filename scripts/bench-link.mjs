// The registry bench's pulls through a link slower than loopback (see
// bench-registry.mjs, which runs this): in a network namespace of its own
// (`unshare --net --pid`, root only), where loopback is held to each rate by
// a token bucket (`tc qdisc ... tbf`). The host's loopback is never shaped,
// and nothing is left shaped however this ends: the namespace, its qdisc and
// the registry started in it go with its last process.
// Args: one JSON object (registry, config, origin, digest, repo, runs, rates, work, state).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry } from './registry-up.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { registry, config, origin, digest, repo, runs, rates, work, state } = JSON.parse(
  process.argv[2],
);
const MiB = 1024 * 1024;

function must(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
}

must('ip', ['link', 'set', 'lo', 'up']);
const server = await startRegistry(registry, config, origin);

const pulled = join(work, 'link-pulled');
const noOutput = () => {
  rmSync(pulled, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
};
/** As bench-registry.mjs times a case: the output cleared and dirty pages flushed first, untimed. */
function timed(command, args, env) {
  noOutput();
  spawnSync('sync');
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * MiB, env });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return { seconds, rssMiB: Number(/maxrss (\d+)/.exec(result.stderr)?.[1] ?? 0) / 1024 };
}
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, FERRY_STATE_DIR: state };
const rounds = [];
try {
  for (const rate of rates) {
    must('tc', [
      'qdisc',
      'add',
      'dev',
      'lo',
      'root',
      'tbf',
      'rate',
      rate,
      'burst',
      '1mb',
      'latency',
      '50ms',
    ]);
    for (let i = 0; i < runs; i++) {
      const curl = timed(
        'curl',
        ['-sf', '-o', join(work, 'link.bin'), `${origin}/v2/${repo}/blobs/${digest}`],
        env,
      );
      rmSync(join(work, 'link.bin'), { force: true });
      const pull = timed(
        process.execPath,
        [
          join(root, 'scripts', 'bench-run.mjs'),
          'pull',
          '--repo',
          `oci://${new URL(origin).host}/${repo}`,
          '--channel',
          'dev',
          '--out',
          pulled,
          '--json',
        ],
        env,
      );
      rounds.push({ rate, curl: curl.seconds, ferry: pull.seconds, rssMiB: pull.rssMiB });
    }
    must('tc', ['qdisc', 'del', 'dev', 'lo', 'root']);
  }
} finally {
  noOutput();
  server.kill();
}
process.stdout.write(JSON.stringify(rounds));

// `npm run test:nodes`: the tests that lean on what changes between Node
// releases, run again on the other Node lines package.json's engines accept
// (`npm test` runs everything on the Node that runs npm). On Node 22 the
// hashing sink once sent a whole batch as copies where Node 20 moved it: the
// bytes were right, the suite on Node 20 could not see it.
//
// Each Node comes from the npm registry (`node-linux-<arch>`, the official
// binary in a package), checked by npm against the registry's integrity, into
// .ci/nodes/ (ignored by git, kept between runs). The lowest release of the
// 22 line that engines accepts, and one of the 24 line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSIONS = ['22.12.0', '24.11.0'];
const FILES = [
  'test/manifest-schema/hashing.test.ts',
  'test/repository/oci/',
  'test/e2e/registry-tls.test.ts',
  'test/e2e/repository.test.ts',
  'test/e2e/build.test.ts',
  'test/e2e/install.test.ts',
  // The single executable, built from this Node: a runner on Node 22 ships a Node 22 installer.
  'test/e2e/package.test.ts',
];

/** Thrown, so that the fetch's folder is removed on the way out. */
function fail(message) {
  throw new Error(message);
}

/** The node binary of `version`, fetched once into .ci/nodes/. */
function nodeOf(version) {
  const folder = join(root, '.ci', 'nodes', `v${version}`);
  const binary = join(folder, 'bin', 'node');
  if (!existsSync(binary)) {
    const name = `node-linux-${process.arch}@${version}`;
    mkdirSync(dirname(folder), { recursive: true });
    // Beside the folder, not in /tmp: a rename does not cross filesystems.
    const scratch = mkdtempSync(join(dirname(folder), '.fetch-'));
    try {
      const pack = spawnSync('npm', ['pack', name, '--silent', '--pack-destination', scratch], {
        encoding: 'utf8',
      });
      if (pack.status !== 0)
        fail(`npm pack ${name} failed (the npm registry is needed once):\n${pack.stderr.trim()}`);
      const [tarball] = readdirSync(scratch).filter((file) => file.endsWith('.tgz'));
      if (!tarball) fail(`npm pack ${name} wrote no tarball`);
      const unpack = spawnSync('tar', ['-xzf', join(scratch, tarball), '-C', scratch]);
      if (unpack.status !== 0) fail(`tar could not unpack ${tarball}`);
      // Whole or not at all: an interrupted fetch leaves no half a Node to run next time.
      renameSync(join(scratch, 'package'), folder);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  const said = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (said !== `v${version}`) fail(`${binary} says it is ${said ?? 'nothing'}, not v${version}`);
  return binary;
}

try {
  for (const version of VERSIONS) runOn(version);
} catch (error) {
  console.error(`test:nodes: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}

function runOn(version) {
  const node = nodeOf(version);
  console.log(`\n== Node ${version}: ${FILES.join(' ')}`);
  // On PATH too: a test that starts `node` by name gets this one.
  const run = spawnSync(
    node,
    [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...FILES],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` },
    },
  );
  if (run.status !== 0) fail(`the tests failed on Node ${version}`);
}

// The quick-start demo: builds every fixture release of the sample appliance
// and reads the bundles back, printing each ferry command and what it says.
// Everything happens in a throwaway folder; nothing outside it is touched.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
const product = join(work, 'acme-appliance');
cpSync(join(root, 'fixtures', 'acme-appliance'), product, {
  recursive: true,
  verbatimSymlinks: true,
});
const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

function heading(text) {
  console.log(`\n=== ${text}\n`);
}

function ferry(args, { expect = 0 } = {}) {
  const shown = args
    .map((arg) => (arg.startsWith(work) ? relative(work, arg) || '.' : arg))
    .join(' ');
  console.log(`$ ferry ${shown}`);
  const result = spawnSync(process.execPath, [join(root, 'bin', 'ferry'), ...args], {
    cwd: work,
    env,
    encoding: 'utf8',
  });
  const output = `${result.stdout}${result.stderr}`.trimEnd();
  if (output) console.log(output.replaceAll(`${work}/`, '').replace(/^/gm, '  '));
  if (result.status !== expect) {
    console.error(`\ndemo: expected exit ${expect}, got ${result.status}`);
    process.exit(1);
  }
  console.log(`  (exit ${result.status})\n`);
  return result;
}

console.log(`Ferry demo in ${work}`);

heading('A release engineer makes a signing key and the trust root appliances will hold');
ferry(['keygen', '--out', join(work, 'keys'), '--name', 'release']);
ferry([
  'trust',
  'init',
  '--key',
  join(work, 'keys', 'release.pub'),
  '--out',
  join(work, 'trust.json'),
]);

heading('CI builds each release; every build records the release for the next one');
for (const release of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) {
  ferry([
    'build',
    join(product, `release-${release}.yaml`),
    '--out',
    join(work, 'bundles'),
    '--key',
    join(work, 'keys', 'release.key'),
  ]);
}
ferry([
  'build',
  join(product, 'release-1.3.0.yaml'),
  '--out',
  join(work, 'bundles'),
  '--key',
  join(work, 'keys', 'release.key'),
  '--format',
  'zip',
]);

heading('Anyone can read a bundle back: metadata only, whatever its size');
ferry([
  'inspect',
  join(work, 'bundles', 'acme-appliance-1.3.0-update.tar'),
  '--trust',
  join(work, 'trust.json'),
]);

heading('…and check every byte against the signed metadata');
ferry([
  'verify',
  join(work, 'bundles', 'acme-appliance-1.0.0-install.tar'),
  '--trust',
  join(work, 'trust.json'),
]);
ferry([
  'verify',
  join(work, 'bundles', 'acme-appliance-1.3.0-update.zip'),
  '--trust',
  join(work, 'trust.json'),
]);

heading('A bundle that lies about what it holds is refused (exit 3)');
const { readFileSync, writeFileSync } = await import('node:fs');
const bundle = join(work, 'bundles', 'acme-appliance-1.0.0-install.tar');
const bytes = readFileSync(bundle);
const at = bytes.indexOf(Buffer.from('payload/maps/data/tiles.bin')) + 4096;
bytes[at] ^= 0xff;
writeFileSync(join(work, 'bundles', 'tampered.tar'), bytes);
ferry(['verify', join(work, 'bundles', 'tampered.tar'), '--trust', join(work, 'trust.json')], {
  expect: 3,
});

console.log(`Done. The bundles, keys and records are in ${work}`);

// The quick-start demo: builds every fixture release of the sample appliance,
// reads the bundles back, and installs them into a throwaway appliance folder,
// a failure and its rollback included, printing each ferry command and its output.
// Everything happens in a throwaway folder; nothing outside it is touched.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  const output = `${result.stderr}${result.stdout}`.trimEnd(); // progress (stderr) before the result
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
    ...(release === '1.0.0' ? ['--first-release'] : []),
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
const bundle = join(work, 'bundles', 'acme-appliance-1.0.0-install.tar');
const bytes = readFileSync(bundle);
const at = bytes.indexOf(Buffer.from('payload/maps/data/tiles.bin')) + 4096;
bytes[at] ^= 0xff;
writeFileSync(join(work, 'bundles', 'tampered.tar'), bytes);
ferry(['verify', join(work, 'bundles', 'tampered.tar'), '--trust', join(work, 'trust.json')], {
  expect: 3,
});

heading('On the appliance: provision it with the trust root, then plan from metadata alone');
const appliance = join(work, 'appliance');
ferry([
  'init',
  '--root',
  appliance,
  '--product',
  'acme-appliance',
  '--platform',
  'acme-os@7.2.1',
  '--trust',
  join(work, 'trust.json'),
]);
ferry(['plan', join(work, 'bundles', 'acme-appliance-1.0.0-install.tar'), '--root', appliance]);

heading('Install the first release: pre-validate, stage, update, test, commit');
ferry([
  'install',
  join(work, 'bundles', 'acme-appliance-1.0.0-install.tar'),
  '--root',
  appliance,
  '--yes',
]);

heading('Months later: 1.3.0 arrives on a USB stick; the site skipped 1.1.0 and 1.2.0');
ferry(['plan', join(work, 'bundles', 'acme-appliance-1.3.0-update.tar'), '--root', appliance]);

heading("The web team's smoke test fails on this site: everything is rolled back (exit 1)");
mkdirSync(join(appliance, 'fail'), { recursive: true });
writeFileSync(join(appliance, 'fail', 'web.test'), ''); // the fixture scripts fail on request
ferry(
  [
    'install',
    join(work, 'bundles', 'acme-appliance-1.3.0-update.tar'),
    '--root',
    appliance,
    '--yes',
  ],
  { expect: 1 },
);
rmSync(join(appliance, 'fail'), { recursive: true, force: true });
ferry(['status', '--root', appliance, '--verify']);

heading('Fixed, and installed again: 1.0.0 → 1.3.0 in one step');
ferry([
  'install',
  join(work, 'bundles', 'acme-appliance-1.3.0-update.tar'),
  '--root',
  appliance,
  '--yes',
]);
ferry(['status', '--root', appliance, '--verify']);

console.log(`Done. The bundles, keys, records and the appliance are in ${work}`);

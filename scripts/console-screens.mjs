// Captures each console screen from the real program running in tmux and
// writes docs/console.md. Run after `npm run build`: node scripts/console-screens.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ferryBin = join(root, 'bin', 'ferry');
const work = mkdtempSync(join(tmpdir(), 'ferry-screens-'));
const socket = `ferry-screens-${process.pid}`;
const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

function ferry(...args) {
  const result = spawnSync(process.execPath, [ferryBin, ...args], {
    cwd: work,
    env,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`ferry ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}
const tmux = (...args) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(session, text) {
  for (let i = 0; i < 100; i++) {
    const screen = tmux('capture-pane', '-t', session, '-p');
    if (screen.includes(text)) return screen.replace(/\s+$/, '');
    await sleep(150);
  }
  throw new Error(
    `no "${text}" on the ${session} screen:\n${tmux('capture-pane', '-t', session, '-p')}`,
  );
}

function appliance(name, platform = 'acme-os@7.2.1', release = '1.0.0') {
  // platform and release are parameters for screens that need another appliance
  const dir = join(work, name);
  ferry(
    'init',
    '--root',
    dir,
    '--product',
    'acme-appliance',
    '--platform',
    platform,
    '--trust',
    join(work, 'trust.json'),
  );
  if (release)
    ferry(
      'install',
      join(work, 'bundles', `acme-appliance-${release}-install.tar`),
      '--root',
      dir,
      '--yes',
    );
  return dir;
}

function open(session, dir, media, [width, height] = [110, 45], env = '') {
  tmux(
    'new-session',
    '-d',
    '-s',
    session,
    '-x',
    String(width),
    '-y',
    String(height),
    `${env} ${process.execPath} ${ferryBin} console --root ${dir} --media ${media}; sleep 120`,
  );
}

const product = join(work, 'acme-appliance');
cpSync(join(root, 'fixtures', 'acme-appliance'), product, {
  recursive: true,
  verbatimSymlinks: true,
});
ferry('keygen', '--out', join(work, 'keys'), '--name', 'release');
ferry(
  'trust',
  'init',
  '--key',
  join(work, 'keys', 'release.pub'),
  '--out',
  join(work, 'trust.json'),
);
for (const release of ['1.0.0', '1.1.0', '1.2.0', '1.3.0'])
  ferry(
    'build',
    join(product, `release-${release}.yaml`),
    '--out',
    join(work, 'bundles'),
    '--key',
    join(work, 'keys', 'release.key'),
    ...(release === '1.0.0' ? ['--first-release'] : []),
  );
const usb = join(work, 'usb');
mkdirSync(usb);
for (const release of ['1.1.0', '1.3.0'])
  cpSync(
    join(work, 'bundles', `acme-appliance-${release}-update.tar`),
    join(usb, `acme-appliance-${release}-update.tar`),
  );
ferry('keygen', '--out', join(work, 'rogue'), '--name', 'rogue');
ferry(
  'build',
  join(product, 'release-1.3.0.yaml'),
  '--out',
  join(work, 'rogue-out'),
  '--key',
  join(work, 'rogue', 'rogue.key'),
);
cpSync(join(work, 'rogue-out', 'acme-appliance-1.3.0-update.tar'), join(usb, 'unknown-vendor.tar'));
// 1.3.0 once more, needing a Ferry 9.0.0 and carrying it: a stand-in that only says its version.
const carried = join(work, 'ferry-installer');
writeFileSync(
  carried,
  `#!/bin/sh\necho '{"version": "9.0.0", "platform": "${process.platform}-${process.arch}"}'\n`,
  { mode: 0o755 },
);
writeFileSync(
  join(product, 'release-1.3.0-newer.yaml'),
  `${readFileSync(join(product, 'release-1.3.0.yaml'), 'utf8')}\nminInstaller: 9.0.0\n`,
);
ferry(
  'build',
  join(product, 'release-1.3.0-newer.yaml'),
  '--out',
  join(work, 'newer'),
  '--key',
  join(work, 'keys', 'release.key'),
  '--installer',
  carried,
);

const screens = [];
try {
  // Found bundles and the plan; then Enter, progress and the result.
  const one = appliance('one-click');
  writeFileSync(
    join(one, 'etc/ferry/appliance.yaml'),
    readFileSync(join(one, 'etc/ferry/appliance.yaml'), 'utf8').replace(
      /artifactTimeoutSeconds: \d+/,
      'artifactTimeoutSeconds: 3',
    ),
  );
  open('plan', one, usb);
  screens.push(['Bundles found, and the plan (110 × 45)', await waitFor('plan', '[Enter] apply')]);
  mkdirSync(join(one, 'hang'));
  writeFileSync(join(one, 'hang', 'web.test'), ''); // the fixture's smoke test hangs: the timeout kills it
  tmux('send-keys', '-t', 'plan', 'Enter');
  screens.push(['Applying: passes, components, the log', await waitFor('plan', '▶ test')]);
  screens.push(['Rolled back (a test artifact timed out)', await waitFor('plan', 'ROLLED BACK')]);

  const again = appliance('one-click-again');
  open('commit', again, usb);
  await waitFor('commit', '[Enter] apply');
  tmux('send-keys', '-t', 'commit', 'Enter');
  screens.push(['Committed', await waitFor('commit', 'COMMITTED')]);

  // Blocked: someone replaced web by hand, so the appliance has drifted from its release.
  const old = appliance('drifted');
  const stateFile = join(old, 'var/lib/ferry/state.json');
  writeFileSync(
    stateFile,
    readFileSync(stateFile, 'utf8').replace('"version": "1.0.0"', '"version": "1.0.9"'),
  );
  open('blocked', old, usb);
  await waitFor('blocked', 'cannot be applied');
  tmux('send-keys', '-t', 'blocked', 'Enter');
  screens.push(['Blocked (Enter only explains)', await waitFor('blocked', 'Enter does nothing')]);

  // A bundle whose payload was damaged after signing.
  const damaged = join(work, 'damaged');
  mkdirSync(damaged);
  const bytes = readFileSync(join(work, 'bundles', 'acme-appliance-1.3.0-update.tar'));
  const at = bytes.indexOf(Buffer.from('CREATE INDEX'));
  bytes[at] = 'c'.charCodeAt(0);
  writeFileSync(join(damaged, 'acme-appliance-1.3.0-update.tar'), bytes);
  const victim = appliance('damaged-bundle');
  open('damaged', victim, damaged);
  await waitFor('damaged', '[Enter] apply');
  tmux('send-keys', '-t', 'damaged', 'Enter');
  screens.push([
    'Verification failure (a damaged payload byte)',
    await waitFor('damaged', 'NOT APPLIED'),
  ]);

  // The same plan on 80 × 24: the top stays, the rest scrolls.
  const small = appliance('small-screen');
  open('small', small, usb, [80, 24]);
  screens.push(['On 80 × 24: the top stays, the rest scrolls', await waitFor('small', '▼')]);
  tmux('send-keys', '-t', 'small', 'End');
  screens.push(['On 80 × 24, scrolled to the end (End)', await waitFor('small', '▲ ')]);

  // Nothing on the stick yet: where it looked; it looks again by itself, or on r.
  const empty = join(work, 'empty-stick');
  mkdirSync(empty);
  open('nothing', appliance('nothing-found'), empty, [80, 24]);
  screens.push(['Nothing found (80 × 24)', await waitFor('nothing', 'Searched:')]);

  // Outside the maintenance windows, on an appliance that lets the console go ahead.
  const closed = appliance('closed');
  const opens = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 12 * 3_600_000);
  const clock = (at) => at.toISOString().slice(11, 16);
  const config = join(closed, 'etc/ferry/appliance.yaml');
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      /^maintenanceWindows:.*$/m,
      `maintenanceWindows: [{ start: '${clock(opens)}', end: '${clock(new Date(opens.getTime() + 3_600_000))}' }]\nconsole: { allowOutsideWindow: true }`,
    ),
  );
  open('closed', closed, usb, [80, 24], 'TZ=UTC');
  screens.push([
    'Outside the maintenance windows (80 × 24)',
    await waitFor('closed', 'Outside the maintenance windows'),
  ]);
  tmux('send-keys', '-t', 'closed', 'Enter');
  await waitFor('closed', 'Why install');
  tmux('send-keys', '-t', 'closed', '-l', 'router queue stuck, ticket 42');
  screens.push([
    'Going ahead outside the windows: the reason, typed',
    await waitFor('closed', 'ticket 42'),
  ]);

  // After a failed update from 1.1.0: the log in words, and the way back to 1.0.0.
  const failing = appliance('after-failure');
  ferry(
    'install',
    join(work, 'bundles', 'acme-appliance-1.1.0-update.tar'),
    '--root',
    failing,
    '--yes',
  );
  mkdirSync(join(failing, 'fail'));
  writeFileSync(join(failing, 'fail', 'api.test'), '');
  open('after', failing, usb, [80, 24]);
  await waitFor('after', '[Enter] apply');
  tmux('send-keys', '-t', 'after', 'Enter');
  screens.push(['After a failure (80 × 24)', await waitFor('after', '[b] back to')]);
  tmux('send-keys', '-t', 'after', 'l');
  screens.push(["The transaction's log in words (l)", await waitFor('after', 'Transaction ')]);
  tmux('send-keys', '-t', 'after', 'l');
  await waitFor('after', '[l] the log');
  tmux('send-keys', '-t', 'after', 'b');
  screens.push(['Rollback, asked first (b)', await waitFor('after', '[y] roll back')]);
  tmux('send-keys', '-t', 'after', 'y');
  screens.push(['Rolled back to the release before', await waitFor('after', 'ROLLED BACK to')]);

  // A bundle for a newer Ferry that carries it: Enter would hand over.
  open('newer', appliance('needs-newer'), join(work, 'newer'), [80, 24]);
  screens.push([
    'A bundle that needs a newer Ferry, and carries it (Enter hands over)',
    await waitFor('newer', '[Enter] hand over'),
  ]);
} finally {
  spawnSync('tmux', ['-L', socket, 'kill-server']);
}

const text = [
  '# The console, screen by screen',
  '',
  'Captured from `ferry console` running in tmux (110 × 45 unless the title says 80 × 24) on the',
  'fixture appliance by',
  '`node scripts/console-screens.mjs`; paths are shortened to the capture folder.',
  '',
  ...screens.flatMap(([title, screen]) => [
    `## ${title}`,
    '',
    '```',
    screen.replaceAll(`${work}/`, ''),
    '```',
    '',
  ]),
].join('\n');
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(join(root, 'docs', 'console.md'), text);
console.log(`wrote docs/console.md (${screens.length} screens)`);

import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { openBundleMetadata } from '../../bundle/open.js';
import { openAppliance } from '../../installer/appliance.js';
import { discover } from '../../installer/console/discover.js';
import {
  EPOCH,
  ferry,
  json,
  ROOT,
  run,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';
import { initAppliance, sha256, snapshot } from './appliance.js';
import { Terminal } from './terminal.js';

const PLATFORM = `${process.platform}-${process.arch}`;
const CURRENT: string = (
  JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

let dir: string;
let ws: Workspace;
/** A stand-in for ferry-installer 9.0.0: says its version, and records that it ran and how. */
let fake: string;
const terminal = new Terminal();

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  fake = join(dir, 'ferry-installer');
  await writeFile(
    fake,
    [
      '#!/bin/sh',
      `if [ "$1" = --version ]; then echo '{"version": "9.0.0", "platform": "${PLATFORM}"}'; exit 0; fi`,
      `echo "$*" > "${dir}/ran"`,
      'echo "carried installer: $* (handed over by $FERRY_HANDED_OVER)"',
      // A console handed over to must get the operator's keys, not the console that handed over.
      'if [ "$1" = console ]; then read -r line; echo "it read: $line"; fi',
      'exit 7',
      '',
    ].join('\n'),
  );
  await chmod(fake, 0o755);
});

/** The fixture's first release with `minInstaller` (and the spec's `installer`) set. */
async function spec(name: string, fields: Record<string, string>): Promise<string> {
  const file = join(ws.product, `${name}.yaml`);
  const doc = parse(await readFile(join(ws.product, 'release-1.0.0.yaml'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(file, stringify({ ...doc, history: `./history-${name}`, ...fields }));
  return file;
}

async function build(
  specFile: string,
  format: string,
  ...extra: string[]
): Promise<{ result: RunResult; bundle: string }> {
  const result = await ferry(
    [
      'build',
      specFile,
      '--out',
      join(dir, 'out', basename(specFile, '.yaml'), format),
      '--key',
      ws.key,
      '--format',
      format,
      // every spec here is a variant of the first release, in a history of its own
      '--first-release',
      '--json',
      ...extra,
    ],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  );
  return { result, bundle: result.code === 0 ? json<{ bundle: string }>(result).bundle : '' };
}

async function appliance(name: string): Promise<string> {
  const root = join(dir, name);
  await initAppliance(ws, root);
  return root;
}

/** Flips one byte of the carried stand-in's text inside the bundle file; its size stays. */
async function tamper(bundle: string): Promise<void> {
  const bytes = await readFile(bundle);
  const at = bytes.lastIndexOf('carried installer:');
  expect(at).toBeGreaterThan(0);
  bytes[at] = 'C'.charCodeAt(0);
  await writeFile(bundle, bytes);
}

describe('a bundle that carries its installer', () => {
  it('signs its sha256, size, version and platform, and verify checks its bytes', async () => {
    const { result, bundle } = await build(
      await spec('signed', { minInstaller: '9.0.0' }),
      'zip',
      '--installer',
      fake,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({
      minInstaller: '9.0.0',
      installer: { version: '9.0.0', platform: PLATFORM },
    });
    const opened = await openBundleMetadata(bundle);
    await opened.reader.close();
    expect(opened.metadata.minInstaller).toBe('9.0.0');
    expect(opened.metadata.installer).toEqual({
      path: 'installer/ferry-installer',
      size: (await stat(fake)).size,
      sha256: sha256(await readFile(fake)),
      version: '9.0.0',
      platform: PLATFORM,
    });
    const inspect = await ferry(['inspect', bundle]);
    expect(inspect.stdout).toContain('needs      Ferry 9.0.0 or newer');
    expect(inspect.stdout).toContain(`carries    ferry-installer 9.0.0 (${PLATFORM}`);
    expect((await ferry(['verify', bundle, '--trust', ws.trust])).code).toBe(0);
    await tamper(bundle);
    const verify = await ferry(['verify', bundle, '--trust', ws.trust, '--json']);
    expect(verify.code).toBe(3);
    expect(json<{ error: { code: string; entry: string } }>(verify).error).toMatchObject({
      code: 'E_HASH_MISMATCH',
      entry: 'installer/ferry-installer',
    });
  });

  it('refuses to carry an installer older than minInstaller, or a file that is none', async () => {
    const older = await build(
      await spec('older', { minInstaller: '9.1.0' }),
      'tar',
      '--installer',
      fake,
    );
    expect(older.result.code).toBe(2);
    expect(older.result.stderr).toContain('E_SPEC_INVALID');
    expect(older.result.stderr).toContain('older than minInstaller 9.1.0');
    const none = await build(
      await spec('none', {}),
      'tar',
      '--installer',
      join(ws.product, 'release-1.0.0.yaml'),
    );
    expect(none.result.code).toBe(2);
    expect(none.result.stderr).toContain('E_SPEC_PATH');
  });

  it.each(['tar', 'zip', 'tar.gz'])(
    'hands a %s over: the carried installer runs once, with the same arguments',
    async (format) => {
      const { result, bundle } = await build(
        await spec(`handover-${format.replace('.', '-')}`, {
          minInstaller: '9.0.0',
          installer: '../ferry-installer',
        }),
        format,
      );
      expect(result.code, result.stderr).toBe(0);
      const root = await appliance(`handover-${format}`);
      const args = ['install', bundle, '--root', root, '--yes', '--reason', 'two words'];
      const handed = await ferry(args);
      expect(handed.stderr).toContain('handing over to the installer it carries (Ferry 9.0.0');
      // The stand-in's exit status and output are the command's.
      expect(handed.code).toBe(7);
      expect(handed.stdout).toBe(
        `carried installer: ${args.join(' ')} (handed over by ${CURRENT})\n`,
      );
      const copy = join(root, 'var/lib/ferry/bin/ferry-installer-9.0.0');
      expect(sha256(await readFile(copy))).toBe(sha256(await readFile(fake)));
      expect((await stat(copy)).mode & 0o777).toBe(0o755);
      // Started by a hand-over, a Ferry still too old refuses rather than hands over again.
      const again = await ferry([...args, '--json'], { env: { FERRY_HANDED_OVER: '0.0.1' } });
      expect(again.code).toBe(2);
      expect(json<{ error: { code: string } }>(again).error.code).toBe('E_INSTALLER_TOO_OLD');
    },
  );

  it('keeps only the newest installers: those older than the one handed over to are removed', async () => {
    const { result, bundle } = await build(
      await spec('retention', { minInstaller: '9.0.0', installer: '../ferry-installer' }),
      'tar',
    );
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('retention');
    const bin = join(root, 'var/lib/ferry/bin');
    await mkdir(bin, { recursive: true });
    // Left by earlier hand-overs (about 100 MiB each), a newer one, and what is no installer.
    for (const name of [
      'ferry-installer-1.0.0',
      'ferry-installer-8.9.9',
      'ferry-installer-10.0.0',
      'notes.txt',
    ])
      await writeFile(join(bin, name), name);
    const handed = await ferry(['install', bundle, '--root', root, '--yes']);
    expect(handed.code, handed.stderr).toBe(7);
    expect((await readdir(bin)).sort()).toEqual([
      'ferry-installer-10.0.0',
      'ferry-installer-9.0.0',
      'notes.txt',
    ]);
  });

  it('refuses a tampered carried installer before it runs, and changes nothing', async () => {
    const { bundle } = await build(
      await spec('tampered', { minInstaller: '9.0.0', installer: '../ferry-installer' }),
      'tar',
    );
    await tamper(bundle);
    await rm(join(dir, 'ran'), { force: true });
    const root = await appliance('tampered');
    const before = await snapshot(root);
    for (const args of [
      ['install', bundle, '--root', root, '--yes'],
      ['plan', bundle, '--root', root],
    ]) {
      const result = await ferry([...args, '--json']);
      expect(result.code, result.stderr).toBe(3);
      expect(json<{ error: { code: string } }>(result).error.code).toBe('E_HASH_MISMATCH');
    }
    expect(await snapshot(root)).toEqual(before);
    await expect(stat(join(dir, 'ran'))).rejects.toThrow();
  });

  it('a bundle that needs a newer Ferry and carries none: E_INSTALLER_TOO_OLD names the version', async () => {
    const { result, bundle } = await build(await spec('bare', { minInstaller: '9.0.0' }), 'tar');
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('bare');
    const before = await snapshot(root);
    for (const args of [
      ['install', bundle, '--root', root, '--yes'],
      ['plan', bundle, '--root', root],
    ]) {
      const refused = await ferry([...args, '--json']);
      expect(refused.code).toBe(2);
      const { error } = json<{ error: { code: string; message: string; hint: string } }>(refused);
      expect(error.code).toBe('E_INSTALLER_TOO_OLD');
      expect(error.message).toContain('needs Ferry 9.0.0 or newer');
      expect(error.hint).toContain('carries no installer');
    }
    // The console lists it as not applicable, for that reason.
    const [candidate] = await discover(await openAppliance(root), [dirname(bundle)], []);
    expect(candidate?.problem?.code).toBe('E_INSTALLER_TOO_OLD');
    expect(await snapshot(root)).toEqual(before);
  });

  describe.skipIf(process.getuid?.() !== 0)('on an appliance whose var/lib/ferry/bin is', () => {
    /** An appliance with a tmpfs mounted (these options) where carried installers go; null where nothing can be mounted. */
    async function mounted(name: string, options: string): Promise<string | null> {
      const root = await appliance(name);
      const bin = join(root, 'var/lib/ferry/bin');
      await mkdir(bin, { recursive: true });
      const done = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', bin]);
      return done.status === 0 ? root : null;
    }

    async function handOverTo(name: string, options: string, fill = false) {
      const { result, bundle } = await build(
        await spec(name, { minInstaller: '9.0.0', installer: '../ferry-installer' }),
        'tar',
      );
      expect(result.code, result.stderr).toBe(0);
      const root = await mounted(name, options);
      if (root === null) return null; // a container without CAP_SYS_ADMIN
      const bin = join(root, 'var/lib/ferry/bin');
      try {
        if (fill) await writeFile(join(bin, 'filler'), Buffer.alloc(64 * 1024)).catch(() => {});
        const handed = await ferry(['install', bundle, '--root', root, '--yes', '--json']);
        return {
          handed,
          bin,
          error: json<{ error: { code: string; message: string; hint: string } }>(handed).error,
        };
      } finally {
        spawnSync('umount', [bin]);
      }
    }

    it('mounted noexec: the copied installer cannot run, and the hint says why and what to do', async () => {
      const got = await handOverTo('noexec', 'noexec,size=1m');
      if (got === null) return;
      expect(got.handed.code).toBe(1);
      expect(got.error.code).toBe('E_IO');
      expect(got.error.message).toContain("its bytes match the bundle's signature");
      expect(got.error.hint).toContain('noexec');
      expect(got.error.hint).toContain(`cp ${got.bin}/ferry-installer-9.0.0`);
    });

    it('full: E_NO_SPACE names the folder and the carried installer, not the staging', async () => {
      const got = await handOverTo('full', 'size=64k', true);
      if (got === null) return;
      expect(got.handed.code).toBe(1);
      expect(got.error.code).toBe('E_NO_SPACE');
      expect(got.error.message).toContain(`no room in ${got.bin} for the installer it carries`);
      expect(got.error.hint).toContain(`in ${got.bin}`);
    });
  });

  it('a journal a newer Ferry wrote (the one handed over to, killed) is not recovered by an older one', async () => {
    const { result, bundle } = await build(await spec('journal', {}), 'tar');
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('journal');
    // A power cut in the install: a journal with a header and steps.
    const cut = await ferry(['install', bundle, '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '3' },
    });
    expect(cut.code).toBe(-1);
    const header = join(root, 'var/lib/ferry/journal/transaction.json');
    const text = (await readFile(header, 'utf8')).trimEnd().slice(17);
    expect(JSON.parse(text)).toMatchObject({ ferry: CURRENT });
    /** The header as Ferry `version` would have sealed it. */
    const writtenBy = async (version: string) => {
      const record = JSON.stringify({ ...JSON.parse(text), ferry: version });
      await writeFile(header, `${sha256(Buffer.from(record)).slice(0, 16)} ${record}\n`);
    };
    await writtenBy('99.0.0');
    const lock = ['var/lib/ferry/lock'];
    const before = await snapshot(root, lock);
    for (const args of [['recover'], ['install', bundle, '--yes'], ['rollback', '--yes']]) {
      const refused = await ferry([...args, '--root', root, '--json']);
      expect(refused.code, `${args[0]}: ${refused.stderr}`).toBe(2);
      const { error } = json<{ error: { code: string; message: string; hint: string } }>(refused);
      expect(error.code).toBe('E_INSTALLER_TOO_OLD');
      expect(error.message).toContain(`Ferry 99.0.0 wrote its journal; this is Ferry ${CURRENT}`);
      expect(error.hint).toContain(`recover with Ferry 99.0.0 or newer`);
    }
    expect(await snapshot(root, lock)).toEqual(before);
    // Status still says what is open.
    expect((await ferry(['status', '--root', root])).stdout).toContain('INTERRUPTED');
    // The installer handed over to is kept on the appliance: the hint names it.
    const kept = join(root, 'var/lib/ferry/bin/ferry-installer-99.0.0');
    await mkdir(dirname(kept), { recursive: true });
    await writeFile(kept, '');
    const named = await ferry(['recover', '--root', root, '--json']);
    expect(json<{ error: { hint: string } }>(named).error.hint).toContain(
      `${kept} recover --root ${root}`,
    );
    // Written by this Ferry (or an older one): recovered as before.
    await writtenBy(CURRENT);
    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
  });

  describe('in the console', () => {
    /** A stick holding one bundle built from a spec with these fields, and an appliance. */
    async function stick(name: string, fields: Record<string, string>, tampered = false) {
      const { result, bundle } = await build(await spec(name, fields), 'tar');
      expect(result.code, result.stderr).toBe(0);
      if (tampered) await tamper(bundle);
      return { media: dirname(bundle), root: await appliance(name) };
    }

    /** The console on that stick, Enter pressed on its hand-over; returns what the appliance held before. */
    async function enterHandOver(session: string, media: string, root: string) {
      await rm(join(dir, 'ran'), { force: true });
      const before = await snapshot(root);
      terminal.ferry(session, ['console', '--root', root, '--media', media], {
        width: 150,
        height: 40,
      });
      await terminal.waitFor(session, '[Enter] hand over to Ferry 9.0.0');
      terminal.keys(session, 'Enter');
      return before;
    }

    it("Enter on a bundle that carries the Ferry it needs hands over, with the console's arguments", async () => {
      const { media, root } = await stick('console-handover', {
        minInstaller: '9.0.0',
        installer: '../ferry-installer',
      });
      const args = ['console', '--root', root, '--media', media];
      // Wide enough for the stand-in's line, with its long paths, on one row.
      terminal.ferry('handover', args, { width: 300, height: 40 });
      const shown = await terminal.waitFor('handover', '[Enter] hand over to Ferry 9.0.0');
      expect(shown).toContain('it needs Ferry 9.0.0 or newer: acme-appliance 1.0.0');
      terminal.keys('handover', 'Enter');
      await terminal.waitFor(
        'handover',
        `carried installer: ${args.join(' ')} (handed over by ${CURRENT})`,
      );
      terminal.keys('handover', 'typed after the hand-over', 'Enter');
      const end = await terminal.waitFor('handover', 'exit=7');
      expect(end).toContain('it read: typed after the hand-over');
      const copy = join(root, 'var/lib/ferry/bin/ferry-installer-9.0.0');
      expect(sha256(await readFile(copy))).toBe(sha256(await readFile(fake)));
    });

    it('a tampered carried installer: the console says so, runs nothing and changes nothing', async () => {
      const { media, root } = await stick(
        'console-tampered',
        { minInstaller: '9.0.0', installer: '../ferry-installer' },
        true,
      );
      const before = await enterHandOver('tampered', media, root);
      const shown = await terminal.waitFor('tampered', 'NOT APPLIED: E_HASH_MISMATCH');
      expect(shown).toContain('installer/ferry-installer');
      terminal.keys('tampered', 'q');
      await terminal.waitFor('tampered', 'exit=1');
      expect(await snapshot(root)).toEqual(before);
      await expect(stat(join(dir, 'ran'))).rejects.toThrow();
    });

    it('q while the carried installer is being copied stops the copy and removes it; nothing runs', async () => {
      // A carried installer large enough that its copy is still under way when q comes:
      // the stand-in's script, then zeros the shell never reaches.
      const big = join(dir, 'big-installer');
      await writeFile(big, await readFile(fake));
      await truncate(big, 768 * 2 ** 20);
      await chmod(big, 0o755);
      const { media, root } = await stick('console-quit', {
        minInstaller: '9.0.0',
        installer: '../big-installer',
      });
      const before = await enterHandOver('quitting', media, root);
      const bin = join(root, 'var/lib/ferry/bin');
      const copying = async () =>
        (await readdir(bin).catch(() => [])).some((name) => name.endsWith('.tmp'));
      await expect.poll(copying, { interval: 10, timeout: 30_000 }).toBe(true);
      terminal.keys('quitting', 'q');
      await terminal.waitFor('quitting', 'exit=0');
      // The folder the copy made went with it: the appliance is as it was, and nothing ran.
      await expect(stat(bin)).rejects.toThrow();
      expect(await snapshot(root)).toEqual(before);
      await expect(stat(join(dir, 'ran'))).rejects.toThrow();
    });

    it('a bundle that needs a newer Ferry and carries none: the console says why, Enter does nothing', async () => {
      const { media, root } = await stick('console-bare', { minInstaller: '9.0.0' });
      const before = await snapshot(root);
      terminal.ferry('bare', ['console', '--root', root, '--media', media], {
        width: 150,
        height: 40,
      });
      const shown = await terminal.waitFor('bare', 'What to do:');
      expect(shown).toContain('E_INSTALLER_TOO_OLD');
      expect(shown).toContain('needs Ferry 9.0.0 or newer');
      expect(shown).toContain('carries no installer');
      expect(shown).not.toContain('[Enter]');
      terminal.keys('bare', 'Enter');
      await terminal.waitFor('bare', 'Enter does nothing');
      terminal.keys('bare', 'q');
      await terminal.waitFor('bare', 'exit=0');
      expect(await snapshot(root)).toEqual(before);
    });
  });
});

describe('an installer handed over to, on a terminal', () => {
  it('one Ctrl-C is one stop request, though it reaches it twice (the terminal, and forwarded); a second still says it is stopping', async () => {
    // The older Ferry is this code calling itself 0.0.1 (one script, no executable to build);
    // the carried one runs the current script, so it is the current code that gets the signals.
    const older = join(dir, 'older-script');
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs'), '--script-only'], {
      cwd: ROOT,
      env: { ...process.env, FERRY_PACKAGE_VERSION: '0.0.1', FERRY_PACKAGE_OUT: older },
    });
    const carried = join(dir, 'carried-current');
    await writeFile(
      carried,
      [
        '#!/bin/sh',
        `if [ "$1" = --version ]; then echo '{"version": "${CURRENT}", "platform": "${PLATFORM}"}'; exit 0; fi`,
        `exec "${process.execPath}" "${join(ROOT, 'dist', 'package', 'ferry.mjs')}" "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(carried, 0o755);
    // db's pre-validate waits while $FERRY_ROOT/hold is there.
    await writeFile(
      join(ws.product, 'hold.sh'),
      '#!/bin/sh\necho held > "$FERRY_ROOT/held"\nwhile [ -e "$FERRY_ROOT/hold" ]; do sleep 0.1; done\n',
    );
    await chmod(join(ws.product, 'hold.sh'), 0o755);
    const file = await spec('held', { minInstaller: CURRENT });
    const doc = parse(await readFile(file, 'utf8')) as {
      components: { db: { artifacts: Record<string, string[]> } };
    };
    doc.components.db.artifacts['pre-validate'] = ['./hold.sh'];
    await writeFile(file, stringify(doc));
    const { result, bundle } = await build(file, 'tar', '--installer', carried);
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('held');
    const before = await snapshot(root);
    await writeFile(join(root, 'hold'), '');
    terminal.run(
      'held',
      [process.execPath, join(older, 'ferry.mjs'), 'install', bundle, '--root', root, '--yes'],
      { width: 200, height: 50 },
    );
    await terminal.waitFor('held', 'handing over');
    await expect
      .poll(
        () =>
          stat(join(root, 'held')).then(
            () => true,
            () => false,
          ),
        { timeout: 30_000 },
      )
      .toBe(true);
    const stopping = 'SIGINT: stopping at the next safe point; nothing has been changed';
    const again = 'SIGINT: already stopping';
    const count = (screen: string, text: string) => screen.split(text).length - 1;
    terminal.keys('held', 'C-c');
    await terminal.waitFor('held', stopping);
    // Well past the time a forwarded copy takes to arrive.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    let screen = terminal.screen('held');
    expect(count(screen, stopping)).toBe(1);
    expect(count(screen, again)).toBe(0);
    // The operator's second Ctrl-C is a second request, and is answered as one.
    terminal.keys('held', 'C-c');
    await terminal.waitFor('held', again);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(count(terminal.screen('held'), again)).toBe(1);
    await rm(join(root, 'hold'));
    screen = await terminal.waitFor('held', 'exit=');
    expect(screen).toContain('interrupted by SIGINT');
    expect(screen).toContain('exit=1');
    expect(count(screen, again)).toBe(1);
    await rm(join(root, 'held'));
    // Nothing changed but the record of the attempt and the carried installer kept for good.
    const after = await snapshot(root);
    for (const [path, value] of Object.entries(before)) expect(after[path], path).toEqual(value);
  }, 120_000);
});

describe('hand-over from an older build of ferry-installer to the current one', () => {
  const older = () => join(dir, 'older', 'ferry-installer');
  const current = join(ROOT, 'dist', 'package', 'ferry-installer');

  beforeAll(() => {
    // Both are rebuilt only when their inputs changed (scripts/package.mjs); the older
    // one is this code calling itself 0.0.1, which is all a hand-over looks at.
    const env = { ...process.env };
    delete env.FERRY_NODE_BINARY;
    const script = join(ROOT, 'scripts', 'package.mjs');
    execFileSync(process.execPath, [script], { cwd: ROOT, env });
    execFileSync(process.execPath, [script], {
      cwd: ROOT,
      env: { ...env, FERRY_PACKAGE_VERSION: '0.0.1', FERRY_PACKAGE_OUT: join(dir, 'older') },
    });
  }, 600_000);

  it('the older one verifies, copies and runs the carried one, which installs', async () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const version = await run(older(), ['--version', '--json'], { env });
    expect(json(version)).toMatchObject({ version: '0.0.1' });
    const { result, bundle } = await build(
      await spec('packaged', { minInstaller: CURRENT }),
      'zip',
      '--installer',
      current,
    );
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('packaged');
    const installed = await run(older(), ['install', bundle, '--root', root, '--yes', '--json'], {
      env,
    });
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stderr).toContain(`this is 0.0.1: handing over`);
    const last = installed.stdout.trim().split('\n').at(-1) as string;
    expect(JSON.parse(last)).toMatchObject({ type: 'result', outcome: 'committed', to: '1.0.0' });
    const copy = join(root, `var/lib/ferry/bin/ferry-installer-${CURRENT}`);
    expect(sha256(await readFile(copy))).toBe(sha256(await readFile(current)));
    const status = await run(older(), ['status', '--root', root, '--json'], { env });
    expect(json(status)).toMatchObject({ release: '1.0.0' });
  });

  it("the older one's console hands over to the carried one's, where Enter installs", async () => {
    const { result, bundle } = await build(
      await spec('packaged-console', { minInstaller: CURRENT }),
      'tar',
      '--installer',
      current,
    );
    expect(result.code, result.stderr).toBe(0);
    const root = await appliance('packaged-console');
    // As from a bare login: no variable but PATH (and TERM), none of the test runner's.
    terminal.run('sea', [older(), 'console', '--root', root, '--media', dirname(bundle)], {
      clean: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      width: 300,
      height: 50,
    });
    await terminal.waitFor('sea', `[Enter] hand over to Ferry ${CURRENT}`);
    terminal.keys('sea', 'Enter');
    await terminal.waitFor('sea', 'this is 0.0.1: handing over');
    await terminal.waitFor('sea', '[Enter] apply');
    terminal.keys('sea', 'Enter');
    await terminal.waitFor('sea', 'COMMITTED: acme-appliance is now at 1.0.0');
    terminal.keys('sea', 'q');
    await terminal.waitFor('sea', 'exit=0');
    const status = await run(current, ['status', '--root', root, '--json'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    expect(json(status)).toMatchObject({ release: '1.0.0' });
  }, 120_000);
});

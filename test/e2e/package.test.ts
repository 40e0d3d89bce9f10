import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { isBuiltin } from 'node:module';
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildAll,
  ferry,
  json,
  ROOT,
  run,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  installOk,
  markers,
  RECORDS,
  sha256,
  snapshot,
} from './appliance.js';
import { inRoot, minimalRoot, runIn, skipReason } from './minimal-root.js';
import { Terminal } from './terminal.js';

const PACKAGE = join(ROOT, 'dist', 'package');
const EXECUTABLE = join(PACKAGE, 'ferry-installer');

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'bundles'), 'zip');
  // The executable is rebuilt only when its inputs changed (scripts/package.mjs).
  const env = { ...process.env };
  delete env.FERRY_NODE_BINARY;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs')], { cwd: ROOT, env });
}, 600_000);

describe('the packaged installer', () => {
  it('installs a fixture bundle from a folder with nothing but itself', async () => {
    const stick = join(dir, 'usb-stick');
    await mkdir(stick);
    await copyFile(join(PACKAGE, 'ferry.mjs'), join(stick, 'ferry.mjs'));
    await copyFile(bundles['1.0.0'] as string, join(stick, 'release.zip'));
    expect(await readdir(stick)).toEqual(['ferry.mjs', 'release.zip']);
    const runStick = (...args: string[]) =>
      spawnSync(process.execPath, [join(stick, 'ferry.mjs'), ...args], {
        cwd: stick,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
    const root = join(dir, 'appliance');
    expect(
      runStick(
        'init',
        '--root',
        root,
        '--product',
        'acme-appliance',
        '--platform',
        'acme-os@7.2.1',
        '--trust',
        ws.trust,
      ).status,
    ).toBe(0);
    const install = runStick('install', 'release.zip', '--root', root, '--yes');
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toContain('COMMITTED: acme-appliance is at 1.0.0');
    const status = runStick('status', '--root', root, '--verify', '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({ release: '1.0.0', problems: [] });
  });

  it('builds, publishes, promotes and pulls as a CI runner with only Node and ferry.mjs does', async () => {
    const runner = join(dir, 'ci-runner');
    await mkdir(runner);
    await copyFile(join(PACKAGE, 'ferry.mjs'), join(runner, 'ferry.mjs'));
    const ci = (...args: string[]) =>
      spawnSync(process.execPath, [join(runner, 'ferry.mjs'), ...args], {
        cwd: runner,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FERRY_STATE_DIR: join(runner, 'state') },
      });
    const built = ci(
      'build',
      join(ws.product, 'release-1.0.0.yaml'),
      '--out',
      join(runner, 'out'),
      '--key',
      ws.key,
      '--first-release',
      '--json',
    );
    expect(built.status, built.stderr).toBe(0);
    const bundle = (JSON.parse(built.stdout) as { bundle: string }).bundle;
    const repo = join(runner, 'repository');
    const common = ['--repo', repo, '--key', ws.key];
    const publish = ci('publish', bundle, ...common, '--trust', ws.trust, '--channel', 'dev');
    expect(publish.status, publish.stderr).toBe(0);
    const promote = ci(
      'promote',
      '1.0.0',
      ...common,
      '--from',
      'dev',
      '--to',
      'beta',
      '--approved-by',
      'qa',
    );
    expect(promote.status, promote.stderr).toBe(0);
    const pull = ci(
      'pull',
      '--repo',
      repo,
      '--channel',
      'beta',
      '--out',
      join(runner, 'pulled'),
      '--json',
    );
    expect(pull.status, pull.stderr).toBe(0);
    const pulled = (JSON.parse(pull.stdout) as { bundle: string }).bundle;
    expect((await readFile(pulled)).equals(await readFile(bundle))).toBe(true);
  });

  it('requires nothing but Node’s own modules, so no folder on disk can hand it one', async () => {
    const text = await readFile(join(PACKAGE, 'ferry.mjs'), 'utf8');
    const required = [
      ...[...text.matchAll(/__require\("([^"]+)"\)/g)].map((match) => match[1] as string),
      ...[...text.matchAll(/^import .* from "([^"]+)";$/gm)].map((match) => match[1] as string),
    ];
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((name) => !isBuiltin(name))).toEqual([]);
  });
});

describe('ferry-installer, the single executable', () => {
  const installer = (args: readonly string[], env: Record<string, string> = {}) =>
    run(EXECUTABLE, args, { env });

  it('loads Node’s modules a command asks for only when it runs (the policy read here; the terminal’s questions alike)', async () => {
    // Compiled from V8's code cache, the executable has no loader for import():
    // `policy --set` (and the DVD swap's question) failed with E_INTERNAL.
    const repo = join(dir, 'sea-repository');
    const common = ['--repo', repo, '--key', ws.key];
    const published = await installer([
      'publish',
      bundles['1.0.0'] as string,
      ...common,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    expect(published.code, published.stderr).toBe(0);
    const policy = join(dir, 'sea-policy.yaml');
    await writeFile(
      policy,
      'formatVersion: 1\nchannels:\n  dev: {}\n  beta: {}\nedges: [[dev, beta]]\n',
    );
    const set = await installer(['policy', ...common, '--set', policy]);
    expect(set.code, set.stderr).toBe(0);
    expect((await installer(['policy', '--repo', repo, '--json'])).stdout).toContain('"beta"');
  });

  it('puts itself on volume 1 of `ferry media`, and installs from the volumes', async () => {
    const tar = (await buildAll(ws, join(dir, 'tar'), 'tar', ['1.0.0']))['1.0.0'] as string;
    const out = join(dir, 'volumes');
    const made = await installer([
      'media',
      tar,
      '--out',
      out,
      '--key',
      ws.key,
      '--volume-size',
      '1100K',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const carried = join(out, 'vol1', 'ferry-installer');
    expect(spawnSync('cmp', ['-s', carried, EXECUTABLE]).status).toBe(0);
    const sums = spawnSync('sha256sum', ['-c', 'FERRY/SHA256SUM.TXT'], {
      cwd: join(out, 'vol1'),
      encoding: 'utf8',
    });
    expect(sums.stdout).toContain('ferry-installer: OK');
    const root = join(dir, 'from-volumes');
    const carry = (...args: string[]) => run(carried, args, { env: {} });
    const init = await carry(
      'init',
      '--root',
      root,
      '--product',
      'acme-appliance',
      '--platform',
      'acme-os@7.2.1',
      '--trust',
      ws.trust,
    );
    expect(init.code, init.stderr).toBe(0);
    const install = await carry('install', join(out, 'vol1'), '--root', root, '--yes');
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('COMMITTED: acme-appliance is at 1.0.0');
  });

  it('tells its version, the sha256 of its own file and its Node', async () => {
    const result = await installer(['--version', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const bytes = await readFile(EXECUTABLE);
    const hash = createHash('sha256').update(bytes).digest('hex');
    // Nothing of the machine that built it: the same inputs give the same file.
    expect(bytes.includes(ROOT)).toBe(false);
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const output: unknown = JSON.parse(result.stdout);
    // The shape `ferry --version --json` publishes (manifest-schema/schemas/output-version.json).
    const schema = JSON.parse(
      await readFile(join(ROOT, 'manifest-schema', 'schemas', 'output-version.json'), 'utf8'),
    ) as object;
    const validate = new Ajv({ strict: false }).compile(schema);
    expect(validate(output), new Ajv().errorsText(validate.errors)).toBe(true);
    expect(output).toEqual({
      schemaVersion: 1,
      name: 'ferry',
      version,
      executable: EXECUTABLE,
      sha256: hash,
      node: process.version,
      platform: `linux-${process.arch}`,
    });
    expect(await readFile(`${EXECUTABLE}.sha256`, 'utf8')).toBe(`${hash}  ferry-installer\n`);
    // The CLI keeps its own version string: the two must not drift apart.
    const cli = spawnSync(process.execPath, [join(PACKAGE, 'ferry.mjs'), '--version'], {
      encoding: 'utf8',
    });
    expect((await installer(['--version'])).stdout).toBe(cli.stdout);
    expect(cli.stdout).toBe(`ferry ${version}\n`);
  });

  it.each([
    ['NODE_OPTIONS', '--max-old-space-size=256'],
    ['OPENSSL_CONF', '/dev/null'],
    ['LD_PRELOAD', 'libc.so.6'],
    ['LD_AUDIT', 'libc.so.6'],
    // A folder holding a libdl.so.2 of someone else's is loaded, constructor and all.
    ['LD_LIBRARY_PATH', '/usr/lib'],
  ])('refuses to run with %s set, before loading Ferry', async (name, value) => {
    const result = await installer(['status', '--root', dir, '--json'], { [name]: value });
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({
      error: { code: 'E_UNSAFE_ENVIRONMENT' },
    });
    expect(result.stderr).toContain(name);
  });

  it('opens no debugger on SIGUSR1: Node would listen on 127.0.0.1:9229, and whoever connects runs code as root', async () => {
    // Held in web's pre-validate artifact (the fixture waits while its trigger exists): a
    // command that is running when the signal comes, its listeners set, nothing changed yet.
    const root = join(dir, 'debugger-appliance');
    await initAppliance(ws, root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.pre-validate'), '');
    const install = ['install', bundles['1.0.0'] as string, '--root', root, '--yes'];
    const child = spawn(EXECUTABLE, install, {
      env: {},
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const held = async () =>
      (await markers(root)).some((line) => line.startsWith('pre-validate web'));
    await expect.poll(held, { interval: 20, timeout: 20_000 }).toBe(true);
    child.kill('SIGUSR1');
    await expect.poll(() => stderr, { interval: 20, timeout: 5_000 }).toContain('SIGUSR1 ignored');
    await rm(join(root, 'hang'), { recursive: true });
    expect(await exited, stderr).toBe(0);
    expect(stderr).not.toContain('Debugger listening');
    expect(stderr).not.toContain('inspector');
  });

  it('a console that cannot write its screen module (a full /tmp) says where it tried, and leaves nothing', async () => {
    // A file-size limit makes every write of it fail (EFBIG), as a full folder's would.
    const full = join(dir, 'full-tmp');
    await mkdir(full);
    const limited = spawnSync(
      'sh',
      ['-c', `ulimit -f 1024; exec "$0" console --root "${dir}"`, EXECUTABLE],
      { encoding: 'utf8', env: { FERRY_TMP: full } },
    );
    expect(limited.status, limited.stderr).toBe(1);
    expect(limited.stderr).toContain(
      `E_IO: no folder to unpack the installer's console into (FERRY_TMP): ${full}: EFBIG`,
    );
    expect(limited.stderr).toContain('MiB free');
    expect(limited.stderr).not.toContain('E_INTERNAL');
    expect(await readdir(full)).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a full TMPDIR: the console unpacks in the next folder instead',
    async () => {
      const full = join(dir, 'full-tmpfs');
      await mkdir(full);
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', full]);
      if (mounted.status !== 0) return; // no mount here (a container without CAP_SYS_ADMIN)
      try {
        const fallback = await installer(['console', '--root', dir], { TMPDIR: full });
        expect(fallback.stderr).toContain('E_USAGE: ferry console needs a terminal');
        expect(await readdir(full)).toEqual([]);
      } finally {
        spawnSync('umount', [full]);
      }
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    "refuses a temp folder inside another user's folder: they could rename ours away and put theirs in its place",
    async () => {
      const theirs = join(dir, 'home-of-another');
      const inner = join(theirs, 'tmp');
      await mkdir(inner, { recursive: true });
      execFileSync('chown', ['12345', theirs]);
      const refused = await installer(['console', '--root', dir], { FERRY_TMP: inner });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        `${inner}: ${theirs} above it belongs to another user (uid 12345)`,
      );
      expect(await readdir(inner)).toEqual([]);
    },
  );

  it('unpacks the console from an unusable TMPDIR elsewhere, and says which folders it could not use', async () => {
    // Without a terminal the console refuses (E_USAGE), but only once it is unpacked and loaded.
    const console = ['console', '--root', dir];
    const fallback = await installer(console, { TMPDIR: join(dir, 'no-such-folder') });
    expect(fallback.stderr).toContain('E_USAGE: ferry console needs a terminal');
    const missing = await installer(console, { FERRY_TMP: join(dir, 'nowhere') });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('E_IO');
    // A folder anyone may write to without the sticky bit: another user could swap the bundle.
    const open = join(dir, 'open-to-all');
    await mkdir(open);
    await chmod(open, 0o777);
    const unsafe = await installer(console, { FERRY_TMP: open });
    expect(unsafe.code).toBe(1);
    expect(unsafe.stderr).toContain(open);
    expect(await readdir(open)).toEqual([]);
  });

  // The arm64 build of the README: another Node binary of this version, no code cache
  // (V8 makes one only for the architecture it runs on). Here that binary is this
  // machine's own, so that what is built can run.
  it('FERRY_NODE_BINARY: builds from that Node binary, without a code cache, and refuses another version', async () => {
    const out = join(dir, 'from-binary');
    const env = { ...process.env, FERRY_PACKAGE_OUT: out };
    const script = join(ROOT, 'scripts', 'package.mjs');
    execFileSync(process.execPath, [script], {
      cwd: ROOT,
      env: { ...env, FERRY_NODE_BINARY: process.execPath },
    });
    const built = join(out, `ferry-installer-linux-${process.arch}`);
    const version = await run(built, ['--version', '--json'], { env: {} });
    expect(json(version)).toMatchObject({ sha256: sha256(await readFile(built)) });
    const root = join(out, 'appliance');
    await initAppliance(ws, root);
    const status = await run(built, ['status', '--root', root, '--json'], { env: {} });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toBe((await ferry(['status', '--root', root, '--json'])).stdout);
    // An ELF header of this architecture, but not this Node: the blob would not fit it.
    const other = join(dir, 'other-node');
    await writeFile(other, (await readFile(process.execPath)).subarray(0, 4096));
    const refused = spawnSync(process.execPath, [script], {
      cwd: ROOT,
      env: { ...env, FERRY_NODE_BINARY: other },
      encoding: 'utf8',
    });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${other} is not Node ${process.version}`);
  }, 300_000);
});

/**
 * Paths, transaction ids and times differ between the two appliances; nothing
 * else may. Progress events go: components stage in parallel, so theirs
 * interleave differently from run to run.
 */
function normalise(text: string, root: string): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('{"type":"progress"'))
    .join('\n')
    .replaceAll(root, '<root>')
    .replaceAll(join(dir, 'bundles'), '<media>')
    .replaceAll('/media/', '<media>/')
    .replace(/\d{8}T\d{6}-[0-9a-f]{6}/g, '<id>')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>');
}

const reason = skipReason();
describe.skipIf(reason !== null)(
  `ferry-installer alone in an empty root${reason ? ` (skipped: ${reason})` : ''}`,
  () => {
    // Inside: the executable, its libraries, the artifacts' five programs, an
    // empty /tmp, the bundles in /media and appliances; an empty environment.
    let newRoot: string;
    let base: string;
    const terminal = new Terminal();

    beforeAll(async () => {
      newRoot = join(dir, 'new-root');
      await minimalRoot(newRoot, EXECUTABLE, 'ferry-installer');
      await mkdir(join(newRoot, 'media'));
      for (const bundle of Object.values(bundles))
        await copyFile(bundle, join(newRoot, 'media', basename(bundle)));
      base = join(dir, 'at-1.0.0');
      await initAppliance(ws, base);
      await installOk(bundles['1.0.0'] as string, base);
    }, 120_000);

    // Ten runs of each installer, and a terminal: slow on a loaded machine.
    it('plans, installs, rolls back and reports exactly as bin/ferry does', async () => {
      const outside = join(dir, 'outside');
      await cloneAppliance(base, outside);
      await cloneAppliance(base, join(newRoot, 'appliance'));
      const media = join(dir, 'bundles');
      const bundle = (release: string) => basename(bundles[release] as string);
      type Args = (root: string, media: string) => string[];
      const install: Args = (root, m) => [
        'install',
        join(m, bundle('1.3.0')),
        '--root',
        root,
        '--yes',
        '--json',
      ];
      const steps: Array<{ args: Args; fail?: string }> = [
        { args: (root, m) => ['plan', join(m, bundle('1.3.0')), '--root', root, '--json'] },
        { args: install, fail: 'web.test' },
        { args: install },
        { args: (root) => ['status', '--root', root, '--verify', '--json'] },
        { args: (root, m) => ['plan', join(m, bundle('1.1.0')), '--root', root, '--json'] },
      ];
      const codes: number[] = [];
      for (const step of steps) {
        for (const root of [outside, join(newRoot, 'appliance')]) {
          await rm(join(root, 'fail'), { recursive: true, force: true });
          if (step.fail) {
            await mkdir(join(root, 'fail'));
            await writeFile(join(root, 'fail', step.fail), '');
          }
        }
        const [mine, theirs] = await Promise.all([
          ferry(step.args(outside, media)),
          runIn(newRoot, ['/ferry-installer', ...step.args('/appliance', '/media')]),
        ]);
        expect(theirs.code, theirs.stderr).toBe(mine.code);
        expect(normalise(theirs.stderr, '/appliance')).toBe(normalise(mine.stderr, outside));
        expect(normalise(theirs.stdout, '/appliance')).toBe(normalise(mine.stdout, outside));
        codes.push(theirs.code);
      }
      // The steps cover a plan, a rollback, a commit, a status and a blocked plan.
      expect(codes).toEqual([0, 1, 0, 0, 4]);
      // The same files, and the same records of what happened.
      const records = ['var/lib/ferry/state.json', 'var/log/acme-markers.log'];
      const unrecorded = [...RECORDS, ...records];
      expect(await snapshot(join(newRoot, 'appliance'), unrecorded)).toEqual(
        await snapshot(outside, unrecorded),
      );
      for (const record of records)
        expect(
          normalise(await readFile(join(newRoot, 'appliance', record), 'utf8'), '/appliance'),
        ).toBe(normalise(await readFile(join(outside, record), 'utf8'), outside));
      // Nothing was unpacked, or it was removed as soon as it was loaded.
      expect(await readdir(join(newRoot, 'tmp'))).toEqual([]);
    }, 300_000);

    it('runs the console in a terminal: Enter applies, the result says committed', async () => {
      await cloneAppliance(base, join(newRoot, 'console-appliance'));
      const command = inRoot(newRoot, [
        '/ferry-installer',
        'console',
        '--root',
        '/console-appliance',
        '--media',
        '/media',
      ]);
      terminal.run('sea', command, { width: 110, height: 45, clean: true });
      const plan = await terminal.waitFor('sea', '[Enter] apply');
      expect(plan).toContain('Update ready: acme-appliance 1.3.0');
      // Ferry is running, and its unpacked bundle is already gone.
      expect(await readdir(join(newRoot, 'tmp'))).toEqual([]);
      terminal.keys('sea', 'Enter');
      await terminal.waitFor('sea', 'COMMITTED: acme-appliance is now at 1.3.0');
      terminal.keys('sea', 'q');
      expect(await terminal.waitFor('sea', /exit=\d+/)).toContain('exit=0');
      const status = await runIn(newRoot, [
        '/ferry-installer',
        'status',
        '--root',
        '/console-appliance',
        '--json',
      ]);
      expect(JSON.parse(status.stdout)).toMatchObject({ release: '1.3.0' });
    }, 300_000);

    it('with no temporary folder at all, runs; the console says so; FERRY_TMP names one', async () => {
      await rm(join(newRoot, 'tmp'), { recursive: true });
      try {
        const help = await runIn(newRoot, ['/ferry-installer', '--help']);
        expect(help.code, help.stderr).toBe(0);
        const console = ['/ferry-installer', 'console', '--root', '/appliance'];
        const none = await runIn(newRoot, console);
        expect(none.code).toBe(1);
        expect(none.stderr).toContain('E_IO');
        expect(none.stderr).toContain('FERRY_TMP');
        await mkdir(join(newRoot, 'stick'), { mode: 0o700 });
        // Unpacked, loaded, removed; then it refuses to run without a terminal.
        const named = await runIn(newRoot, console, { FERRY_TMP: '/stick' });
        expect(named.stderr).toContain('E_USAGE: ferry console needs a terminal');
        expect(await readdir(join(newRoot, 'stick'))).toEqual([]);
      } finally {
        await mkdir(join(newRoot, 'tmp'));
        await chmod(join(newRoot, 'tmp'), 0o1777);
      }
    });
  },
);

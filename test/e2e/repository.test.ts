import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bigBundle,
  buildAll,
  FERRY,
  ferry,
  json,
  keyPairs,
  opensslSign,
  signerScript,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';
import { RegistryClient } from '../../repository/oci/client.js';
import { Terminal } from './terminal.js';
import { documentManifest } from '../../repository/oci/artifact.js';
import {
  registryMissing,
  SKOPEO,
  startRegistry,
  type Registry,
} from '../repository/oci/registry.js';

/**
 * The bundle repository as CI and an operator use it: bin/ferry against a
 * directory and a real registry, read back by skopeo (an independent client).
 */
const skopeoMissing =
  registryMissing ?? (SKOPEO ? undefined : 'skopeo is not installed: run scripts/setup-system.sh');
const exec = promisify(execFile);
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let ws: Workspace;
let dir: string;
let bundles: Record<string, string>;
let registry: Registry | undefined;
const terminal = new Terminal();

beforeAll(async () => {
  dir = await tempDir('ferry-e2e-repo-');
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'out'), 'tar', ['1.0.0', '1.1.0']);
  bundles.zip = (await buildAll(ws, join(dir, 'zip'), 'zip', ['1.0.0']))['1.0.0'] as string;
  if (!registryMissing) registry = await startRegistry();
}, 300_000);
afterAll(async () => registry?.stop());

/** bin/ferry as CI runs it: an actor and a run link from the environment, the release key. */
function repoFerry(args: string[], actor = 'ci'): Promise<RunResult> {
  const writes = ['publish', 'approve', 'promote', 'policy', 'gc'].includes(args[0] ?? '');
  return ferry(writes ? [...args, '--key', ws.key] : args, {
    env: {
      FERRY_ACTOR: actor,
      CI_JOB_URL: 'https://ci.example/jobs/7',
    },
  });
}

/** `ferry publish` with the workspace's trust root (it makes the repository the first time). */
function publishTo(repo: string, bundle: string, ...extra: string[]): Promise<RunResult> {
  return repoFerry(['publish', bundle, '--repo', repo, '--trust', ws.trust, ...extra]);
}

async function skopeo(args: string[]): Promise<Buffer> {
  await writeFile(join(dir, 'auth.json'), '{}');
  const { stdout } = await exec(SKOPEO as string, ['--insecure-policy', ...args], {
    encoding: 'buffer',
    env: { PATH: process.env.PATH, HOME: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

describe('ferry publish, promote, pull, history on a directory repository', () => {
  let repo: string;
  let published: { digest: string; sha256: string; version: string; changed: boolean };

  beforeAll(async () => {
    repo = join(dir, 'repo');
    const result = await publishTo(repo, bundles['1.0.0'] as string, '--channel', 'dev', '--json');
    expect(result.code, result.stderr).toBe(0);
    published = json(result);
  });

  it('publishes once; the same bytes are a no-op; other bytes under the version exit 1 naming both', async () => {
    expect(published).toMatchObject({ version: '1.0.0', changed: true, channel: 'dev' });
    expect(published.sha256).toBe(sha256(await readFile(bundles['1.0.0'] as string)));
    const again = await publishTo(repo, bundles['1.0.0'] as string, '--json');
    expect(again.code).toBe(0);
    expect(json(again)).toMatchObject({ changed: false, digest: published.digest });
    const other = await publishTo(repo, bundles.zip as string, '--json');
    expect(other.code).toBe(1);
    const error = json<{ error: { code: string; message: string } }>(other).error;
    expect(error.code).toBe('E_VERSION_EXISTS');
    expect(error.message).toContain(published.sha256);
    expect(error.message).toContain(sha256(await readFile(bundles.zip as string)));
  });

  it('refuses a promotion with every unmet condition (exit 4), then promotes on approval', async () => {
    await publishTo(repo, bundles['1.1.0'] as string, '--channel', 'dev');
    const blocked = await repoFerry([
      'promote',
      '1.0.0',
      '--repo',
      repo,
      '--from',
      'dev',
      '--to',
      'stable',
      '--json',
    ]);
    expect(blocked.code).toBe(4);
    expect(
      json<{ excuses: Array<{ code: string }> }>(blocked)
        .excuses.map((e) => e.code)
        .sort(),
    ).toEqual(['E_APPROVALS', 'E_NOT_IN_CHANNEL', 'E_PROMOTE_EDGE']);
    const human = await repoFerry(['promote', '1.1.0', '--repo', repo, '--to', 'beta']);
    expect(human.code).toBe(4);
    expect(human.stdout).toContain('E_PROMOTION_BLOCKED');
    expect(human.stdout).toContain('E_APPROVALS');
    const approved = await repoFerry(
      [
        'approve',
        '1.1.0',
        '--repo',
        repo,
        '--to',
        'beta',
        '--by',
        'alice',
        '--evidence',
        bundles['1.0.0'] as string,
      ],
      'alice',
    );
    expect(approved.code, approved.stderr).toBe(0);
    const promoted = await repoFerry([
      'promote',
      '1.1.0',
      '--repo',
      repo,
      '--to',
      'beta',
      '--json',
    ]);
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(json(promoted)).toMatchObject({ verdict: 'promoted', from: 'dev', to: 'beta' });
    const list = json<{ channels: Array<{ name: string; version: string | null }> }>(
      await repoFerry(['channels', '--repo', repo, '--json']),
    );
    expect(list.channels.map((c) => [c.name, c.version])).toEqual([
      ['dev', '1.1.0'],
      ['beta', '1.1.0'],
      ['stable', null],
    ]);
  });

  it('records who wrote an approval as every write: --actor, else FERRY_ACTOR', async () => {
    const own = join(dir, 'repo-actor');
    const made = await publishTo(own, bundles['1.0.0'] as string, '--channel', 'dev');
    expect(made.code, made.stderr).toBe(0);
    const by = (name: string, ...extra: string[]) =>
      repoFerry(['approve', '1.0.0', '--repo', own, '--to', 'beta', '--by', name, ...extra]);
    const flagged = await by('alice', '--actor', 'release-bot');
    expect(flagged.code, flagged.stderr).toBe(0);
    const fromEnv = await by('bob');
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    const log = json<{ events: Array<{ op: string; actor: string; subject: { by?: string } }> }>(
      await repoFerry(['history', '--repo', own, '--json']),
    );
    expect(
      log.events.filter((e) => e.op === 'approve').map((e) => [e.subject.by, e.actor]),
    ).toEqual([
      ['bob', 'ci'],
      ['alice', 'release-bot'],
    ]);
  });

  it('says when a closed channel opens (exit 5)', async () => {
    const tomorrow = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][
      (new Date().getUTCDay() + 1) % 7
    ];
    const policy = join(dir, 'policy.yaml');
    await writeFile(
      policy,
      [
        'formatVersion: 1',
        'channels:',
        '  dev: {}',
        '  beta: { approvals: 1 }',
        `  stable: { timeZone: UTC, allow: [{ days: [${tomorrow}], start: "00:00", end: "23:59" }] }`,
        'edges: [[dev, beta], [beta, stable]]',
      ].join('\n'),
    );
    const set = await repoFerry(['policy', '--repo', repo, '--set', policy]);
    expect(set.code, set.stderr).toBe(0);
    const closed = await repoFerry([
      'promote',
      '1.1.0',
      '--repo',
      repo,
      '--to',
      'stable',
      '--json',
    ]);
    expect(closed.code).toBe(5);
    const opens = json<{ opens: string; excuses: Array<{ code: string }> }>(closed);
    expect(opens.excuses.map((e) => e.code)).toEqual(['E_PROMOTION_WINDOW']);
    expect(opens).toMatchObject({ verdict: 'closed', code: 'E_PROMOTION_WINDOW' });
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    expect(opens.opens).toBe(midnight.toISOString());
  });

  it('pulls a channel atomically and verified (--json)', async () => {
    const out = join(dir, 'pulled');
    const pulled = await repoFerry([
      'pull',
      '--repo',
      repo,
      '--channel',
      'beta',
      '--out',
      out,
      '--json',
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const result = json<{
      bundle: string;
      version: string;
      digest: string;
      size: number;
      channel: string;
    }>(pulled);
    expect(result).toMatchObject({ version: '1.1.0', channel: 'beta' });
    expect(sha256(await readFile(result.bundle))).toBe(
      sha256(await readFile(bundles['1.1.0'] as string)),
    );
  });

  it('pulls into a folder that already holds the bundle without downloading it, and replaces nothing else', async () => {
    const out = join(dir, 'pulled-again');
    const name = basename(bundles['1.0.0'] as string);
    const pull = () =>
      repoFerry(['pull', '--repo', repo, '--version', '1.0.0', '--out', out, '--json']);
    const first = await pull();
    expect(first.code, first.stderr).toBe(0);
    expect(json<{ changed: boolean }>(first).changed).toBe(true);
    const before = await stat(join(out, name));
    const again = await pull();
    expect(again.code, again.stderr).toBe(0);
    expect(json<{ changed: boolean; bundle: string }>(again)).toMatchObject({
      changed: false,
      bundle: join(out, name),
    });
    const after = await stat(join(out, name));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);

    // Another file, a folder or a link under the bundle's name (which comes from the
    // repository, unsigned) is refused before anything is downloaded, and left as it was.
    const other = Buffer.from('another bundle the operator keeps here\n');
    await writeFile(join(out, name), other);
    await mkdir(join(out, 'folder', name, 'kept'), { recursive: true });
    for (const [folder, kept] of [
      [out, async () => expect(await readFile(join(out, name))).toEqual(other)],
      [
        join(out, 'folder'),
        async () => expect(await readdir(join(out, 'folder', name))).toEqual(['kept']),
      ],
    ] as const) {
      const refused = await repoFerry([
        'pull', '--repo', repo, '--version', '1.0.0', '--out', folder, '--json',
      ]); // prettier-ignore
      expect(refused.code, refused.stderr).toBe(2);
      expect(json<{ error: { code: string; file: string } }>(refused).error).toMatchObject({
        code: 'E_EXISTS',
        file: join(folder, name),
      });
      await kept();
      expect((await readdir(folder)).filter((entry) => entry.startsWith('.'))).toEqual([]);
    }
  });

  it('a pull with another product’s trust root is refused before a byte is pulled, and leaves --out as it was', async () => {
    const { other } = await keyPairs(join(dir, 'pull-other'), 'other');
    const otherTrust = join(dir, 'pull-other', 'trust.json');
    const init = await ferry(['trust', 'init', '--key', other.pub, '--out', otherTrust]);
    expect(init.code, init.stderr).toBe(0);
    const out = join(dir, 'pull-refused', 'usb', 'bundles');
    const pulled = await repoFerry([
      'pull', '--repo', repo, '--version', '1.0.0', '--trust', otherTrust, '--out', out, '--json',
    ]); // prettier-ignore
    expect(pulled.code).toBe(3);
    const error = json<{ error: { code: string; message: string; reference: string } }>(
      pulled,
    ).error;
    // The repository's chain does not hold that root: refused before the bundle is asked for
    // (a bundle the root refuses is named by version: see rotation.test.ts).
    expect(error).toMatchObject({ code: 'E_REPO_TRUST' });
    expect(error.message).toContain(
      `${repo} holds another trust root version 1 than ${otherTrust}`,
    );
    // The folders pull made for --out are gone again; one that was there stays, empty.
    expect(await readdir(join(dir, 'pull-refused')).catch(() => 'absent')).toBe('absent');
    await mkdir(out, { recursive: true });
    const again = await repoFerry([
      'pull',
      '--repo',
      repo,
      '--version',
      '1.0.0',
      '--trust',
      otherTrust,
      '--out',
      out,
    ]);
    expect(again.code).toBe(3);
    expect(await readdir(out)).toEqual([]);
  });

  /**
   * Two real writers that both decided while a third held the lock: each says it
   * waits, and once the lock is free each writes in turn, the second deciding again.
   */
  async function behindALock(repo: string, runs: Array<{ args: string[]; actor: string }>) {
    const lock = join(repo, 'ferry/lock');
    await mkdir(lock);
    await writeFile(join(lock, 'owner.json'), '{"actor":"held-by-the-test"}');
    const children = runs.map(({ args, actor }) => {
      const child = spawn(process.execPath, [FERRY, ...args, '--key', ws.key, '--json'], {
        env: { PATH: process.env.PATH, FERRY_ACTOR: actor, FERRY_LOCK_WAIT_SECONDS: '120' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const waiting = new Promise<void>((resolve) =>
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('waiting for the lock')) resolve();
        }),
      );
      const done = new Promise<RunResult>((resolve) =>
        child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })),
      );
      return { waiting, done };
    });
    await Promise.all(children.map((c) => c.waiting));
    await rm(lock, { recursive: true });
    return Promise.all(children.map((c) => c.done));
  }

  it('pull refuses a channel set back to a document older than one this machine pulled (exit 3), downloading nothing', async () => {
    const repo6 = join(dir, 'repo6');
    const state = join(dir, 'state6');
    const pullDev = (out: string) =>
      ferry(['pull', '--repo', repo6, '--channel', 'dev', '--out', out, '--json'], {
        env: { FERRY_STATE_DIR: state },
      });
    // What `ferry channels` says this machine pulled from dev, and how dev stands against it.
    const pulledHere = async () => {
      const listed = await ferry(['channels', '--repo', repo6, '--json'], {
        env: { FERRY_STATE_DIR: state },
      });
      expect(listed.code, listed.stderr).toBe(0);
      const rows = json<{ channels: Array<{ name: string; pulled: unknown }> }>(listed).channels;
      return rows.find((row) => row.name === 'dev')?.pulled;
    };
    await publishTo(repo6, bundles['1.0.0'] as string, '--channel', 'dev');
    expect(await pulledHere()).toBeNull();
    expect((await pullDev(join(dir, 'usb6a'))).code).toBe(0);
    expect(await pulledHere()).toMatchObject({
      sequence: 1,
      version: '1.0.0',
      standing: 'current',
    });
    const older = await readFile(join(repo6, 'ferry/channels/dev.json'));
    await publishTo(repo6, bundles['1.1.0'] as string, '--channel', 'dev');
    expect(await pulledHere()).toMatchObject({ sequence: 1, standing: 'moved' });
    expect(json<{ version: string }>(await pullDev(join(dir, 'usb6b'))).version).toBe('1.1.0');
    // Someone with write access puts dev's older signed document back.
    await writeFile(join(repo6, 'ferry/channels/dev.json'), older);
    expect(await pulledHere()).toMatchObject({
      sequence: 2,
      version: '1.1.0',
      standing: 'set-back',
    });
    const shown = await ferry(['channels', '--repo', repo6], { env: { FERRY_STATE_DIR: state } });
    expect(shown.stdout).toMatch(/^ *dev .* 1\.0\.0 .* 1\.1\.0 \(2\), SET BACK since$/m);
    expect(shown.stdout).toContain(
      `warning: channel dev no longer holds document 2 (1.1.0) or a later one, and this machine pulled that one from it: it was set back or forked, and pull refuses it; run \`ferry history --repo ${repo6} --verify\``,
    );
    const refused = await pullDev(join(dir, 'usb6c'));
    expect(refused.code, refused.stderr).toBe(3);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(refused);
    expect(error.code).toBe('E_CHANNEL_SET_BACK');
    expect(error.message).toBe(
      `channel dev of ${repo6} holds document 1 (1.0.0), but this machine pulled document 2 (1.1.0) from it before: the channel was set back`,
    );
    expect(error.hint).toContain('ferry history');
    await expect(readdir(join(dir, 'usb6c'))).rejects.toThrow();
    // The record of what was pulled from the repository is the folder the hint names;
    // without it, pull trusts the channel as it stands, as on a first pull.
    const record = /remove (\S+)$/.exec(error.hint)?.[1] as string;
    await writeFile(join(record, 'dev.json'), '{"not":"a record"}');
    const damaged = await pullDev(join(dir, 'usb6c'));
    expect(damaged.code).toBe(2);
    expect(json<{ error: { code: string; message: string } }>(damaged).error).toMatchObject({
      code: 'E_STATE_INVALID',
      message: `${join(record, 'dev.json')} is not the record of what was pulled from ${repo6}`,
    });
    await rm(record, { recursive: true });
    expect(json<{ version: string }>(await pullDev(join(dir, 'usb6c'))).version).toBe('1.0.0');
  });

  it('pull takes only channels the policy declares, not names every object has, before any record', async () => {
    const state = join(dir, 'state-proto');
    for (const channel of ['constructor', '__proto__', 'toString']) {
      const refused = await ferry(
        ['pull', '--repo', repo, '--channel', channel, '--out', join(dir, 'usb-proto'), '--json'],
        { env: { FERRY_STATE_DIR: state } },
      );
      expect(json<{ error: { code: string } }>(refused).error.code, channel).toBe(
        'E_UNKNOWN_CHANNEL',
      );
    }
    await expect(readdir(state)).rejects.toThrow();
  });

  it('pull shows its progress on a terminal, and none in a log', async () => {
    const out = join(dir, 'pulled-on-a-terminal');
    terminal.ferry('pull', ['pull', '--repo', repo, '--channel', 'beta', '--out', out]);
    const screen = await terminal.waitFor('pull', 'exit=0');
    expect(screen).toMatch(/pull: download [\d.]+ \w+ of [\d.]+ \w+ \(100%\)/);
    const logged = await repoFerry(['pull', '--repo', repo, '--channel', 'beta', '--out', out]);
    expect(logged.code, logged.stderr).toBe(0);
    expect(logged.stderr).toBe('');
  });

  it('two promotions that waited for the lock: one moves the channel, the other decides again and exits 5', async () => {
    const repo2 = join(dir, 'repo2');
    await publishTo(repo2, bundles['1.0.0'] as string, '--channel', 'dev');
    await repoFerry(['approve', '1.0.0', '--repo', repo2, '--to', 'beta', '--by', 'alice']);
    const promote = ['promote', '1.0.0', '--repo', repo2, '--to', 'beta'];
    const both = await behindALock(repo2, [
      { args: promote, actor: 'one' },
      { args: promote, actor: 'two' },
    ]);
    expect(both.map((run) => run.code).sort(), both[0]?.stderr).toEqual([0, 5]);
    const winner = both.findIndex((run) => run.code === 0);
    const loser = both[1 - winner] as RunResult;
    expect(json<{ verdict: string }>(both[winner] as RunResult).verdict).toBe('promoted');
    const error = json<{ error: { code: string; message: string } }>(loser).error;
    expect(error.code).toBe('E_REPO_CONFLICT');
    // It names what the other writer did while it waited, and why that ends its own decision.
    expect(error.message).toContain(`promote 1.0.0 by ${winner === 0 ? 'one' : 'two'}`);
    expect(error.message).toContain('beta holds 1.0.0 already');
    const log = await repoFerry(['history', '--repo', repo2, '--verify', '--json']);
    expect(log.code, log.stderr).toBe(0);
    expect(
      json<{ events: Array<{ op: string }> }>(log).events.filter((e) => e.op === 'promote'),
    ).toHaveLength(1);
  });

  it('two publishes that waited for the lock: the second decides again and still publishes', async () => {
    const repo3 = join(dir, 'repo3');
    await publishTo(repo3, bundles['1.0.0'] as string);
    const both = await behindALock(
      repo3,
      ['1.0.0', '1.1.0'].map((version, i) => ({
        args: ['publish', bundles[version] as string, '--repo', repo3, '--channel', 'dev'],
        actor: `job${i}`,
      })),
    );
    for (const run of both) expect(run.code, run.stderr).toBe(0);
    // Both still held after the other: 1.0.0 (published before) moves dev, 1.1.0 is new.
    expect(both.map((run) => json<{ version: string; changed: boolean }>(run))).toMatchObject([
      { version: '1.0.0', changed: true },
      { version: '1.1.0', changed: true },
    ]);
    const log = await repoFerry(['history', '--repo', repo3, '--verify', '--json']);
    expect(log.code, log.stderr).toBe(0);
    const events = json<{ events: Array<{ op: string; actor: string }> }>(log).events;
    expect(
      events
        .filter((e) => e.op === 'publish')
        .map((e) => e.actor)
        .sort(),
    ).toEqual(['ci', 'job0', 'job1']);
  });

  it('gc sweeps the bundle copy a publish killed before recording its version left, once an hour old; a rerun copies it again', async () => {
    // Over 16 MiB, the size above which a blob can only be a bundle, never a record.
    const bundle = await bigBundle(ws, dir, 'stray', '1.1.0', randomBytes(17 * 1024 * 1024));
    const repo5 = join(dir, 'repo5');
    await publishTo(repo5, bundles['1.0.0'] as string);
    // The publish copies its bundle, then waits for the lock the test holds: killed there.
    const lock = join(repo5, 'ferry/lock');
    await mkdir(lock);
    await writeFile(join(lock, 'owner.json'), '{"actor":"held-by-the-test"}');
    const child = spawn(
      process.execPath,
      [FERRY, 'publish', bundle.bundle, '--repo', repo5, '--key', ws.key],
      {
        env: { PATH: process.env.PATH, FERRY_ACTOR: 'cancelled', FERRY_LOCK_WAIT_SECONDS: '120' },
      },
    );
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await new Promise<void>((resolve) => {
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('waiting for the lock')) resolve();
      });
    });
    child.kill('SIGKILL');
    await exited;
    await rm(lock, { recursive: true });
    const stray = join(repo5, 'blobs/sha256', bundle.sha256);
    expect((await stat(stray)).size).toBeGreaterThan(16 * 1024 * 1024);

    // Within the hour it could be a publish still waiting: left alone.
    const fresh = json<{ strays: unknown[] }>(await repoFerry(['gc', '--repo', repo5, '--json']));
    expect(fresh.strays).toEqual([]);
    const hourAgo = new Date(Date.now() - 61 * 60 * 1000);
    await utimes(stray, hourAgo, hourAgo);
    const dry = await repoFerry(['gc', '--repo', repo5]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would sweep 1 bundle copy no version names (`);
    expect(dry.stdout).toContain(`sha256:${bundle.sha256}`);
    expect(dry.stdout).toContain('(dry run: pass --yes)');
    await stat(stray);

    const done = await repoFerry(['gc', '--repo', repo5, '--yes', '--json']);
    expect(done.code, done.stderr).toBe(0);
    expect(
      json<{ strays: Array<{ digest: string; size: number }>; removed: boolean }>(done),
    ).toMatchObject({
      strays: [{ digest: `sha256:${bundle.sha256}` }],
      removed: true,
    });
    await expect(stat(stray)).rejects.toThrow();
    const log = await repoFerry(['history', '--repo', repo5, '--verify']);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toContain('gc removed nothing; swept 1 bundle copy no version named');
    // The version it never recorded is published by a rerun, its bundle copied again.
    const rerun = await publishTo(repo5, bundle.bundle);
    expect(rerun.code, rerun.stderr).toBe(0);
    const pulled = await repoFerry([
      'pull',
      '--repo',
      repo5,
      '--version',
      '1.1.0',
      '--out',
      join(dir, 'stray-usb'),
      '--json',
    ]);
    expect(sha256(await readFile(json<{ bundle: string }>(pulled).bundle))).toBe(bundle.sha256);
  });

  it('history --verify names the event whose byte was edited (exit 3)', async () => {
    const log = json<{ events: Array<{ seq: number; digest: string; actor: string }> }>(
      await repoFerry(['history', '--repo', repo, '--json']),
    );
    expect(log.events[0]?.seq).toBeGreaterThan(log.events[1]?.seq ?? Infinity);
    const target = log.events.find((e) => e.seq === 2);
    const blob = join(repo, 'blobs/sha256', (target?.digest ?? '').slice('sha256:'.length));
    const bytes = await readFile(blob);
    bytes.writeUInt8((bytes.at(60) ?? 0) ^ 1, 60);
    await writeFile(blob, bytes);
    const verify = await repoFerry(['history', '--repo', repo, '--verify']);
    expect(verify.code).toBe(3);
    expect(verify.stderr).toMatch(/E_AUDIT_BROKEN: .*event 2 /);
  });
});

describe('a repository written through a --signer', () => {
  it('publish, approve and promote sign with a KMS-held key; history --verify holds the chain', async () => {
    const repo = join(dir, 'repo-signer');
    const calls = join(dir, 'repo-kms.calls');
    const kms = await signerScript(
      dir,
      'repo-kms',
      `echo "$FERRY_SIGNER" >> '${calls}'\n${opensslSign(ws.key)}`,
    );
    const signed = (...args: string[]) =>
      ferry([...args, '--repo', repo, '--signer', kms, '--signer-key', ws.pub], {
        env: { FERRY_ACTOR: 'ci' },
      });
    const published = await signed(
      'publish',
      bundles['1.0.0'] as string,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    );
    expect(published.code, published.stderr).toBe(0);
    const before = (await readFile(calls, 'utf8')).split('\n').length;
    const approved = await signed('approve', '1.0.0', '--to', 'beta', '--by', 'alice');
    expect(approved.code, approved.stderr).toBe(0);
    // Two documents, two signatures (an HSM asks for a touch each): the audit event and the approval.
    expect((await readFile(calls, 'utf8')).split('\n').length - before).toBe(2);
    const promoted = await signed('promote', '1.0.0', '--to', 'beta', '--json');
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(json(promoted)).toMatchObject({ verdict: 'promoted', to: 'beta' });
    const verified = await ferry(['history', '--repo', repo, '--verify']);
    expect(verified.code, verified.stderr).toBe(0);
    // A signer whose key the repository does not know may not write.
    const { other } = await keyPairs(join(dir, 'repo-other'), 'other');
    const stranger = await signerScript(dir, 'repo-stranger', opensslSign(other.key));
    const refused = await ferry([
      'approve',
      '1.0.0',
      '--to',
      'stable',
      '--by',
      'mallory',
      '--repo',
      repo,
      '--signer',
      stranger,
      '--signer-key',
      other.pub,
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('E_KEY_INVALID');
  });
});

describe.skipIf(skopeoMissing)('a registry repository, read by skopeo', () => {
  it('skopeo inspect --raw hashes to the --json digest; copying the directory repository keeps it', async () => {
    const host = (registry as Registry).host;
    const repo = (registry as Registry).reference('acme/appliance');
    const result = await publishTo(repo, bundles['1.0.0'] as string, '--channel', 'dev', '--json');
    expect(result.code, result.stderr).toBe(0);
    const { digest } = json<{ digest: string }>(result);
    const raw = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${host}/acme/appliance:1.0.0`,
    ]);
    expect(`sha256:${sha256(raw)}`).toBe(digest);

    const local = join(dir, 'copied-from');
    const dirPublish = await publishTo(local, bundles['1.0.0'] as string, '--json');
    expect(json<{ digest: string }>(dirPublish).digest).toBe(digest);
    await skopeo([
      'copy',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${local}:1.0.0`,
      `docker://${host}/acme/copied:1.0.0`,
    ]);
    const copied = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${host}/acme/copied:1.0.0`,
    ]);
    expect(`sha256:${sha256(copied)}`).toBe(digest);

    const pulled = await repoFerry([
      'pull',
      '--repo',
      repo,
      '--channel',
      'dev',
      '--out',
      join(dir, 'from-registry'),
      '--json',
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(json(pulled)).toMatchObject({ version: '1.0.0', digest, channel: 'dev' });
  });

  /**
   * A repository with 1.0.0 in dev and approved for beta (so a promote is one write
   * away), the head event's seq, and what another writer's claim on the next event
   * is put as: any manifest under the claim's name.
   */
  async function claimable(name: string) {
    const repo = (registry as Registry).reference(name);
    expect((await publishTo(repo, bundles['1.0.0'] as string, '--channel', 'dev')).code).toBe(0);
    await repoFerry(['approve', '1.0.0', '--repo', repo, '--to', 'beta', '--by', 'alice']);
    const head = json<{ events: Array<{ seq: number }> }>(
      await repoFerry(['history', '--repo', repo, '--json']),
    ).events[0]?.seq as number;
    const client = await RegistryClient.open(repo, { env: {} });
    const other = documentManifest({
      artifactType: 'application/vnd.ferry.test',
      mediaType: 'application/vnd.ferry.test+json',
      document: {
        bytes: Buffer.from('{}'),
        digest: `sha256:${sha256(Buffer.from('{}'))}`,
        size: 2,
      },
    });
    await client.pushBlob(Buffer.from('{}'));
    return { repo, head, client, other };
  }

  it('a claim on the next audit event stops a second writer (exit 5); a stale claim is passed over', async () => {
    const { repo, head, client, other } = await claimable('acme/claimed');
    const claim = (seconds: number) =>
      `ferry.audit.${String(head + 1).padStart(8, '0')}.${seconds}.${'a'.repeat(12)}`;
    const now = Math.floor(Date.now() / 1000);
    await client.putManifest(claim(now), other.bytes, other.mediaType);
    const promote = ['promote', '1.0.0', '--repo', repo, '--to', 'beta', '--json'];
    const stopped = await repoFerry(promote);
    expect(stopped.code, stopped.stderr).toBe(5);
    expect(json<{ error: { code: string; message: string } }>(stopped).error).toMatchObject({
      code: 'E_REPO_CONFLICT',
      message: expect.stringContaining(claim(now)) as unknown,
      // Perhaps a run of its own that was killed: when running again gets past it.
      hint: expect.stringContaining('passed over once it is 60 s old') as unknown,
    });
    // It took its own claim back: only the other writer's is left on that event.
    const next = `ferry.audit.${String(head + 1).padStart(8, '0')}`;
    expect((await client.listTags()).filter((t) => t.startsWith(next))).toEqual([claim(now)]);
    // A claim older than the stale limit is a writer that died before writing its event.
    await client.deleteManifest(other.digest);
    await client.putManifest(claim(now - 120), other.bytes, other.mediaType);
    const moved = await repoFerry(promote);
    expect(moved.code, moved.stderr).toBe(0);
    expect(json<{ verdict: string; event: number }>(moved)).toMatchObject({
      verdict: 'promoted',
      event: head + 1,
    });
    // So is one dated over an hour ahead: a writer whose clock is that far off, dead
    // before its event, held every write off until its time came (here, a day).
    const ahead = `ferry.audit.${String(head + 2).padStart(8, '0')}.${now + 86_400}.${'b'.repeat(12)}`;
    await client.putManifest(ahead, other.bytes, other.mediaType);
    const approved = await repoFerry([
      'approve',
      '1.0.0',
      '--repo',
      repo,
      '--to',
      'stable',
      '--by',
      'bob',
      '--json',
    ]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await repoFerry(['history', '--repo', repo, '--verify'])).code).toBe(0);
  });

  it('a claim dated minutes ahead (a live writer whose clock runs fast) still stops a second writer (exit 5)', async () => {
    const { repo, head, client, other } = await claimable('acme/claimed-ahead');
    // Ten minutes ahead, over the stale limit: that writer takes this one's claim for a
    // stale one and goes on, so this one must stand aside or both write the event.
    const now = Math.floor(Date.now() / 1000);
    const ahead = `ferry.audit.${String(head + 1).padStart(8, '0')}.${now + 600}.${'c'.repeat(12)}`;
    await client.putManifest(ahead, other.bytes, other.mediaType);
    const stopped = await repoFerry(['promote', '1.0.0', '--repo', repo, '--to', 'beta', '--json']);
    expect(stopped.code, stopped.stderr).toBe(5);
    expect(json<{ error: { code: string; message: string } }>(stopped).error).toMatchObject({
      code: 'E_REPO_CONFLICT',
      message: expect.stringContaining(ahead) as unknown,
    });
    expect(
      json<{ events: Array<{ seq: number }> }>(
        await repoFerry(['history', '--repo', repo, '--json']),
      ).events[0]?.seq,
    ).toBe(head);
  }, 120_000);

  it('writers racing on a registry: each wins or exits 5, and the log holds exactly the winners', async () => {
    const repo = (registry as Registry).reference('acme/racing');
    expect((await publishTo(repo, bundles['1.0.0'] as string)).code).toBe(0);
    const actors = ['a', 'b', 'c', 'd'];
    const runs = await Promise.all(
      actors.map((actor) =>
        repoFerry(
          ['publish', bundles['1.0.0'] as string, '--repo', repo, '--channel', 'dev', '--json'],
          actor,
        ),
      ),
    );
    for (const run of runs) expect([0, 5], run.stderr).toContain(run.code);
    const winners = actors.filter(
      (_, i) => runs[i]?.code === 0 && json<{ changed: boolean }>(runs[i]).changed,
    );
    expect(winners.length).toBeGreaterThan(0);
    const log = await repoFerry(['history', '--repo', repo, '--verify', '--json']);
    expect(log.code, log.stderr).toBe(0);
    const writers = json<{ events: Array<{ op: string; actor: string }> }>(log)
      .events.filter((e) => e.op === 'publish' && e.actor !== 'ci')
      .map((e) => e.actor)
      .sort();
    expect(writers).toEqual(winners.sort());
  });

  it('a publish killed mid-upload and run again gives the same digest', async () => {
    // Big enough that the upload (one streamed PATCH) is still going when its first
    // bytes show; at 96 MiB it once finished between the look and the kill.
    const { bundle } = await bigBundle(ws, dir, 'big', '1.0.0', Buffer.alloc(272 * 1024 * 1024, 7));
    const args = ['publish', bundle, '--trust', ws.trust, '--json'];
    const repo = (registry as Registry).reference('acme/killed');
    const child = spawn(process.execPath, [FERRY, ...args, '--key', ws.key, '--repo', repo], {
      env: { PATH: process.env.PATH, FERRY_ACTOR: 'ci' },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const uploads = join(
      (registry as Registry).storage,
      'docker/registry/v2/repositories/acme/killed/_uploads',
    );
    for (let started = false; !started;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (child.exitCode !== null) throw new Error('the publish ended before it could be killed');
      for (const name of await readdir(uploads, { recursive: true }).catch(() => [] as string[]))
        if (
          name.endsWith('data') &&
          ((await stat(join(uploads, name)).catch(() => null))?.size ?? 0) > 0
        )
          started = true;
    }
    child.kill('SIGKILL');
    await exited;
    expect(await repoFerry(['channels', '--repo', repo])).toMatchObject({ code: 2 }); // nothing was recorded

    const rerun = await repoFerry([...args, '--repo', repo]);
    expect(rerun.code, rerun.stderr).toBe(0);
    const local = await repoFerry([...args, '--repo', join(dir, 'big-repo')]);
    expect(json<{ digest: string }>(rerun).digest).toBe(json<{ digest: string }>(local).digest);
    expect((await repoFerry(['history', '--repo', repo, '--verify'])).code).toBe(0);
  });
});

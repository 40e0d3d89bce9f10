import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildAll,
  ferry,
  json,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';

/**
 * A folder repository as a hostile share leaves it to the release engineers who
 * write to it next: bin/ferry, driven as CI drives it.
 */
let ws: Workspace;
let dir: string;
let bundles: Record<string, string>;
let n = 0;
const execFileP = promisify(execFile);

beforeAll(async () => {
  dir = await tempDir('ferry-e2e-redteam-');
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'out'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
}, 300_000);

function repoFerry(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const writes = ['publish', 'approve', 'promote', 'policy', 'gc'].includes(args[0] ?? '');
  return ferry(writes ? [...args, '--key', ws.key] : args, {
    env: { FERRY_ACTOR: 'ci', FERRY_STATE_DIR: join(dir, `state${n}`), ...env },
  });
}

function errorOf(result: RunResult): { code: string; message: string; hint?: string } {
  return json<{ error: { code: string; message: string; hint?: string } }>(result).error;
}

/** Every file under ferry/ with its bytes: what "changed nothing" compares. */
async function snapshot(repo: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(join(repo, 'ferry'), { recursive: true, withFileTypes: true }))
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      files[path] = (await readFile(path)).toString('hex');
    }
  return files;
}

describe('a channel set back to an older signed document', () => {
  it('is refused by every write that would move it or judge by it, and stays visible to history --verify', async () => {
    const repo = join(dir, `repo${++n}`);
    const dev = join(repo, 'ferry/channels/dev.json');
    const first = await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    expect(first.code, first.stderr).toBe(0);
    const older = await readFile(dev);
    expect(
      (await repoFerry(['publish', bundles['1.1.0'] as string, '--repo', repo, '--channel', 'dev']))
        .code,
    ).toBe(0);
    const pulled = await repoFerry([
      'pull',
      '--repo',
      repo,
      '--channel',
      'dev',
      '--out',
      join(dir, `pulled${n}`),
      '--trust',
      ws.trust,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    // Whoever can write to the share puts dev's first document back (validly signed).
    await writeFile(dev, older);
    const before = await snapshot(repo);

    // CI publishes the next release into dev: on top of the old document it would number its
    // own 2, as the one this machine pulled (a fork it would refuse for good), and
    // history --verify would then find nothing wrong.
    const published = await repoFerry([
      'publish',
      bundles['1.2.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
      '--json',
    ]);
    expect(published.code).toBe(3);
    expect(errorOf(published)).toMatchObject({ code: 'E_CHANNEL_SET_BACK' });
    expect(errorOf(published).message).toContain(
      `${repo}: channel dev holds 1.0.0 from event 2, but event 3 moved it to 1.1.0 after that`,
    );
    expect(errorOf(published).hint).toContain('event 3 (publish 1.1.0 by ci)');

    // 1.0.0 is not in dev, whatever its document says: promoting it from there is refused.
    const approved = await repoFerry([
      'approve',
      '1.0.0',
      '--repo',
      repo,
      '--to',
      'beta',
      '--by',
      'alice',
    ]);
    expect(approved.code, approved.stderr).toBe(0);
    const afterApproval = await snapshot(repo);
    const promoted = await repoFerry([
      'promote',
      '1.0.0',
      '--repo',
      repo,
      '--to',
      'beta',
      '--json',
    ]);
    expect(promoted.code).toBe(3);
    expect(errorOf(promoted)).toMatchObject({ code: 'E_CHANNEL_SET_BACK' });
    expect(errorOf(promoted).message).toContain('channel dev holds 1.0.0 from event 2');
    expect(await snapshot(repo)).toEqual(afterApproval);
    // The approval and its event only: beta was never moved.
    expect(Object.keys(afterApproval).filter((file) => !(file in before))).toHaveLength(2);
    expect(Object.keys(afterApproval).some((file) => file.endsWith('channels/beta.json'))).toBe(
      false,
    );

    // gc keeps what the log says dev holds, --keep 0 or not.
    const gc = await repoFerry(['gc', '--repo', repo, '--keep', '0', '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(json<{ keep: string[] }>(gc).keep).toContain('1.1.0');

    const verified = await repoFerry(['history', '--repo', repo, '--verify', '--json']);
    expect(verified.code).toBe(3);
    expect(errorOf(verified).message).toContain('channel dev holds 1.0.0 from event 2');
  });

  it('a publish stopped before it moved the channel completes when it runs again', async () => {
    const repo = join(dir, `repo${++n}`);
    const dev = join(repo, 'ferry/channels/dev.json');
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    const older = await readFile(dev);
    await repoFerry(['publish', bundles['1.1.0'] as string, '--repo', repo, '--channel', 'dev']);
    // What a publish killed between its event and the channel's move leaves.
    await writeFile(dev, older);
    const again = await repoFerry([
      'publish',
      bundles['1.1.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
    ]);
    expect(again.code, again.stderr).toBe(0);
    const verified = await repoFerry(['history', '--repo', repo, '--verify']);
    expect(verified.code, verified.stderr).toBe(0);
    const channels = await repoFerry(['channels', '--repo', repo, '--json']);
    expect(JSON.stringify(json(channels))).toContain('1.1.0');
  });
});

describe('a channel set back more than one move', () => {
  it('is no stopped writer: running the last move again is refused too', async () => {
    const repo = join(dir, `repo${++n}`);
    const dev = join(repo, 'ferry/channels/dev.json');
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    const oldest = await readFile(dev);
    for (const release of ['1.1.0', '1.2.0'])
      await repoFerry(['publish', bundles[release] as string, '--repo', repo, '--channel', 'dev']);
    await writeFile(dev, oldest);
    const before = await snapshot(repo);
    const again = await repoFerry([
      'publish',
      bundles['1.2.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
      '--json',
    ]);
    expect(again.code).toBe(3);
    expect(errorOf(again)).toMatchObject({ code: 'E_CHANNEL_SET_BACK' });
    expect(errorOf(again).hint).toContain('2 moves');
    expect(await snapshot(repo)).toEqual(before);
  });
});

describe('a bundle blob swapped on the share', () => {
  it('is refused as a damaged repository (exit 3) naming it, the version and the blob; --out stays as it was', async () => {
    const repo = join(dir, `repo${++n}`);
    const published = await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
      '--json',
    ]);
    expect(published.code, published.stderr).toBe(0);
    const blob = join(repo, 'blobs/sha256', json<{ sha256: string }>(published).sha256);
    const saved = join(dir, `saved${n}`);
    await rename(blob, saved);
    const out = join(dir, `out${n}`);
    const swaps: Array<[string, () => Promise<unknown>]> = [
      ['a FIFO', () => execFileP('mkfifo', [blob])],
      ['a folder', () => mkdir(blob)],
      ['a symbolic link', () => symlink(saved, blob)],
    ];
    for (const [what, swap] of swaps) {
      await swap();
      const pulled = await repoFerry([
        'pull',
        '--repo',
        repo,
        '--version',
        '1.0.0',
        '--out',
        out,
        '--trust',
        ws.trust,
        '--json',
      ]);
      expect(pulled.code, what).toBe(3);
      const error = errorOf(pulled);
      expect(error.code, what).toBe('E_REPO_INVALID');
      expect(error.message).toContain(`${repo}: version 1.0.0 (`);
      expect(error.message).toContain(`is ${what}`);
      expect(json<{ error: { file: string } }>(pulled).error.file).toBe(blob);
      await expect(readdir(out)).rejects.toMatchObject({ code: 'ENOENT' });
      await rm(blob, { recursive: true });
    }
  });
});

describe('a policy whose windows never open', () => {
  it('is refused by policy --set, naming the channel, instead of a channel closed for good (exit 5 for ever)', async () => {
    const repo = join(dir, `repo${++n}`);
    const made = await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const policy = join(dir, `policy${n}.yaml`);
    const setTo = async (stable: string): Promise<RunResult> => {
      await writeFile(
        policy,
        [
          'formatVersion: 1',
          'channels:',
          '  dev: {}',
          '  beta: { approvals: 1 }',
          `  stable: ${stable}`,
          'edges: [[dev, beta], [beta, stable]]',
          '',
        ].join('\n'),
      );
      return repoFerry(['policy', '--repo', repo, '--set', policy, '--json']);
    };
    const before = await snapshot(repo);
    for (const never of [
      "{ timeZone: Europe/Berlin, allow: [{ start: '09:00', end: '09:00' }] }",
      "{ timeZone: UTC, allow: [{ days: [], start: '09:00', end: '17:00' }] }",
      "{ timeZone: UTC, allow: [{ days: [mon], start: '09:00', end: '17:00' }], deny: [{ start: '08:00', end: '18:00' }] }",
    ]) {
      const refused = await setTo(never);
      expect(refused.code, never).toBe(2);
      expect(errorOf(refused)).toMatchObject({ code: 'E_POLICY_INVALID' });
      expect(errorOf(refused).message).toContain(
        `${policy}: /channels/stable: its windows never open`,
      );
    }
    // Windows without a time zone would be read on each writer's own clock.
    const unzoned = await setTo("{ allow: [{ start: '09:00', end: '17:00' }] }");
    expect(unzoned.code).toBe(2);
    expect(errorOf(unzoned).message).toContain(
      '/channels/stable/timeZone: windows need a time zone',
    );
    expect(await snapshot(repo)).toEqual(before);
    // Past midnight, and a deny that leaves some of the allow open, are windows that open.
    for (const open of [
      "{ timeZone: Europe/Berlin, allow: [{ days: [sat], start: '22:00', end: '02:00' }] }",
      "{ timeZone: UTC, allow: [{ start: '09:00', end: '17:00' }], deny: [{ days: [fri], start: '00:00', end: '23:59' }] }",
    ]) {
      const set = await setTo(open);
      expect(set.code, `${open}: ${set.stderr}`).toBe(0);
    }
  });
});

describe('the end of the log removed', () => {
  it('stops the next write before it gives the lost event number to its own', async () => {
    const repo = join(dir, `repo${++n}`);
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    await repoFerry(['publish', bundles['1.1.0'] as string, '--repo', repo, '--channel', 'dev']);
    await repoFerry(['approve', '1.1.0', '--repo', repo, '--to', 'beta', '--by', 'alice']);
    const promoted = await repoFerry(['promote', '1.1.0', '--repo', repo, '--to', 'beta']);
    expect(promoted.code, promoted.stderr).toBe(0);
    // Whoever can write to the share removes the promotion's event (event 5).
    await rm(join(repo, 'ferry/audit/00000005.json'));
    const before = await snapshot(repo);
    const published = await repoFerry([
      'publish',
      bundles['1.2.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
      '--json',
    ]);
    expect(published.code).toBe(3);
    expect(errorOf(published)).toMatchObject({ code: 'E_AUDIT_BROKEN' });
    expect(errorOf(published).message).toContain(
      `${repo}: channel beta (1.1.0) names event 5, but the log ends at event 4`,
    );
    expect(await snapshot(repo)).toEqual(before);
    const approved = await repoFerry([
      'approve',
      '1.1.0',
      '--repo',
      repo,
      '--to',
      'stable',
      '--by',
      'bob',
    ]);
    expect(approved.code).toBe(3);
    expect(await snapshot(repo)).toEqual(before);
  });
});

describe('approvers named in another case', () => {
  it('are one person: the publisher as "CI" is still the publisher, and "Alice" and "alice " one approver', async () => {
    const repo = join(dir, `repo${++n}`);
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    const policy = join(dir, `policy${n}.yaml`);
    await writeFile(
      policy,
      'formatVersion: 1\nchannels: { dev: {}, beta: { approvals: 2 } }\nedges: [[dev, beta]]\n',
    );
    expect((await repoFerry(['policy', '--repo', repo, '--set', policy])).code).toBe(0);
    for (const by of ['CI', 'Alice', 'alice '])
      expect(
        (await repoFerry(['approve', '1.0.0', '--repo', repo, '--to', 'beta', '--by', by])).code,
      ).toBe(0);
    const blocked = await repoFerry(['promote', '1.0.0', '--repo', repo, '--to', 'beta', '--json']);
    expect(blocked.code, blocked.stdout).toBe(4);
    const excuses = json<{ excuses: Array<{ code: string; message: string }> }>(blocked).excuses;
    expect(excuses.map((e) => e.code)).toEqual(['E_APPROVALS']);
    expect(excuses[0]?.message).toMatch(
      /^beta needs 2 approval\(s\) of 1\.0\.0 by someone other than the publisher; it has 1 \((Alice|alice )\) \(ci published it, so their approval does not count\)$/,
    );
    expect(
      (await repoFerry(['approve', '1.0.0', '--repo', repo, '--to', 'beta', '--by', 'bob'])).code,
    ).toBe(0);
    const promoted = await repoFerry(['promote', '1.0.0', '--repo', repo, '--to', 'beta']);
    expect(promoted.code, promoted.stderr).toBe(0);
  });
});

describe('a version gc removed', () => {
  it('takes back its own bytes only: other bytes under its number are E_VERSION_EXISTS, before anything is written', async () => {
    const zip = (await buildAll(ws, join(dir, `zip${++n}`), 'zip', ['1.0.0']))['1.0.0'] as string;
    const repo = join(dir, `repo${n}`);
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    await repoFerry(['publish', bundles['1.1.0'] as string, '--repo', repo, '--channel', 'dev']);
    const gc = await repoFerry(['gc', '--repo', repo, '--keep', '1', '--yes', '--json']);
    expect(json<{ remove: string[] }>(gc).remove).toEqual(['1.0.0']);
    const before = await snapshot(repo);
    const blobs = await readdir(join(repo, 'blobs/sha256'));
    const other = await repoFerry(['publish', zip, '--repo', repo, '--channel', 'dev', '--json']);
    expect(other.code).toBe(1);
    expect(errorOf(other)).toMatchObject({ code: 'E_VERSION_EXISTS' });
    expect(errorOf(other).message).toContain(`${repo} held 1.0.0 as sha256:`);
    expect(errorOf(other).message).toContain('(event 2), removed by gc at event 4');
    expect(await snapshot(repo)).toEqual(before);
    expect(await readdir(join(repo, 'blobs/sha256'))).toEqual(blobs);
    // The very bundle again restores the version (a rollback may want it back).
    const same = await repoFerry(['publish', bundles['1.0.0'] as string, '--repo', repo]);
    expect(same.code, same.stderr).toBe(0);
    expect((await repoFerry(['history', '--repo', repo, '--verify'])).code).toBe(0);
    // Removed again, it keeps the record it had: another would be a conflict inside gc, after its event.
    await repoFerry(['publish', bundles['1.2.0'] as string, '--repo', repo, '--channel', 'dev']);
    const again = await repoFerry(['gc', '--repo', repo, '--keep', '1', '--yes', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(json<{ remove: string[] }>(again).remove).toContain('1.0.0');
    expect((await repoFerry(['history', '--repo', repo, '--verify'])).code).toBe(0);
    const still = await repoFerry(['publish', zip, '--repo', repo, '--json']);
    expect(errorOf(still)).toMatchObject({ code: 'E_VERSION_EXISTS' });
  }, 120_000);
});

describe('an index.json that is no index', () => {
  it('stops a write instead of rewriting it without the images other tools listed there', async () => {
    const repo = join(dir, `repo${++n}`);
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    const index = join(repo, 'index.json');
    // Another tool's image, listed beside Ferry's tags; then the file is cut short.
    const text = JSON.parse(await readFile(index, 'utf8')) as { manifests: unknown[] };
    text.manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'a'.repeat(64)}`,
      size: 500,
      annotations: { 'org.opencontainers.image.ref.name': 'tools' },
    });
    const whole = JSON.stringify(text);
    await writeFile(index, whole.slice(0, -20));
    const before = await snapshot(repo);
    const published = await repoFerry([
      'publish',
      bundles['1.1.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
      '--json',
    ]);
    expect(published.code).toBe(3);
    expect(errorOf(published)).toMatchObject({
      code: 'E_REPO_INVALID',
      message: `${index} is not an OCI image index`,
    });
    expect(await snapshot(repo)).toEqual(before);
    expect(await readFile(index, 'utf8')).toBe(whole.slice(0, -20));
    // Put back whole, the other tool's entry stays through Ferry's writes.
    await writeFile(index, whole);
    const again = await repoFerry([
      'publish',
      bundles['1.1.0'] as string,
      '--repo',
      repo,
      '--channel',
      'dev',
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(await readFile(index, 'utf8')).toContain('"tools"');
  });

  it('reads one past 16 MiB (a long-lived repository lists that many tags), and names one too large to read', async () => {
    const repo = join(dir, `repo${++n}`);
    await repoFerry([
      'publish',
      bundles['1.0.0'] as string,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--channel',
      'dev',
    ]);
    const index = join(repo, 'index.json');
    const text = (await readFile(index, 'utf8')).trimEnd();
    // As large as some 80,000 tags make it: the same index, then spaces.
    await writeFile(index, `${text}${' '.repeat(20 * 1024 * 1024)}\n`);
    const more = await repoFerry(['publish', bundles['1.1.0'] as string, '--repo', repo]);
    expect(more.code, more.stderr).toBe(0);
    await writeFile(index, `${text}${' '.repeat(65 * 1024 * 1024)}\n`);
    const before = await snapshot(repo);
    const refused = await repoFerry([
      'publish',
      bundles['1.2.0'] as string,
      '--repo',
      repo,
      '--json',
    ]);
    expect(errorOf(refused)).toMatchObject({ code: 'E_REPO_INVALID' });
    expect(errorOf(refused).message).toContain(`${index} is over 67108864 bytes`);
    expect(errorOf(refused).hint).toContain('move its versions to a registry');
    expect(await snapshot(repo)).toEqual(before);
  }, 120_000);
});

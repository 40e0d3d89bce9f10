import { execFileSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { install, installOk, markers, RECORDS, snapshot, status } from '../e2e/appliance.js';
import { ext4, skipReason, tmpfs } from './filesystems.js';
import { atFirstRelease, faultProduct } from './product.js';

// A failure while committing: before state.json is replaced it rolls back
// (rollback artifacts included); after, the appliance is committed and says so.

const reason = skipReason();
const FILL = `if [ -e "$FERRY_ROOT/fill" ]; then dd if=/dev/zero of="$FERRY_ROOT/var/lib/ferry/filler" bs=64k 2>/dev/null || true; fi`;

describe.skipIf(reason !== null)(`a failure while committing (${reason ?? 'tmpfs, ext4'})`, () => {
  const product = faultProduct({ 'verify/target-state.sh': FILL });

  it('a full disk when state.json is written: every change and artifact rolled back', async () => {
    const root = join(product.dir, 'full');
    await tmpfs(join(root, 'var/lib/ferry'), 16);
    await atFirstRelease(product, root);
    const before = await snapshot(root);
    execFileSync('touch', [join(root, 'fill')]);
    const failed = await install(product.bundles['1.3.0'] as string, root);
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stdout + failed.stderr).toMatch(/state\.json.*(ENOSPC|no space)/is);
    expect((await status(root)).release).toBe('1.0.0');
    const ignored = [...RECORDS, 'fill', 'var/lib/ferry/filler'];
    expect(await snapshot(root, ignored)).toEqual(pick(before, ignored));
    const rolledBack = (await markers(root)).filter((line) => line.startsWith('rollback '));
    expect(rolledBack.map((line) => line.split(' ')[1]).sort()).toEqual(['api', 'db', 'web']);

    await rm(join(root, 'fill'));
    await rm(join(root, 'var/lib/ferry/filler'));
    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(json<{ recovered: boolean }>(recovered).recovered).toBe(false);
    await installOk(product.bundles['1.3.0'] as string, root);
    expect((await status(root)).release).toBe('1.3.0');
  });

  it('a history that cannot be appended after state.json is written: committed, exit 0, finished by the next ferry', async () => {
    const root = join(product.dir, 'history');
    await ext4(join(product.dir, 'lib.img'), join(root, 'var/lib/ferry'), 32);
    await atFirstRelease(product, root);
    const history = join(root, 'var/lib/ferry/history.jsonl');
    execFileSync('chattr', ['+i', history]);
    const done = await install(product.bundles['1.3.0'] as string, root);
    execFileSync('chattr', ['-i', history]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/is committed, but finishing up failed/);
    expect((await status(root)).release).toBe('1.3.0');
    expect(await readFile(history, 'utf8')).not.toContain('"to":"1.3.0"');

    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(json<{ recovered: boolean; release: string }>(recovered)).toEqual({
      schemaVersion: 1,
      recovered: true,
      release: '1.3.0',
    });
    expect(await readFile(history, 'utf8')).toMatch(/"operation":"recover".*"outcome":"committed"/);
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stderr).toBe(0);
  });
});

function pick(snap: Record<string, string>, ignored: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    Object.entries(snap).filter(
      ([name]) => !ignored.some((prefix) => name === prefix || name.startsWith(`${prefix}/`)),
    ),
  );
}

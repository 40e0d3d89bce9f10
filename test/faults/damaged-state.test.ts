import { execFileSync, spawn } from 'node:child_process';
import {
  appendFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ferry, json, run } from '../helpers.js';
import {
  cloneAppliance,
  init,
  initAppliance,
  installOk,
  RECORDS,
  snapshot,
  status,
} from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// What a cut or a careless hand leaves in the appliance's own files: a torn
// history line, link and artifact leftovers, a missing `current`, a lost
// state.json, and what a hand that edits them on purpose leaves.

const product = faultProduct();
let base: string;

beforeAll(async () => {
  base = join(product.dir, 'at-1.0.0');
  await atFirstRelease(product, base);
});

async function copy(name: string): Promise<string> {
  const root = join(product.dir, name);
  await cloneAppliance(base, root);
  return root;
}

describe('damaged appliance files', () => {
  it('a history of 300,000 transactions is read a line at a time by status and log', async () => {
    const root = await copy('long-history');
    const history = join(root, 'var/lib/ferry/history.jsonl');
    const [first] = (await readFile(history, 'utf8')).trimEnd().split('\n');
    // About 150 MiB of genuine-looking lines before the real one: held whole, with
    // its split lines and parsed entries, it would take several times that.
    const line = JSON.stringify({ ...JSON.parse(first as string), reason: 'x'.repeat(300) });
    const block = `${line}\n`.repeat(10_000);
    const older = await readFile(history, 'utf8');
    await writeFile(history, '');
    for (let i = 0; i < 30; i++) await appendFile(history, block);
    await appendFile(history, older);
    for (const args of [
      ['status', '--root', root, '--json'],
      ['log', '--root', root, '--json'],
    ]) {
      const timed = await run(
        '/usr/bin/time',
        ['-f', 'maxrss %M', process.execPath, FERRY, ...args],
        {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        },
      );
      expect(timed.code, timed.stderr).toBe(0);
      expect(Number(/maxrss (\d+)/.exec(timed.stderr)?.[1]) / 1024).toBeLessThan(150);
    }
    expect(
      json<{ transactions: unknown[] }>(await ferry(['status', '--root', root, '--json']))
        .transactions,
    ).toHaveLength(5);
  });

  it("an emptied history.jsonl: E_STATE_INVALID, and the hint's command, run as printed in a root with a space and a quote in its name, records the loss so the appliance goes on", async () => {
    const root = await copy("lost history's root");
    const history = join(root, 'var/lib/ferry/history.jsonl');
    await writeFile(history, '');
    const refused = await ferry(['status', '--root', root, '--json']);
    expect(refused.code).toBe(2);
    const { error } = json<{ error: { code: string; hint: string } }>(refused);
    expect(error.code).toBe('E_STATE_INVALID');
    const command = error.hint.slice(error.hint.indexOf('printf '));
    execFileSync('sh', ['-c', command]);
    const recorded = (await readFile(history, 'utf8')).trimEnd().split('\n');
    expect(recorded).toHaveLength(1);
    expect(JSON.parse(recorded[0] as string)).toMatchObject({
      outcome: 'history lost',
      to: '1.0.0',
    });
    expect((await status(root)).release).toBe('1.0.0');
    await installOk(product.bundles['1.3.0'] as string, root);
  });

  it('a torn last line of history.jsonl swallows nothing: the next record is whole, status reports the torn line', async () => {
    const root = await copy('torn-history');
    const history = join(root, 'var/lib/ferry/history.jsonl');
    await appendFile(
      history,
      '{"id":"20261204T000000-abcdef","at":"2026-12-04T00:00:00.000Z","oper',
    );
    await installOk(product.bundles['1.3.0'] as string, root);
    const lines = (await readFile(history, 'utf8')).trimEnd().split('\n');
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ operation: 'install', to: '1.3.0' });
    const result = json<{ transactions: Array<{ to: string }>; tornHistoryLines: number[] }>(
      await ferry(['status', '--root', root, '--json']),
    );
    expect(result.tornHistoryLines).toEqual([lines.length - 1]);
    expect(result.transactions.at(-1)?.to).toBe('1.3.0');
    expect((await ferry(['status', '--root', root])).stdout).toContain(
      `history.jsonl line ${lines.length - 1} was cut short`,
    );
  });

  it('a whole history line that is not a transaction is refused by status and log, naming its line, and never replaced', async () => {
    const root = await copy('edited-history');
    const history = join(root, 'var/lib/ferry/history.jsonl');
    const lines = (await readFile(history, 'utf8')).trimEnd().split('\n');
    lines[0] = '{"id":1,"note":"edited by hand"}';
    await writeFile(history, `${lines.join('\n')}\n`);
    const before = await readFile(history, 'utf8');
    for (const command of ['status', 'log']) {
      const refused = await ferry([command, '--root', root]);
      expect(refused.code, `${command}: ${refused.stdout}`).toBe(2);
      expect(refused.stderr).toContain(`E_STATE_INVALID: ${history}:1: `);
      expect(refused.stderr).toContain('hint:');
    }
    expect(await readFile(history, 'utf8')).toBe(before);
  });

  it('leftovers of cuts (a link switch, a removed component pruned halfway) are cleaned by the next ferry', async () => {
    const root = await copy('leftovers');
    const killed = await ferry(
      ['install', product.bundles['1.3.0'] as string, '--root', root, '--yes'],
      {
        env: { FERRY_TEST_CRASH_AT: '8' },
      },
    );
    expect(killed.code).toBe(-1);
    // The cut came between creating a link and renaming it over `current`.
    await symlink('4.0.0', join(root, 'opt/ferry/db/current.new-4242'));
    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(await readdir(join(root, 'opt/ferry/db'))).not.toContain('current.new-4242');
    // A component pruned halfway: its kept artifacts outlived its folder.
    const artifacts = join(root, 'var/lib/ferry/artifacts');
    await mkdir(join(artifacts, 'ghost/0.1.0/remove'), { recursive: true });
    await installOk(product.bundles['1.3.0'] as string, root);
    expect(await readdir(artifacts)).not.toContain('ghost');
  });

  // running.json names the artifact under way so that a recover can end what a
  // SIGKILL of Ferry alone left running. It is written without an fsync: a
  // power cut ends the artifact with Ferry, and the record of another boot
  // names nothing. So whatever a power cut leaves of it (nothing, an empty
  // file, zeros, half a record, the whole record) must not mislead recovery.
  it.each([
    ['empty', () => ''],
    ['zeros', () => '\0'.repeat(96)],
    ['half a record', (pid: number, start: string) => `{"pid":${pid},"start":"${start}","bo`],
    [
      'the whole record, of the boot before',
      (pid: number, start: string) =>
        JSON.stringify({ pid, start, boot: '00000000-0000-4000-8000-000000000000', cgroup: null }),
    ],
  ])(
    'running.json left %s by a power cut: status says interrupted, recover undoes it and kills nothing',
    async (name, text) => {
      const root = await copy(`running-${name.replace(/\W+/g, '-')}`);
      const before = await snapshot(root);
      const cut = await ferry(
        ['install', product.bundles['1.3.0'] as string, '--root', root, '--yes'],
        {
          env: { FERRY_TEST_CRASH_AT: '8' },
        },
      );
      expect(cut.code).toBe(-1);
      // A live process the record would name, were it of this boot: never to be killed for it.
      const sleeper = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
      try {
        const pid = sleeper.pid as number;
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
        const running = join(root, 'var/lib/ferry/journal/running.json');
        await writeFile(running, text(pid, start));
        const shown = json<{ open?: { running: boolean; recovery: string } }>(
          await ferry(['status', '--root', root, '--json']),
        );
        expect(shown.open).toMatchObject({ running: false, recovery: 'roll-back' });
        const recovered = await ferry(['recover', '--root', root, '--json']);
        expect(recovered.code, recovered.stderr).toBe(0);
        expect(recovered.stderr).not.toContain('ended what');
        expect(() => process.kill(pid, 0)).not.toThrow();
        expect(await snapshot(root)).toEqual(before);
        await installOk(product.bundles['1.3.0'] as string, root);
      } finally {
        sleeper.kill('SIGKILL');
      }
    },
  );

  it('a missing current link fails status --verify', async () => {
    const root = await copy('no-current');
    await unlink(join(root, 'opt/ferry/api/current'));
    const verify = await ferry(['status', '--root', root, '--verify', '--json']);
    expect(verify.code).toBe(1);
    expect(json<{ problems: unknown[] }>(verify).problems).toContainEqual({
      component: 'api',
      path: '../current',
      problem: 'missing',
    });
  });

  it.each(['state.json', 'history.jsonl'])(
    'a FIFO in place of %s: status, log, rollback and recover name it at once, nothing changed',
    async (name) => {
      const root = await copy(`fifo-${name}`);
      const file = join(root, 'var/lib/ferry', name);
      await rm(file);
      execFileSync('mkfifo', [file]);
      // The snapshot reads every file: the FIFO itself is checked by type.
      const others = [...RECORDS, `var/lib/ferry/${name}`];
      const held = await snapshot(root, others);
      for (const command of [['status'], ['log'], ['rollback', '--yes'], ['recover']]) {
        // Reading a FIFO with no writer blocks for ever: a hang fails by the test's timeout.
        const refused = await ferry([...command, '--root', root]);
        expect(refused.code, `${command[0]}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(`E_STATE_INVALID: ${file} is not a regular file`);
      }
      expect(await snapshot(root, others)).toEqual(held);
      expect((await lstat(file)).isFIFO()).toBe(true);
    },
  );

  it.each([
    ['a FIFO', (file: string) => execFileSync('mkfifo', [file])],
    ['a folder', (file: string) => mkdir(file)],
    ['a device', (file: string) => symlink('/dev/zero', file)],
  ])(
    '%s in place of a transaction log: ferry log names it at once, nothing changed',
    async (what, replace) => {
      const root = await copy(`log-${what.replaceAll(' ', '-')}`);
      const { transaction, log } = json<{ transaction: string; log: string }>(
        await ferry(['log', '--root', root, '--json']),
      );
      await rm(log);
      await replace(log);
      const held = await snapshot(root);
      // Reading a FIFO with no writer, or /dev/zero, never ends: a hang fails by the test's timeout.
      for (const named of [[], [transaction]]) {
        const refused = await ferry(['log', ...named, '--root', root]);
        expect(refused.code, refused.stderr).toBe(2);
        expect(refused.stderr).toContain(`E_STATE_INVALID: ${log} is not a regular file`);
      }
      expect(await snapshot(root)).toEqual(held);
    },
  );

  it.each([
    ['a version that is a path', '/components/db/version', '../../../tmp'],
    ['a file outside its component', '/components/db/files/0/path', '../../../../etc/passwd'],
    [
      'a rollback artifact elsewhere',
      '/components/db/artifacts/rollback/0',
      '../../../../bin/true',
    ],
  ])(
    'state.json edited to hold %s: E_STATE_INVALID naming the field, before rollback acts',
    async (_what, field, value) => {
      const root = await copy(`edited-${field.replaceAll('/', '-')}`);
      const file = join(root, 'var/lib/ferry/state.json');
      const state = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      const keys = field.split('/').slice(1);
      const last = keys.pop() as string;
      const parent = keys.reduce<Record<string, unknown>>(
        (at, key) => at[key] as Record<string, unknown>,
        state,
      );
      parent[last] = value;
      await writeFile(file, JSON.stringify(state, null, 2));
      const held = await snapshot(root);
      for (const command of [['status', '--verify'], ['rollback', '--yes'], ['recover']]) {
        const refused = await ferry([...command, '--root', root]);
        expect(refused.code, `${command[0]}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(`E_STATE_INVALID: ${file}: ${field}`);
      }
      expect(await snapshot(root)).toEqual(held);
    },
  );

  it.each([
    ['cut short', '{\n  "formatVersion": 1,\n  "product": "acme'],
    ['empty', ''],
    ['YAML, not JSON', 'formatVersion: 1\nproduct: acme-appliance\n'],
  ])(
    'state.json %s: E_STATE_INVALID naming the file (not a YAML error), nothing changed',
    async (what, text) => {
      const root = await copy(`not-json-${what.replaceAll(/\W/g, '-')}`);
      const file = join(root, 'var/lib/ferry/state.json');
      await writeFile(file, text);
      const held = await snapshot(root);
      for (const command of [['status'], ['rollback', '--yes'], ['recover']]) {
        const refused = await ferry([...command, '--root', root]);
        expect(refused.code, `${command[0]}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(`E_STATE_INVALID: ${file} is not JSON`);
        expect(refused.stderr).toContain('Restore it from a backup');
      }
      expect(await snapshot(root)).toEqual(held);
    },
  );

  it('appliance.yaml is the operator’s YAML: a syntax error there stays E_YAML, with its line', async () => {
    const root = await copy('bad-yaml');
    const file = join(root, 'etc/ferry/appliance.yaml');
    await appendFile(file, 'maintenanceWindows: [\n');
    const refused = await ferry(['status', '--root', root]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`E_YAML: ${file}:\\d+:\\d+: `));
  });

  it('a file in place of the logs folder: install and rollback name it (E_STATE_INVALID), nothing changed', async () => {
    // It was E_INTERNAL, "a bug in Ferry", from the mkdir of the folder.
    const root = await copy('logs-a-file');
    await installOk(product.bundles['1.1.0'] as string, root);
    const logs = join(root, 'var/lib/ferry/logs');
    await rm(logs, { recursive: true });
    await writeFile(logs, 'not a folder\n');
    const before = await snapshot(root, []);
    for (const args of [['install', product.bundles['1.2.0'] as string], ['rollback']]) {
      const refused = await ferry([...args, '--root', root, '--yes']);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`E_STATE_INVALID: ${logs} is not a folder`);
      expect(refused.stderr).not.toContain('E_INTERNAL');
      expect(await snapshot(root, [])).toEqual(before);
    }
  });

  it('a fresh appliance’s empty history, and a first install cut between state.json and its history line, are not damage', async () => {
    // damaged-layout: an emptied history.jsonl under a committed state is refused by every command.
    const fresh = join(product.dir, 'fresh');
    await initAppliance(product.ws, fresh);
    expect(await readFile(join(fresh, 'var/lib/ferry/history.jsonl'), 'utf8')).toBe('');
    expect((await status(fresh)).release).toBeNull();
    // The first kill point at which state.json names the install: its history line comes later.
    const cutAt = async (at: number): Promise<{ root: string; committed: boolean }> => {
      const root = join(product.dir, `first-cut-${at}`);
      await cloneAppliance(fresh, root);
      await ferry(['install', product.bundles['1.0.0'] as string, '--root', root, '--yes'], {
        env: { FERRY_TEST_CRASH_AT: String(at) },
      });
      const state = JSON.parse(await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8')) as {
        transaction: string | null;
      };
      return { root, committed: state.transaction !== null };
    };
    let low = 1;
    let found = await cutAt(256);
    expect(found.committed).toBe(true);
    for (let high = 256; low < high;) {
      const middle = Math.floor((low + high) / 2);
      const cut = await cutAt(middle);
      if (cut.committed) [high, found] = [middle, cut];
      else low = middle + 1;
    }
    const { root } = found;
    const history = join(root, 'var/lib/ferry/history.jsonl');
    expect(await readFile(history, 'utf8')).toBe('');
    const open = await ferry(['status', '--root', root, '--json']);
    expect(open.code, open.stderr).toBe(0);
    expect(json<{ open: { recovery: string } }>(open).open.recovery).toBe('roll-forward');
    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(JSON.parse(await readFile(history, 'utf8'))).toMatchObject({
      to: '1.0.0',
      outcome: 'committed',
    });
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('with state.json lost, the hint does not lead init to replace the appliance', async () => {
    const root = await copy('no-state');
    const trust = await readFile(join(root, 'etc/ferry/trust.json'), 'utf8');
    await rm(join(root, 'var/lib/ferry/state.json'));
    const lost = await ferry(['status', '--root', root]);
    expect(lost.code).toBe(2);
    expect(lost.stderr).toContain('E_STATE_INVALID');
    expect(lost.stderr).toContain('restore state.json from a backup');
    const refused = await init(product.ws, root);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('E_EXISTS');
    expect(await readFile(join(root, 'etc/ferry/trust.json'), 'utf8')).toBe(trust);
    expect((await status(base)).release).toBe('1.0.0');
  });
});

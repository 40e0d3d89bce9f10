import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ferry, json, tempDir, type RunResult } from '../helpers.js';

// Careless or hostile release specs and payloads, through bin/ferry: each is
// refused with its code, exit 2 and the file named, and leaves nothing in
// --out and no record in the history.

let dir: string;
let keys: string[];

beforeAll(async () => {
  dir = await tempDir();
  keys = [];
  for (let i = 1; i <= 17; i++) {
    const name = `k${i}`;
    const made = await ferry(['keygen', '--out', join(dir, 'keys'), '--name', name]);
    if (made.code !== 0) throw new Error(made.stderr);
    keys.push(join(dir, 'keys', `${name}.key`));
  }
});

/** A product with one component, `app`, its payload in `payload/` and its spec in `spec.yaml`. */
async function product(name: string, extra = ''): Promise<string> {
  const root = join(dir, name);
  await mkdir(join(root, 'payload', 'bin'), { recursive: true });
  await mkdir(join(root, 'scripts'), { recursive: true });
  await writeFile(join(root, 'payload', 'bin', 'run'), 'hello\n');
  await writeFile(join(root, 'scripts', 'install.sh'), '#!/bin/sh\nexit 0\n');
  await chmod(join(root, 'scripts', 'install.sh'), 0o755);
  await writeFile(
    join(root, 'spec.yaml'),
    `${extra}product: demo
release: '1.0.0'
platform: { name: os, range: '>=1.0.0' }
history: ./history
components:
  app:
    version: '1.0.0'
    payload: ./payload
    artifacts: { update: [./scripts/install.sh] }
`,
  );
  return root;
}

function build(root: string, signWith = keys.slice(0, 1)): Promise<RunResult> {
  return ferry([
    'build',
    join(root, 'spec.yaml'),
    '--first-release',
    '--out',
    join(root, 'out'),
    ...signWith.flatMap((key) => ['--key', key]),
    '--json',
  ]);
}

/** Exit 2 with `code`, and nothing written: no bundle, no partial file, no record. */
function expectRefused(result: RunResult, root: string, code: string): { message: string } {
  expect(result.code).toBe(2);
  const { error } = json<{ error: { code: string; message: string; hint: string } }>(result);
  expect(error.code).toBe(code);
  expect(error.hint).toBeTruthy();
  expect(existsSync(join(root, 'out')) ? readdirSync(join(root, 'out')) : []).toEqual([]);
  expect(existsSync(join(root, 'history'))).toBe(false);
  return error;
}

describe('a payload file name that is not UTF-8', () => {
  it('is refused naming the file, not an internal error', async () => {
    const root = await product('not-utf8');
    // Buffer paths: the name's bytes exactly, as another tool could have made them.
    await writeFile(Buffer.from(`${join(root, 'payload', 'bin')}/bad\xff\xfe`, 'latin1'), 'x');
    const error = expectRefused(await build(root), root, 'E_SPEC_PATH');
    expect(error.message).toContain('626164fffe');
    expect(error.message).toContain(join(root, 'payload', 'bin'));
  });
});

describe('a spec whose YAML aliases expand without end (billion laughs)', () => {
  it('is a YAML error naming the spec, in build and lint', async () => {
    const bomb = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 10; i++)
      bomb.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const root = await product('aliases', `${bomb.join('\n')}\n`);
    const error = expectRefused(await build(root), root, 'E_YAML');
    expect(error.message).toContain(join(root, 'spec.yaml'));
    const lint = await ferry(['lint', join(root, 'spec.yaml'), '--first-release', '--json']);
    expect(lint.code).toBe(2);
    expect(json<{ error: { code: string } }>(lint).error.code).toBe('E_YAML');
  });
});

/** bin/ferry, killed after `ms`: a command that blocks for ever is a failure, not a hung test. */
function ferryWithin(
  args: readonly string[],
  ms: number,
): Promise<RunResult & { killed: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [FERRY, ...args], { timeout: ms, stdio: 'pipe' });
    child.stdin.end();
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolvePromise({ code: code ?? -1, stdout, stderr, killed: signal !== null }),
    );
  });
}

describe('a spec that is not a regular file', () => {
  it('a FIFO is refused at once by lint and build, not read for ever', async () => {
    const root = await product('fifo-spec');
    const spec = join(root, 'fifo.yaml');
    execFileSync('mkfifo', [spec]);
    for (const args of [
      ['lint', spec, '--first-release', '--json'],
      ['build', spec, '--first-release', '--out', join(root, 'out'), '--key', keys[0]!, '--json'],
    ]) {
      const result = await ferryWithin(args, 15_000);
      expect(result.killed).toBe(false);
      expect(result.code).toBe(2);
      expect(json<{ error: { code: string; file: string } }>(result).error).toMatchObject({
        code: 'E_USAGE',
        file: spec,
        message: `${spec} is a FIFO, not a file`,
        hint: 'name the release spec file itself',
      });
    }
    expect(existsSync(join(root, 'out'))).toBe(false);
  });

  it('a character device (endless zeros) is refused before a byte is read', async () => {
    const root = await product('device-spec');
    const result = await ferryWithin(['lint', '/dev/zero', '--first-release', '--json'], 15_000);
    expect(result.killed).toBe(false);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string } }>(result).error).toMatchObject({
      code: 'E_USAGE',
      message: '/dev/zero is a device or socket, not a file',
    });
    expect(existsSync(join(root, 'history'))).toBe(false);
  });

  it('a folder is a usage error naming it, as a FIFO is', async () => {
    const root = await product('folder-spec');
    const result = await ferry(['lint', join(root, 'payload'), '--first-release', '--json']);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string } }>(result).error).toMatchObject({
      code: 'E_USAGE',
      message: `${join(root, 'payload')} is a folder, not a file`,
    });
  });

  it('a spec over 64 MiB is refused from its size', async () => {
    const root = await product('huge-spec', `# ${'x'.repeat(64 * 1024 * 1024)}\n`);
    const error = expectRefused(await build(root), root, 'E_SPEC_INVALID');
    expect(error.message).toContain(join(root, 'spec.yaml'));
  });
});

describe('a bundle every installer would refuse is not built', () => {
  it('more than 16 keys: refused before anything is written', async () => {
    const root = await product('seventeen-keys');
    const error = expectRefused(await build(root, keys), root, 'E_USAGE');
    expect(error.message).toContain('17');
  });

  it('16 keys still build', async () => {
    const root = await product('sixteen-keys');
    expect((await build(root, keys.slice(0, 16))).code).toBe(0);
  });

  it('a payload whose bundle.json would pass 4 MiB: refused by lint and build, nothing recorded', async () => {
    const root = await product('many-files');
    // Long paths fill bundle.json fast: some 2,900 entries of about 1 KiB each pass 4 MiB.
    const deep = join(root, 'payload', ...['a', 'b', 'c', 'd'].map((c) => c.repeat(200)));
    await mkdir(deep, { recursive: true });
    await Promise.all(
      Array.from({ length: 3200 }, (_, i) => writeFile(join(deep, `${i}`.padStart(200, 'f')), '')),
    );
    const error = expectRefused(await build(root), root, 'E_SPEC_INVALID');
    expect(error.message).toContain('app');
    const lint = await ferry(['lint', join(root, 'spec.yaml'), '--first-release', '--json']);
    expect(lint.code).toBe(2);
    expect(json<{ error: { code: string } }>(lint).error.code).toBe('E_SPEC_INVALID');
  });
});

describe('a history record edited by hand', () => {
  it('a payload path leaving its component is E_HISTORY_INVALID naming the record, before anything is signed', async () => {
    const root = await product('forged-record');
    expect((await build(root)).code).toBe(0);
    const record = join(root, 'history', 'demo-1.0.0.json');
    const forged = JSON.parse(await readFile(record, 'utf8')) as {
      components: { app: { files: unknown[] } };
    };
    forged.components.app.files.push({
      path: '../../etc/cron.d/evil',
      type: 'file',
      mode: 0o644,
      size: 1,
      sha256: 'a'.repeat(64),
    });
    await writeFile(record, JSON.stringify(forged, null, 2));
    // A default-location payload without a path is described by the record alone.
    const spec = (await readFile(join(root, 'spec.yaml'), 'utf8'))
      .replace("release: '1.0.0'", "release: '1.1.0'")
      .replace('payload: ./payload', 'payload: { location: default }');
    await writeFile(join(root, 'next.yaml'), spec);
    const result = await ferry([
      'build',
      join(root, 'next.yaml'),
      '--kind',
      'install',
      '--out',
      join(root, 'out-next'),
      '--key',
      keys[0]!,
      '--json',
    ]);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string; file: string; field: string } }>(result).error).toEqual(
      expect.objectContaining({
        code: 'E_HISTORY_INVALID',
        file: record,
        field: '/components/app/files/1',
      }),
    );
    expect(existsSync(join(root, 'out-next'))).toBe(false);
    expect(readdirSync(join(root, 'history'))).toEqual(['demo-1.0.0.json']);
  });
});

describe('a url payload whose saveAs leaves its component', () => {
  it('is E_SPEC_INVALID naming the field, not a signed bundle every installer refuses', async () => {
    const root = await product('save-as');
    const spec = join(root, 'spec.yaml');
    const url = `{ url: 'https://mirror.example/app.bin', sha256: '${'a'.repeat(64)}', size: 1, saveAs: ../evil }`;
    await writeFile(spec, (await readFile(spec, 'utf8')).replace('./payload', url));
    const error = expectRefused(await build(root), root, 'E_SPEC_INVALID') as { field?: string };
    expect(error.field).toBe('/components/app/payload/saveAs');
  });
});

describe('a spec saved in Latin-1', () => {
  it('is E_YAML naming the line, not notes signed with U+FFFD', async () => {
    const root = await product('latin1');
    const spec = join(root, 'spec.yaml');
    const text = await readFile(spec, 'utf8');
    await writeFile(spec, Buffer.from(`notes: 'caf\xe9'\n${text}`, 'latin1'));
    const error = expectRefused(await build(root), root, 'E_YAML') as { line?: number };
    expect(error.line).toBe(1);
  });
});

describe('a build killed outright (SIGKILL, the OOM killer, a runner timeout)', () => {
  it('leaves its partial bundle under a hidden name the next build removes; a live build’s is left alone', async () => {
    const root = await product('killed');
    const out = join(root, 'out');
    const stop = join(root, 'stop');
    const pub = (keys[0] as string).replace(/\.key$/, '.pub');
    // A signer that waits (an HSM waiting for a touch): the build holds its partial bundle meanwhile.
    const waits = `while [ ! -e '${stop}' ]; do sleep 0.05; done; exit 1`;
    const child = spawn(
      process.execPath,
      [FERRY, 'build', join(root, 'spec.yaml'), '--first-release', '--out', out,
        '--signer', waits, '--signer-key', pub], // prettier-ignore
      { stdio: 'ignore' },
    );
    const closed = new Promise((resolvePromise) => child.on('close', resolvePromise));
    const partials = (): string[] =>
      (existsSync(out) ? readdirSync(out) : []).filter((name) => name.endsWith('.partial'));
    try {
      while (partials().length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      const live = partials();
      expect(live.every((name) => name.startsWith('.demo-1.0.0-install.tar.'))).toBe(true);
      // Another product built into the same folder meanwhile: the live build's file is not its to remove.
      const other = await product('killed-neighbour');
      const spec = join(other, 'spec.yaml');
      await writeFile(
        spec,
        (await readFile(spec, 'utf8')).replace('product: demo', 'product: other'),
      );
      const beside = await ferry([
        'build',
        spec,
        '--first-release',
        '--out',
        out,
        '--key',
        keys[0]!,
      ]);
      expect(beside.code, beside.stderr).toBe(0);
      expect(partials()).toEqual(live);
    } finally {
      child.kill('SIGKILL');
      await closed;
      await writeFile(stop, '');
    }
    // Another machine's build into a shared folder: its process id means nothing here.
    const theirs = '.demo-1.0.0-install.tar.00000000-999999.abcdefabcdef.partial';
    await writeFile(join(out, theirs), 'partial');
    // One untouched for two days (a killed CI job's, in a container of its own, whose host
    // and process ids no later job shares): dead, whatever machine it names.
    const abandoned = '.demo-1.0.0-install.tar.00000000-999998.abcdefabcdef.partial';
    await writeFile(join(out, abandoned), 'partial');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await utimes(join(out, abandoned), twoDaysAgo, twoDaysAgo);
    // The next build into the folder, of another name (a tar.gz), removes what the killed one left.
    const again = await ferry(['build', join(root, 'spec.yaml'), '--first-release', '--out', out,
      '--key', keys[0]!, '--format', 'tar.gz', '--json']); // prettier-ignore
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(
      [theirs, 'demo-1.0.0-install.tar.gz', 'other-1.0.0-install.tar'].sort(),
    );
    const trust = join(root, 'trust.json');
    expect((await ferry(['trust', 'init', '--key', pub, '--out', trust])).code).toBe(0);
    const verified = await ferry([
      'verify',
      json<{ bundle: string }>(again).bundle,
      '--trust',
      trust,
    ]);
    expect(verified.code, verified.stderr).toBe(0);
  });
});

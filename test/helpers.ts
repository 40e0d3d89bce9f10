import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import { FerryError, type ErrorCode } from '../manifest-schema/errors.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const FERRY = join(ROOT, 'bin', 'ferry');
export const FIXTURE = join(ROOT, 'fixtures', 'acme-appliance');
export const RELEASES = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'] as const;
export const EPOCH = '1700000000';

/** A temp folder removed after the file's tests. */
export async function tempDir(prefix = 'ferry-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The code of the FerryError an action throws (or rejects with); undefined when it succeeds. */
export async function codeOf(action: () => unknown): Promise<ErrorCode | undefined> {
  try {
    await action();
  } catch (error) {
    if (error instanceof FerryError) return error.code;
    throw error;
  }
  return undefined;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/ferry as an operator would: a child process, no TTY; `input` is its stdin. */
export function ferry(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<RunResult> {
  return run(process.execPath, [FERRY, ...args], {
    ...(options.input !== undefined ? { input: options.input } : {}),
    cwd: options.cwd ?? ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      // What pulls record (pulled.ts) goes with the run's temp folders (see global-setup.ts).
      FERRY_STATE_DIR: process.env.FERRY_STATE_DIR ?? join(tmpdir(), 'ferry-state'),
      ...options.env,
    },
  });
}

/** Runs a program with exactly the environment given, no TTY; collects its output. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env: Record<string, string>; input?: string },
): Promise<RunResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // a child that exits before reading its input
  child.stdin.end(options.input);
  return outputOf(child);
}

/** What a child spawned with piped stdout and stderr printed, and its exit code (-1: a signal), once it has closed. */
export function outputOf(child: ChildProcess): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs bin/ferry and fails the test with its stderr unless it exits 0. */
export async function ferryOk(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const result = await ferry(args, { env });
  if (result.code !== 0)
    throw new Error(`ferry ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
  return result;
}

/** Parses --json output, failing the test with the command's stderr when it is not JSON. */
export function json<T = Record<string, unknown>>(result: RunResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

/** A private copy of the fixture product (its history folder is written by builds). */
export async function copyFixture(dir: string): Promise<string> {
  const target = join(dir, 'acme-appliance');
  await cp(FIXTURE, target, { recursive: true, verbatimSymlinks: true });
  return target;
}

export interface Workspace {
  dir: string;
  product: string;
  key: string;
  pub: string;
  trust: string;
}

/** Keys, a trust root and a fixture copy, made through the CLI. */
export async function workspace(dir: string): Promise<Workspace> {
  const product = await copyFixture(dir);
  const keygen = await ferry(['keygen', '--out', join(dir, 'keys'), '--name', 'release']);
  if (keygen.code !== 0) throw new Error(keygen.stderr);
  const trust = join(dir, 'trust.json');
  const init = await ferry([
    'trust',
    'init',
    '--key',
    join(dir, 'keys', 'release.pub'),
    '--out',
    trust,
  ]);
  if (init.code !== 0) throw new Error(init.stderr);
  return {
    dir,
    product,
    key: join(dir, 'keys', 'release.key'),
    pub: join(dir, 'keys', 'release.pub'),
    trust,
  };
}

/**
 * A first release of the fixture with `payload` added to a component, signed
 * with the workspace's key, built under `dir`: a bundle large enough that
 * copying or uploading it takes a while.
 */
export async function bigBundle(
  ws: Workspace,
  dir: string,
  name: string,
  release: string,
  payload: Buffer,
): Promise<{ bundle: string; sha256: string }> {
  const product = await copyFixture(join(dir, name));
  await writeFile(join(product, 'components/db/3.0.0/big.bin'), payload);
  const built = await ferry(
    [
      'build',
      join(product, `release-${release}.yaml`),
      '--first-release',
      '--out',
      join(dir, `${name}-out`),
      '--key',
      ws.key,
      '--json',
    ],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  );
  if (built.code !== 0) throw new Error(built.stderr);
  return json<{ bundle: string; sha256: string }>(built);
}

/** Builds the fixture releases in order (all, or the first few); returns bundle paths by release. */
export async function buildAll(
  ws: Workspace,
  out: string,
  format: 'tar' | 'tar.gz' | 'zip' = 'tar',
  releases: readonly string[] = RELEASES,
): Promise<Record<string, string>> {
  const bundles: Record<string, string> = {};
  for (const release of releases) {
    const result = await ferry(
      [
        'build',
        join(ws.product, `release-${release}.yaml`),
        '--out',
        out,
        '--key',
        ws.key,
        '--format',
        format,
        ...(release === RELEASES[0] ? ['--first-release'] : []),
        '--json',
      ],
      {
        env: { SOURCE_DATE_EPOCH: EPOCH },
      },
    );
    if (result.code !== 0) throw new Error(`build ${release} failed: ${result.stderr}`);
    bundles[release] = json<{ bundle: string }>(result).bundle;
  }
  return bundles;
}

export interface KeyFiles {
  key: string;
  pub: string;
  keyid: string;
}

/**
 * Trust roots root-1.json … root-N.json in `folder`, expiring in 2099: version 1
 * of `rootKeys` (all of them needed to sign) and one targets key, then a version
 * per entry of `steps` (`trust sign-next` key options), each signed by every root key.
 */
export async function trustRoots(
  folder: string,
  rootKeys: readonly KeyFiles[],
  targetsKey: KeyFiles,
  steps: ReadonlyArray<readonly string[]>,
): Promise<string[]> {
  await mkdir(folder, { recursive: true });
  const signWith = rootKeys.flatMap((k) => ['--sign-with', k.key]);
  const roots = [join(folder, 'root-1.json')];
  await ferryOk([
    'trust', 'init', ...rootKeys.flatMap((k) => ['--root-key', k.pub]),
    '--root-threshold', String(rootKeys.length), '--targets-key', targetsKey.pub,
    '--expires', '2099-01-01', ...signWith, '--out', roots[0] as string,
  ]); // prettier-ignore
  for (const step of steps) {
    const next = join(folder, `root-${roots.length + 1}.json`);
    await ferryOk([
      'trust', 'sign-next', '--previous', roots.at(-1) as string, ...step,
      '--expires', '2099-01-01', ...signWith, '--out', next,
    ]); // prettier-ignore
    roots.push(next);
  }
  return roots;
}

/** Key pairs made with `ferry keygen`, by name, in `dir`/keys. */
export async function keyPairs<const Name extends string>(
  dir: string,
  ...names: Name[]
): Promise<Record<Name, KeyFiles>> {
  const pairs = {} as Record<Name, KeyFiles>;
  for (const name of names) {
    const result = await ferry(['keygen', '--out', join(dir, 'keys'), '--name', name, '--json']);
    if (result.code !== 0) throw new Error(result.stderr);
    pairs[name] = {
      key: join(dir, 'keys', `${name}.key`),
      pub: join(dir, 'keys', `${name}.pub`),
      keyid: json<{ keyid: string }>(result).keyid,
    };
  }
  return pairs;
}

/** A --signer program: a shell script, as a KMS or HSM client would be. */
export async function signerScript(dir: string, name: string, body: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `#!/bin/sh\nset -e\n${body}\n`, { mode: 0o755 });
  return file;
}

/** A signer's body that signs stdin with `key` through openssl (which wants a file, not a pipe). */
export const opensslSign = (key: string) =>
  `f=$(mktemp); cat > "$f"; openssl pkeyutl -sign -rawin -inkey '${key}' -in "$f"; rm -f "$f"`;

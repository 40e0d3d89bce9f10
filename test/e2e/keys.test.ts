import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EPOCH,
  FERRY,
  ferry,
  ferryOk,
  json,
  keyPairs,
  opensslSign,
  outputOf,
  run,
  signerScript,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';

let ws: Workspace;
let pem: string;
let keyid: string;
let spec: string;
let n = 0;

beforeAll(async () => {
  ws = await workspace(await tempDir());
  pem = await readFile(ws.key, 'utf8');
  spec = join(ws.product, 'release-1.0.0.yaml');
  keyid = json<{ keyids: string[] }>(
    await ferry(['trust', 'init', '--key', ws.pub, '--out', join(ws.dir, 'again.json'), '--json']),
  ).keyids[0] as string;
});

/** A build into a fresh folder, then `ferry verify` of what it wrote. */
async function build(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<{ result: RunResult; out: string; verified?: RunResult }> {
  const out = join(ws.dir, `out-${n++}`);
  const result = await ferry(['build', spec, '--first-release', '--out', out, ...args, '--json'], {
    ...options,
    env: { SOURCE_DATE_EPOCH: EPOCH, ...options.env },
  });
  if (result.code !== 0) return { result, out };
  const bundle = json<{ bundle: string }>(result).bundle;
  return { result, out, verified: await ferry(['verify', bundle, '--trust', ws.trust]) };
}

function neverShowsTheKey(result: RunResult): void {
  const body = pem.split('\n')[1] as string;
  expect(result.stdout + result.stderr).not.toContain(body);
}

/** A signer script in the workspace. */
const signer = (name: string, body: string) => signerScript(ws.dir, name, body);

describe('signing keys from a secret store', () => {
  it('--key env:VAR signs with the PEM in the variable', async () => {
    const { result, verified } = await build(['--key', 'env:RELEASE_KEY'], {
      env: { RELEASE_KEY: pem },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(json<{ keyids: string[] }>(result).keyids).toEqual([keyid]);
    expect(verified?.code, verified?.stderr).toBe(0);
    neverShowsTheKey(result);
  });

  it('--key - reads the key from stdin', async () => {
    const { result, verified } = await build(['--key', '-'], { input: pem });
    expect(result.code, result.stderr).toBe(0);
    expect(verified?.code, verified?.stderr).toBe(0);
  });

  it('an unset variable, empty stdin, or the key itself in place of a source: E_KEY_SOURCE, nothing written', async () => {
    for (const [args, input] of [
      [['--key', 'env:NO_SUCH_VARIABLE'], undefined],
      [['--key', 'env:'], undefined],
      [['--signer', 'cat', '--signer-key', 'env:'], undefined],
      [['--key', '-'], ''],
      [[`--key=${pem}`], undefined],
    ] as const) {
      const { result, out } = await build([...args], input === undefined ? {} : { input });
      expect(result.code).toBe(2);
      const { error } = json<{ error: { code: string; message: string } }>(result);
      expect(error.code).toBe('E_KEY_SOURCE');
      // The message names what was given: the variable, stdin, or `env:` naming none.
      expect(error.message).not.toMatch(/variable {2}|variable $/);
      neverShowsTheKey(result);
      await expect(readdir(out)).rejects.toThrow();
    }
    // As the README writes it, `--key "$(cat k)"`: the PEM's leading dashes do not make it an option.
    const pasted = await build(['--key', pem]);
    expect(pasted.result.code).toBe(2);
    expect(json<{ error: { code: string } }>(pasted.result).error.code).toBe('E_KEY_SOURCE');
    neverShowsTheKey(pasted.result);
    const pastedPub = await ferry(['trust', 'init', '--key', await readFile(ws.pub, 'utf8'),
      '--out', join(ws.dir, 'pasted-pub.json'), '--json']); // prettier-ignore
    expect(json<{ error: { code: string } }>(pastedPub).error.code).toBe('E_KEY_SOURCE');
  });

  it('a key pasted where a public key file belongs is refused without being echoed', async () => {
    const previous = join(ws.dir, 'pasted-root.json');
    await ferry(['trust', 'init', '--root-key', ws.pub, '--targets-key', ws.pub,
      '--expires', '2099-01-01', '--sign-with', ws.key, '--out', previous]); // prettier-ignore
    const pub = await readFile(ws.pub, 'utf8');
    const bundle = json<{ bundle: string }>((await build(['--key', ws.key])).result).bundle;
    for (const pasted of [pem, pub]) {
      const runs = [
        await ferry([
          'trust',
          'init',
          `--key=${pasted}`,
          '--out',
          join(ws.dir, 'p1.json'),
          '--json',
        ]),
        await ferry(['trust', 'init', `--root-key=${pasted}`, '--targets-key', ws.pub,
          '--expires', '2099-01-01', '--out', join(ws.dir, 'p2.json'), '--json']), // prettier-ignore
        await ferry(['trust', 'sign-next', '--previous', previous, `--add-targets-key=${pasted}`,
          '--expires', '2099-01-01', '--out', join(ws.dir, 'p3.json'), '--json']), // prettier-ignore
        (await build(['--signer', 'cat', `--signer-key=${pasted}`])).result,
        await ferry(['publish', bundle, '--repo', join(ws.dir, 'p-repo'), '--trust', ws.trust,
          '--key', ws.key, `--repo-key=${pasted}`, '--json']), // prettier-ignore
      ];
      for (const result of runs) {
        expect(result.code).toBe(2);
        expect(json<{ error: { code: string } }>(result).error.code).toBe('E_KEY_SOURCE');
        neverShowsTheKey(result);
        expect(result.stdout + result.stderr).not.toContain(pub.split('\n')[1] as string);
      }
    }
    await expect(readdir(join(ws.dir, 'p-repo'))).rejects.toThrow();
  });

  it('--sign-with takes keys as --key does: the same key or stdin twice is E_USAGE naming --sign-with, nothing written', async () => {
    const previous = join(ws.dir, 'twice-root.json');
    await ferryOk(['trust', 'init', '--root-key', ws.pub, '--targets-key', ws.pub,
      '--expires', '2099-01-01', '--sign-with', ws.key, '--out', previous]); // prettier-ignore
    for (const [twice, input] of [
      [['--sign-with', ws.key, '--sign-with', 'env:RELEASE_KEY'], undefined],
      [['--sign-with', '-', '--sign-with', '-'], pem],
    ] as const) {
      for (const command of [
        ['trust', 'init', '--root-key', ws.pub, '--targets-key', ws.pub],
        ['trust', 'sign-next', '--previous', previous],
      ]) {
        const out = join(ws.dir, `twice-${n++}.json`);
        const result = await ferry(
          [...command, '--expires', '2099-01-01', ...twice, '--out', out, '--json'],
          { env: { RELEASE_KEY: pem }, ...(input === undefined ? {} : { input }) },
        );
        expect(result.code, command.join(' ')).toBe(2);
        const { error } = json<{ error: { code: string; message: string } }>(result);
        expect(error.code).toBe('E_USAGE');
        expect(error.message).toContain(twice.includes('-') ? '--sign-with -' : 'env:RELEASE_KEY');
        await expect(readFile(out)).rejects.toThrow();
      }
    }
  });

  it('an encrypted private key is E_KEY_INVALID saying so, not taken for a .pub file', async () => {
    const encrypted = join(ws.dir, 'encrypted.key');
    const made = await run('openssl', ['pkey', '-in', ws.key, '-aes256', '-passout', 'pass:x',
      '-out', encrypted], { env: { PATH: process.env.PATH ?? '' } }); // prettier-ignore
    expect(made.code, made.stderr).toBe(0);
    const { result } = await build(['--key', encrypted]);
    expect(result.code).toBe(2);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(result);
    expect(error.code).toBe('E_KEY_INVALID');
    expect(error.message).toContain(`${encrypted} is an encrypted private key`);
    expect(error.hint).not.toContain('.pub');
  });

  it('a variable that holds no private key is E_KEY_INVALID, naming the variable and not its contents', async () => {
    const { result } = await build(['--key', 'env:RELEASE_KEY'], {
      env: { RELEASE_KEY: await readFile(ws.pub, 'utf8') },
    });
    expect(result.code).toBe(2);
    const { error } = json<{ error: { code: string; message: string } }>(result);
    expect(error.code).toBe('E_KEY_INVALID');
    expect(error.message).toContain('RELEASE_KEY');
    expect(result.stdout).not.toContain('PUBLIC KEY');
  });
});

describe('--signer: an external program signs', () => {
  it('with --signer-key, the bundle names its key and verifies', async () => {
    const command = await signer('kms-sign', opensslSign(ws.key));
    const { result, verified } = await build(['--signer', command, '--signer-key', ws.pub]);
    expect(result.code, result.stderr).toBe(0);
    expect(json<{ keyids: string[] }>(result).keyids).toEqual([keyid]);
    expect(verified?.code, verified?.stderr).toBe(0);
  });

  it('without --signer-key, the signer is asked for its public key', async () => {
    const command = await signer(
      'hsm',
      `if [ "$FERRY_SIGNER" = public-key ]; then cat '${ws.pub}'; exit 0; fi\n${opensslSign(ws.key)}`,
    );
    const { result, verified } = await build(['--signer', command]);
    expect(result.code, result.stderr).toBe(0);
    expect(json<{ keyids: string[] }>(result).keyids).toEqual([keyid]);
    expect(verified?.code, verified?.stderr).toBe(0);
  });

  it('the signature is checked: another key, a failing program or junk is E_SIGNER, nothing written', async () => {
    await ferry(['keygen', '--out', join(ws.dir, 'other'), '--name', 'other']);
    const other = join(ws.dir, 'other', 'other.key');
    const cases = [
      ['--signer', await signer('wrong-key', opensslSign(other)), '--signer-key', ws.pub],
      [
        '--signer',
        await signer('fails', 'echo "kms: access denied" >&2; exit 7'),
        '--signer-key',
        ws.pub,
      ],
      [
        '--signer',
        await signer('junk', 'cat >/dev/null; echo not-a-signature'),
        '--signer-key',
        ws.pub,
      ],
      ['--signer', await signer('no-pub', opensslSign(ws.key))],
    ];
    for (const args of cases) {
      const { result, out } = await build(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(json<{ error: { code: string } }>(result).error.code).toBe('E_SIGNER');
      expect(await readdir(out).catch(() => [])).toEqual([]);
    }
  });

  it('several --signer sign together, each --signer-key paired with its signer in order', async () => {
    const { second } = await keyPairs(join(ws.dir, 'two'), 'second');
    const both = join(ws.dir, 'two', 'trust.json');
    const init = await ferry([
      'trust',
      'init',
      '--key',
      ws.pub,
      '--key',
      second.pub,
      '--threshold',
      '2',
      '--out',
      both,
    ]);
    expect(init.code, init.stderr).toBe(0);
    const kms = await signer('kms-one', opensslSign(ws.key));
    const hsm = await signer('hsm-two', opensslSign(second.key));
    const { result } = await build(
      ['--signer', kms, '--signer', hsm, '--signer-key', ws.pub, '--signer-key', `env:SECOND_PUB`],
      { env: { SECOND_PUB: await readFile(second.pub, 'utf8') } },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(json<{ keyids: string[] }>(result).keyids).toEqual([keyid, second.keyid].sort());
    const bundle = json<{ bundle: string }>(result).bundle;
    const verified = await ferry(['verify', bundle, '--trust', both]);
    expect(verified.code, verified.stderr).toBe(0);

    // Swapped public keys name the wrong signer: its signature is refused, not trusted.
    const swapped = await build([
      '--signer',
      kms,
      '--signer',
      hsm,
      '--signer-key',
      second.pub,
      '--signer-key',
      ws.pub,
    ]);
    expect(json<{ error: { code: string } }>(swapped.result).error.code).toBe('E_SIGNER');
    // One public key for two signers cannot be paired.
    const short = await build(['--signer', kms, '--signer', hsm, '--signer-key', ws.pub]);
    expect([short.result.code, json<{ error: { code: string } }>(short.result).error.code]).toEqual(
      [2, 'E_USAGE'],
    );
  });

  it('a signer that leaves a process holding its output is judged when it exits, not when that process ends', async () => {
    // An agent or daemon the signer starts inherits stdout; Ferry must not wait for it.
    const command = await signer('leaves-agent', `${opensslSign(ws.key)}; sleep 120 2>/dev/null &`);
    const { result, verified } = await build(['--signer', command, '--signer-key', ws.pub]);
    expect(result.code, result.stderr).toBe(0);
    expect(verified?.code, verified?.stderr).toBe(0);
  }, 60_000);

  it('a signer that hangs, with no terminal (CI): its timeout ends it and what it started, then E_SIGNER', async () => {
    const pids = join(ws.dir, 'hung-signer-pids');
    // An HSM client that never answers, and what it started holding its output; one ignores SIGTERM.
    const command = `sleep 600 & echo $! >>'${pids}'; sh -c 'trap "" TERM; sleep 600' & echo $! >>'${pids}'; wait`;
    const { result: running, out } = buildInSession(command, '1');
    const result = await running;
    const started = (await readFile(pids, 'utf8')).trim().split('\n').map(Number);
    try {
      expect(result.code, result.stderr).toBe(2);
      const { error } = json<{ error: { code: string; message: string; hint: string } }>(result);
      expect(error.code).toBe('E_SIGNER');
      expect(error.message).toContain('did not finish within 1 s (FERRY_SIGNER_SECONDS');
      expect(error.hint).toContain('FERRY_SIGNER_SECONDS');
      expect(started).toHaveLength(2);
      expect(started.filter((pid) => !gone(pid))).toEqual([]);
      expect(await readdir(out).catch(() => [])).toEqual([]);
    } finally {
      for (const pid of started.filter((one) => !gone(one))) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);

  it('a SIGTERM that ends Ferry while a signer runs in its own group (no terminal) ends that group too, SIGKILL for what ignores SIGTERM', async () => {
    const pids = join(ws.dir, 'cancelled-signer-pids');
    // One child ignores SIGTERM (an HSM client holding its session): the runner's SIGKILL of
    // the job's group would have ended it, but the signer's group is no longer in it.
    const command = `(trap '' TERM; exec sleep 600) & echo $! >>'${pids}'; sleep 600 & echo $! >>'${pids}'; wait`;
    const { child, result } = buildInSession(command, '600');
    let started: number[] = [];
    try {
      while (started.length < 2) {
        await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
        started = (await readFile(pids, 'utf8').catch(() => ''))
          .trim()
          .split('\n')
          .filter(Boolean)
          .map(Number);
      }
      // A CI runner cancelling the job signals Ferry's group, which the signer is no longer in.
      process.kill(-(child.pid as number), 'SIGTERM');
      await result;
      expect(child.signalCode).toBe('SIGTERM');
      const deadline = Date.now() + 5000;
      while (started.some((pid) => !gone(pid)) && Date.now() < deadline)
        await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
      expect(started.filter((pid) => !gone(pid))).toEqual([]);
    } finally {
      for (const pid of started.filter((one) => !gone(one))) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);

  it('of several signers, the one that failed is named', async () => {
    const { second } = await keyPairs(join(ws.dir, 'named'), 'second');
    const kms = await signer('kms-fine', opensslSign(ws.key));
    const hsm = await signer('hsm-denied', 'cat >/dev/null; exit 7');
    const { result } = await build([
      '--signer',
      kms,
      '--signer',
      hsm,
      '--signer-key',
      ws.pub,
      '--signer-key',
      second.pub,
    ]);
    const { error } = json<{ error: { code: string; message: string } }>(result);
    expect([result.code, error.code]).toEqual([2, 'E_SIGNER']);
    expect(error.message).toContain(hsm);
    expect(error.message).not.toContain(kms);
  });

  it('a first publish whose signer fails leaves no repository behind, and the next makes it whole', async () => {
    const bundle = json<{ bundle: string }>((await build(['--key', ws.key])).result).bundle;
    const repo = join(ws.dir, 'signer-failed-repo');
    const denied = await signer('kms-publish-denied', 'cat >/dev/null; exit 7');
    const failed = await ferry(['publish', bundle, '--repo', repo, '--trust', ws.trust,
      '--signer', denied, '--signer-key', ws.pub, '--json']); // prettier-ignore
    expect([failed.code, json<{ error: { code: string } }>(failed).error.code]).toEqual([
      2,
      'E_SIGNER',
    ]);
    // No config that no event records: the repository was not made.
    const none = await ferry(['channels', '--repo', repo, '--json']);
    expect(json<{ error: { code: string } }>(none).error.code).toBe('E_REPO_NOT_FOUND');
    const again = await ferry([
      'publish',
      bundle,
      '--repo',
      repo,
      '--trust',
      ws.trust,
      '--key',
      ws.key,
    ]);
    expect(again.code, again.stderr).toBe(0);
    const verified = await ferry(['history', '--repo', repo, '--verify']);
    expect(verified.code, verified.stderr).toBe(0);
  });

  it('the same key as --key and as --signer is refused, not counted twice', async () => {
    const command = await signer('kms-again', opensslSign(ws.key));
    const { result } = await build(['--key', ws.key, '--signer', command, '--signer-key', ws.pub]);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string } }>(result).error.code).toBe('E_USAGE');
  });
});

/** Whether a process has ended (a zombie no one reaped yet has). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

/** bin/ferry build signing with `command`, in a session of its own as a CI job runs: no controlling terminal a signer could prompt on. */
function buildInSession(
  command: string,
  seconds: string,
): { child: ChildProcess; result: Promise<RunResult>; out: string } {
  const out = join(ws.dir, `out-${n++}`);
  const child = spawn(
    process.execPath,
    [FERRY, 'build', spec, '--first-release', '--out', out,
      '--signer', command, '--signer-key', ws.pub, '--json'], // prettier-ignore
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        SOURCE_DATE_EPOCH: EPOCH,
        FERRY_SIGNER_SECONDS: seconds,
      },
    },
  );
  return { child, result: outputOf(child), out };
}

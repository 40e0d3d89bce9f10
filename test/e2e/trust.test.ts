import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ferry,
  ferryOk,
  json,
  keyPairs,
  opensslSign,
  signerScript,
  tempDir,
  workspace,
  type KeyFiles,
  type Workspace,
} from '../helpers.js';

interface Summary {
  version: number;
  expires: string | null;
  format: 'tuf' | 'first';
  roles: Record<'root' | 'targets', { threshold: number; keys: Array<{ keyid: string }> }>;
  signatures: Array<{ version: number; met: boolean; missing: Array<{ name?: string }> }>;
}

interface Verdict {
  verdict: 'accepted' | 'refused';
  version: number;
  versions: number[];
  revoked: string[];
  error?: { code: string };
}

let dir: string;
let ws: Workspace;
let keys: Record<'alice' | 'bob' | 'carol' | 'ci-1' | 'ci-2', KeyFiles>;

/** Key holders alice, bob and carol hold root keys; ci-1 and ci-2 are CI's targets keys. */
beforeAll(async () => {
  dir = await tempDir('ferry-trust-');
  ws = await workspace(dir);
  keys = await keyPairs(dir, 'alice', 'bob', 'carol', 'ci-1', 'ci-2');
});

const k = (name: keyof typeof keys) => keys[name];

/** `ferry trust verify-chain --json`: the verdict and the exit code. */
async function verifyChain(chainDir: string, trusted: string): Promise<Verdict & { code: number }> {
  const result = await ferry(['trust', 'verify-chain', chainDir, '--trusted', trusted, '--json']);
  return { ...json<Verdict>(result), code: result.code };
}

describe('the key holders make and rotate trust roots through bin/ferry', () => {
  let chain: string;

  it('trust init writes version 1, signed by each holder in turn', async () => {
    chain = join(dir, 'chain');
    await mkdir(chain);
    const v1 = join(chain, 'root-1.json');
    const init = json<Summary>(
      await ferryOk([
        'trust',
        'init',
        '--root-key',
        k('alice').pub,
        '--root-key',
        k('bob').pub,
        '--root-key',
        k('carol').pub,
        '--root-threshold',
        '2',
        '--targets-key',
        k('ci-1').pub,
        '--expires',
        '2099-01-01',
        '--sign-with',
        k('alice').key,
        '--out',
        v1,
        '--json',
      ]),
    );
    expect(init).toMatchObject({ version: 1, format: 'tuf', expires: '2099-01-01T00:00:00Z' });
    expect(init.roles.root.threshold).toBe(2);
    expect(init.roles.targets.keys.map((key) => key.keyid)).toEqual([k('ci-1').keyid]);
    expect(init.signatures[0]?.met).toBe(false);

    const signed = json<Summary>(
      await ferryOk(['trust', 'sign', v1, '--key', k('bob').key, '--json']),
    );
    expect(signed.signatures[0]?.met).toBe(true);
    expect(signed.signatures[0]?.missing.map((key) => key.name)).toEqual(['carol']);

    const shown = await ferryOk(['trust', 'show', v1]);
    expect(shown.stdout).toContain('version 1');
    expect(shown.stdout).toContain('carol');
  });

  it('sign-next revokes a targets key and verify-chain walks to the new version', async () => {
    const v2 = join(chain, 'root-2.json');
    const next = json<Summary>(
      await ferryOk([
        'trust',
        'sign-next',
        '--previous',
        join(chain, 'root-1.json'),
        '--add-targets-key',
        k('ci-2').pub,
        '--revoke-targets-key',
        'ci-1',
        '--expires',
        '2099-01-01',
        '--sign-with',
        k('alice').key,
        '--out',
        v2,
        '--json',
      ]),
    );
    expect(next.version).toBe(2);
    expect(next.signatures.map((s) => s.met)).toEqual([false, false]);

    const half = await verifyChain(chain, join(chain, 'root-1.json'));
    expect(half.code).toBe(3);
    expect(half).toMatchObject({
      verdict: 'refused',
      version: 1,
      error: { code: 'E_ROOT_THRESHOLD_OLD' },
    });

    // carol's root key is in an HSM: a --signer program signs for her.
    const hsm = await signerScript(dir, 'carol-hsm', opensslSign(k('carol').key));
    await ferryOk(['trust', 'sign', v2, '--signer', hsm, '--signer-key', k('carol').pub]);
    const walked = await verifyChain(chain, join(chain, 'root-1.json'));
    expect(walked).toMatchObject({ code: 0, verdict: 'accepted', version: 2, versions: [1, 2] });
    expect(walked.revoked).toEqual([k('ci-1').keyid]);
  });

  it('a root key rotated out signs version N+1 with version N as --previous', async () => {
    const v3 = join(chain, 'root-3.json');
    await ferryOk([
      'trust',
      'sign-next',
      '--previous',
      join(chain, 'root-2.json'),
      '--revoke-root-key',
      'carol',
      '--root-threshold',
      '1',
      '--expires',
      '2099-01-01',
      '--out',
      v3,
    ]);
    const refused = await ferry(['trust', 'sign', v3, '--key', k('carol').key, '--json']);
    expect(refused.code).toBe(2);
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('E_ROOT_KEY_UNKNOWN');
    await ferryOk([
      'trust',
      'sign',
      v3,
      '--key',
      k('carol').key,
      '--previous',
      join(chain, 'root-2.json'),
    ]);
    await ferryOk([
      'trust',
      'sign',
      v3,
      '--key',
      k('alice').key,
      '--previous',
      join(chain, 'root-2.json'),
    ]);
    const walked = await verifyChain(chain, join(chain, 'root-1.json'));
    expect(walked).toMatchObject({ code: 0, verdict: 'accepted', version: 3, versions: [1, 2, 3] });
  });

  it('a chain past an expired newest root is refused; the human verdict names the version', async () => {
    const expired = join(dir, 'expired');
    await mkdir(expired);
    const v1 = join(expired, 'root-1.json');
    await ferryOk([
      'trust',
      'init',
      '--root-key',
      k('alice').pub,
      '--targets-key',
      k('ci-1').pub,
      '--expires',
      '2001-01-01',
      '--sign-with',
      k('alice').key,
      '--out',
      v1,
    ]);
    const result = await ferry(['trust', 'verify-chain', expired, '--trusted', v1]);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('E_ROOT_EXPIRED');
  });

  it('a trusted root its holders have not all signed is an input error, not a verdict', async () => {
    const unsigned = join(dir, 'unsigned');
    await mkdir(unsigned);
    const v1 = join(unsigned, 'root-1.json');
    await ferryOk([
      'trust',
      'init',
      '--root-key',
      k('alice').pub,
      '--root-key',
      k('bob').pub,
      '--root-threshold',
      '2',
      '--targets-key',
      k('ci-1').pub,
      '--expires',
      '2099-01-01',
      '--sign-with',
      k('alice').key,
      '--out',
      v1,
    ]);
    const result = await ferry(['trust', 'verify-chain', unsigned, '--trusted', v1, '--json']);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string } }>(result).error.code).toBe('E_TRUST_INVALID');
  });

  it('a trust root of the first format is version 1 of a chain', async () => {
    const legacy = join(dir, 'legacy');
    await mkdir(legacy);
    await copyFile(ws.trust, join(legacy, 'trust.json'));
    const v2 = join(legacy, 'root-2.json');
    await ferryOk([
      'trust',
      'sign-next',
      '--previous',
      ws.trust,
      '--add-root-key',
      k('alice').pub,
      '--revoke-root-key',
      'release',
      '--expires',
      '2099-01-01',
      '--sign-with',
      ws.key,
      '--sign-with',
      k('alice').key,
      '--out',
      v2,
    ]);
    const walked = await verifyChain(legacy, ws.trust);
    expect(walked).toMatchObject({ code: 0, verdict: 'accepted', versions: [1, 2] });
    const shown = json<Summary>(await ferryOk(['trust', 'show', ws.trust, '--json']));
    expect(shown).toMatchObject({ version: 1, format: 'first', expires: null });
  });

  it('trust init and sign-next make the folder --out names, as keygen makes its own', async () => {
    // The README's first step writes trust/root-1.json into a checkout that has no trust/ yet.
    const v1 = join(dir, 'fresh', 'trust', 'root-1.json');
    await ferryOk([
      'trust',
      'init',
      '--root-key',
      k('alice').pub,
      '--targets-key',
      k('ci-1').pub,
      '--expires',
      '2099-01-01',
      '--sign-with',
      k('alice').key,
      '--out',
      v1,
    ]);
    const v2 = join(dir, 'elsewhere', 'root-2.json');
    await ferryOk([
      'trust',
      'sign-next',
      '--previous',
      v1,
      '--expires',
      '2099-01-01',
      '--sign-with',
      k('alice').key,
      '--out',
      v2,
    ]);
    const first = join(dir, 'fresh-first', 'trust.json');
    await ferryOk(['trust', 'init', '--key', k('ci-1').pub, '--out', first]);
    expect((await verifyChain(join(dir, 'fresh', 'trust'), v1)).code).toBe(0);
  });

  it('refuses mixing the first format with TUF options, and a date it cannot read', async () => {
    const mixed = await ferry([
      'trust',
      'init',
      '--key',
      ws.pub,
      '--expires',
      '2099-01-01',
      '--out',
      join(dir, 'x.json'),
    ]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('E_USAGE');
    const badDate = await ferry([
      'trust',
      'init',
      '--root-key',
      ws.pub,
      '--targets-key',
      ws.pub,
      '--expires',
      'next year',
      '--out',
      join(dir, 'y.json'),
    ]);
    expect(badDate.code).toBe(2);
    expect(badDate.stderr).toContain('--expires');
  });
});

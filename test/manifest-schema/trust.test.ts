import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertTrusted,
  canonicalJson,
  checkSignatures,
  decodeRoot,
  envelopeBytes,
  fromFirstFormat,
  parseTrustedRoot,
  readTrustedRoot,
  ROOT_PAYLOAD_TYPE,
  signEnvelope,
  walkRootChain,
  type RootDocument,
  type TrustRoot,
} from '../../manifest-schema/index.js';
import { codeOf, tempDir } from '../helpers.js';
import { newKeys, rootBytes, rootDocument, rootEnvelope, type TestKey } from './roots.js';

const NOW = new Date('2030-06-01T00:00:00Z');
const { A, B, C, T1, T2, T3, U } = newKeys('A', 'B', 'C', 'T1', 'T2', 'T3', 'U');

function firstFormat(threshold: number, ...keys: TestKey[]): TrustRoot {
  return {
    formatVersion: 1,
    threshold,
    keys: keys.map((key) => ({
      keyid: key.keyid,
      publicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    })),
  };
}

const bundle = Buffer.from(canonicalJson({ release: '1.0.0' }));
const signedBy = (...keys: TestKey[]) =>
  signEnvelope(
    bundle,
    keys.map((key) => key.privateKey),
  );

describe('reading a trust root', () => {
  it('reads the first format as version 1 whose root and targets roles are its keys', async () => {
    const dir = await tempDir();
    const file = join(dir, 'trust.json');
    const legacy = firstFormat(2, A, B, C);
    await writeFile(file, JSON.stringify(legacy, null, 2));
    const root = await readTrustedRoot(file);
    const role = { keyids: [A.keyid, B.keyid, C.keyid], threshold: 2 };
    expect(root).toMatchObject({ version: 1, expires: null, signed: null, revoked: {} });
    expect(root.roles).toEqual({ root: role, targets: role });
    for (const envelope of [signedBy(A), signedBy(A, B), signedBy(U)])
      expect(checkSignatures(envelope, bundle, root)).toEqual(
        checkSignatures(envelope, bundle, legacy),
      );
  });

  it('reads a TUF root only when its own root threshold signed it', async () => {
    const document = rootDocument({ version: 1, root: [A, B, C], rootThreshold: 2, targets: [T1] });
    expect(await codeOf(() => parseTrustedRoot(rootBytes(document, [A]), 'trust.json'))).toBe(
      'E_TRUST_INVALID',
    );
    expect(await codeOf(() => parseTrustedRoot(rootBytes(document, [A, T1]), 'trust.json'))).toBe(
      'E_TRUST_INVALID',
    );
    const root = parseTrustedRoot(rootBytes(document, [A, C]), 'trust.json');
    expect(root).toMatchObject({ version: 1, expires: document.expires });
    expect(root.roles.targets).toEqual({ keyids: [T1.keyid], threshold: 1 });
  });

  const base = rootDocument({ version: 2, root: [A], rootThreshold: 1, targets: [T1] });
  const edit = (change: (d: Record<string, unknown> & RootDocument) => void): RootDocument => {
    const document = structuredClone(base) as Record<string, unknown> & RootDocument;
    change(document);
    return document;
  };
  it.each<[string, () => Buffer]>([
    [
      'a root that is not canonical JSON',
      () => {
        const payload = Buffer.from(JSON.stringify(base, null, 2));
        return envelopeBytes(signEnvelope(payload, [A.privateKey], ROOT_PAYLOAD_TYPE));
      },
    ],
    [
      'an envelope of another payload type',
      () => envelopeBytes(signEnvelope(Buffer.from(canonicalJson(base)), [A.privateKey])),
    ],
    [
      'a key under another key id',
      () =>
        rootBytes(
          edit((d) => {
            d.keys[T2.keyid] = d.keys[T1.keyid] as RootDocument['keys'][string];
            delete d.keys[T1.keyid];
            d.roles.targets.keyids = [T2.keyid];
          }),
          [A],
        ),
    ],
    [
      'a role naming a key not in /keys',
      () =>
        rootBytes(
          edit((d) => {
            d.roles.targets.keyids = [T2.keyid];
          }),
          [A],
        ),
    ],
    [
      'a threshold above its keys',
      () =>
        rootBytes(
          edit((d) => {
            d.roles.root.threshold = 2;
          }),
          [A],
        ),
    ],
    [
      'a key id twice in a role',
      () =>
        rootBytes(
          edit((d) => {
            d.roles.root.keyids = [A.keyid, A.keyid];
          }),
          [A],
        ),
    ],
    [
      'a role TUF does not know',
      () =>
        rootBytes(
          edit((d) => {
            d.roles = { ...d.roles, mirrors: d.roles.root } as RootDocument['roles'];
          }),
          [A],
        ),
    ],
    [
      'a missing snapshot role',
      () =>
        rootBytes(
          edit((d) => {
            delete (d.roles as Partial<RootDocument['roles']>).snapshot;
          }),
          [A],
        ),
    ],
    [
      'a date that does not exist',
      () =>
        rootBytes(
          edit((d) => {
            d.expires = '2030-02-30T00:00:00Z';
          }),
          [A],
        ),
    ],
    [
      'an unknown field',
      () =>
        rootBytes(
          edit((d) => {
            d.mirrors = [];
          }),
          [A],
        ),
    ],
    [
      'a key that is not Ed25519',
      () =>
        rootBytes(
          edit((d) => {
            (d.keys[A.keyid] as { keytype: string }).keytype = 'rsa';
          }),
          [A],
        ),
    ],
    [
      'a name for a key not in /keys',
      () =>
        rootBytes(
          edit((d) => {
            d['x-ferry'] = { names: { [U.keyid]: 'stranger' } };
          }),
          [A],
        ),
    ],
    [
      'a name with a control character, which TUF would sign other bytes for',
      () =>
        rootBytes(
          edit((d) => {
            d['x-ferry'] = { names: { [A.keyid]: 'alice\n' } };
          }),
          [A],
        ),
    ],
    [
      'a version of 0',
      () =>
        rootBytes(
          edit((d) => {
            d.version = 0;
          }),
          [A],
        ),
    ],
  ])('refuses %s', async (_name, make) => {
    const bytes = make();
    expect(await codeOf(() => decodeRoot(bytes, { file: 'root-2.json' }))).toBe('E_ROOT_INVALID');
    expect(await codeOf(() => parseTrustedRoot(bytes, 'trust.json'))).toBe('E_TRUST_INVALID');
  });

  it('decodes the document it signs, names and all', () => {
    const document = edit((d) => {
      d['x-ferry'] = { names: { [A.keyid]: 'alice' } };
    });
    const root = decodeRoot(rootBytes(document, [A]), { file: 'root-2.json' });
    expect(root.signed?.document).toEqual(document);
    expect(root.keys[A.keyid]?.name).toBe('alice');
  });
});

describe('bundle signatures', () => {
  const root = parseTrustedRoot(
    rootBytes(
      rootDocument({
        version: 1,
        root: [A],
        rootThreshold: 1,
        targets: [T1, T2],
        targetsThreshold: 2,
      }),
      [A],
    ),
    'trust.json',
  );

  it('count the targets role with its threshold, never the root role', async () => {
    expect(checkSignatures(signedBy(T1, T2), bundle, root)).toMatchObject({
      valid: true,
      keyids: [T1.keyid, T2.keyid].sort(),
      threshold: 2,
    });
    expect(checkSignatures(signedBy(T1), bundle, root).valid).toBe(false);
    expect(checkSignatures(signedBy(T1, A), bundle, root).valid).toBe(false);
    expect(
      await codeOf(() => assertTrusted(checkSignatures(signedBy(A), bundle, root), 'b.tar')),
    ).toBe('E_SIGNATURE');
  });
});

describe('revoked keys', () => {
  // v1: targets T1; v2: T1 revoked, T2 in; v3: T3 in. T3 and T2 sign from v3 on.
  const documents = [
    rootDocument({ version: 1, root: [A], rootThreshold: 1, targets: [T1] }),
    rootDocument({ version: 2, root: [A], rootThreshold: 1, targets: [T2] }),
    rootDocument({ version: 3, root: [A], rootThreshold: 1, targets: [T2, T3] }),
  ];
  const files = documents.map((document, i) => ({
    file: `root-${i + 1}.json`,
    bytes: rootBytes(document, [A]),
  }));
  const trusted = parseTrustedRoot(files[0]?.bytes as Buffer, 'trust.json');
  const walk = walkRootChain(trusted, files, NOW);
  const verdict = async (...keys: TestKey[]) =>
    codeOf(() => assertTrusted(checkSignatures(signedBy(...keys), bundle, walk.root), 'b.tar'));

  it('are the targets keys of earlier roots that the final root dropped', () => {
    expect(walk.refusal).toBeUndefined();
    expect(Object.keys(walk.root.revoked)).toEqual([T1.keyid]);
    expect(walk.root.revoked[T1.keyid]?.revokedIn).toBe(2);
  });

  it('are told apart from keys the appliance never knew', async () => {
    expect(await verdict(T1)).toBe('E_KEY_REVOKED');
    expect(await verdict(U)).toBe('E_SIGNATURE');
    expect(await verdict(T3)).toBeUndefined();
    // a current key's signature is enough; the revoked one beside it never counts
    expect(await verdict(T1, T2)).toBeUndefined();
    expect(checkSignatures(signedBy(T1, T2), bundle, walk.root).revoked).toEqual([T1.keyid]);
  });

  it('only when the signature verifies under the revoked key', async () => {
    const forged = signedBy(U);
    forged.signatures = forged.signatures.map((s) => ({ ...s, keyid: T1.keyid }));
    expect(
      await codeOf(() => assertTrusted(checkSignatures(forged, bundle, walk.root), 'b.tar')),
    ).toBe('E_SIGNATURE');
  });

  it('stop being revoked when a later root takes them back', async () => {
    const back = rootDocument({ version: 4, root: [A], rootThreshold: 1, targets: [T1] });
    const later = walkRootChain(
      walk.root,
      [{ file: 'root-4.json', bytes: rootBytes(back, [A]) }],
      NOW,
    );
    expect(Object.keys(later.root.revoked).sort()).toEqual([T2.keyid, T3.keyid].sort());
    expect(later.root.revoked[T2.keyid]?.revokedIn).toBe(4);
    expect(
      await codeOf(() => assertTrusted(checkSignatures(signedBy(T1), bundle, later.root), 'b.tar')),
    ).toBeUndefined();
  });

  it('include the first format keys a TUF root replaced', () => {
    const legacy = fromFirstFormat(firstFormat(1, T1));
    const next = rootDocument({ version: 2, root: [A], rootThreshold: 1, targets: [T2] });
    const migrated = walkRootChain(
      legacy,
      [{ file: 'root-2.json', bytes: envelopeBytes(rootEnvelope(next, [T1, A])) }],
      NOW,
    );
    expect(migrated.refusal).toBeUndefined();
    expect(Object.keys(migrated.root.revoked)).toEqual([T1.keyid]);
  });
});

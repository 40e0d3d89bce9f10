import { createHash, createPrivateKey } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keygen } from '../../builder/signing.js';
import { trustRootInit, trustSignNext } from '../../builder/trust.js';
import { verifyBundle } from '../../bundle/verify.js';
import {
  MAX_ROOT_BYTES,
  MAX_ROOT_STEPS,
  readTrustedRoot,
  type ArtifactRef,
} from '../../manifest-schema/index.js';
import { tempDir } from '../helpers.js';
import { baseBundle, find, resigned, tarBytes, type Base, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, formats, trustOf } from './refuse.js';

// A bundle carries trust roots 1 and 2 (v2 replaced targets key ci-1 by ci-2)
// and is signed by ci-2; the appliance trusts version 1. Each test changes the
// carried chain after signing and expects verify to refuse it. The roots are
// part of the layout the signed metadata gives, so a root of another size is
// refused from its header, unread, before the chain is walked.

const EXPIRES = new Date('2099-01-01T00:00:00Z');
interface Chained extends Base {
  rootKey: string;
  spare: string;
  spareKey: string;
  signer: string;
}
let made: Promise<Chained> | undefined;

function chained(): Promise<Chained> {
  made ??= (async () => {
    const dir = await tempDir('ferry-chain-');
    const keys = join(dir, 'chain-keys');
    const [root, ci1, ci2, spare] = await Promise.all(
      ['root', 'ci-1', 'ci-2', 'spare'].map((name) => keygen(keys, name)),
    );
    if (!root || !ci1 || !ci2 || !spare) throw new Error('keygen');
    const chain = join(dir, 'chain');
    await mkdir(chain);
    const v1 = join(chain, 'root-1.json');
    await trustRootInit({
      rootKeys: [root.publicKey],
      rootThreshold: 1,
      targetsKeys: [ci1.publicKey],
      targetsThreshold: 1,
      expires: EXPIRES,
      signWith: [root.privateKey],
      out: v1,
    });
    await trustSignNext({
      previous: v1,
      addTargets: [ci2.publicKey],
      revokeTargets: [ci1.keyid],
      expires: EXPIRES,
      signWith: [root.privateKey],
      out: join(chain, 'root-2.json'),
    });
    const base = await baseBundle(dir, { key: ci2.privateKey, trust: v1, trustChain: chain });
    return {
      ...base,
      rootKey: root.privateKey,
      spare: spare.publicKey,
      spareKey: spare.privateKey,
      signer: ci2.publicKey,
    };
  })();
  return made;
}

/** Another version 2, validly signed by the root key: only the signed list tells it apart. */
async function otherVersion2(base: {
  dir: string;
  trust: string;
  rootKey: string;
  spare: string;
  signer: string;
}) {
  const out = join(base.dir, `other-${Math.random().toString(36).slice(2)}.json`);
  await trustSignNext({
    previous: base.trust,
    addTargets: [base.signer, base.spare],
    expires: EXPIRES,
    signWith: [base.rootKey],
    out,
  });
  return readFile(out);
}

/** A valid version 3 after the chain's version 2 (adding the spare targets key), written as `name`. */
async function version3(base: Chained, name: string): Promise<string> {
  const out = join(base.dir, name);
  await trustSignNext({
    previous: join(base.dir, 'chain', 'root-2.json'),
    addTargets: [base.spare],
    expires: EXPIRES,
    signWith: [base.rootKey],
    out,
  });
  return out;
}

const replaced = (entries: readonly CraftEntry[], name: string, data: Buffer): CraftEntry[] =>
  entries.map((entry) => (entry.name === name ? { ...entry, data } : entry));

describe('the trust roots a bundle carries', () => {
  it('walk to the key that signed it: the untouched bundle verifies', async () => {
    const base = await chained();
    expect(base.entries[1]?.name).toBe('trust/root-1.json');
    expect(base.metadata.trustChain?.map((ref) => ref.path)).toEqual([
      'trust/root-1.json',
      'trust/root-2.json',
    ]);
    const file = join(base.dir, 'out', 'tiny-1.0.0-install.tar');
    const result = await verifyBundle(file, await trustOf(base.trust));
    expect(result.signature.valid).toBe(true);
  });

  it.each(formats)(
    'swapped for another validly signed version 2: refused in a %s',
    async (extension, pack) => {
      const base = await chained();
      const other = await otherVersion2(base);
      const entries = replaced(base.entries, 'trust/root-2.json', other);
      await expectRefused(pack(entries), extension, 'E_SIZE_MISMATCH', 'trust/root-2.json', made);
    },
  );

  it.each(formats)(
    'left out: refused as missing where the signed metadata puts it, in a %s',
    async (extension, pack) => {
      const base = await chained();
      const entries = base.entries.filter((entry) => entry.name !== 'trust/root-2.json');
      await expectRefused(pack(entries), extension, 'E_MISSING_ENTRY', 'trust/root-2.json', made);
    },
  );

  it.each(formats)(
    'with a valid version 3 nobody listed: refused in a %s',
    async (extension, pack) => {
      const base = await chained();
      const out = await version3(base, `v3-${extension}.json`);
      const v2 = find(base.entries, 'trust/root-2.json');
      const extra: CraftEntry = {
        name: 'trust/root-3.json',
        type: 'File',
        data: await readFile(out),
      };
      const entries = [...base.entries];
      entries.splice(entries.indexOf(v2) + 1, 0, extra);
      await expectRefused(pack(entries), extension, 'E_UNLISTED_ENTRY', 'trust/root-3.json', made);
    },
  );

  it.each(formats)('with a root past 64 KiB: refused unread in a %s', async (extension, pack) => {
    const base = await chained();
    const entries = replaced(base.entries, 'trust/root-2.json', Buffer.alloc(65 * 1024, 32));
    await expectRefused(pack(entries), extension, 'E_SIZE_MISMATCH', 'trust/root-2.json', made);
  });

  it.each(formats)(
    'with a signature of version 2 changed: refused in a %s',
    async (extension, pack) => {
      const base = await chained();
      const v2 = find(base.entries, 'trust/root-2.json');
      const text = v2.data.toString('utf8');
      const envelope = JSON.parse(text) as { signatures: Array<{ sig: string }> };
      const first = envelope.signatures[0] as { sig: string };
      // The same length, so the layout holds and the walk itself must refuse it.
      const forged = text.replace(first.sig, Buffer.alloc(64, 1).toString('base64'));
      const entries = replaced(base.entries, 'trust/root-2.json', Buffer.from(forged));
      await expectRefused(
        pack(entries),
        extension,
        'E_ROOT_THRESHOLD_OLD',
        'trust/root-2.json',
        made,
      );
    },
  );
});

/** The root file a test made, as the entry the bundle carries and the listing the metadata signs for it. */
async function carriedRoot(
  file: string,
  version: number,
): Promise<CraftEntry & { ref: ArtifactRef }> {
  const data = await readFile(file);
  return rootEntry(data, version);
}

function rootEntry(data: Buffer, version: number): CraftEntry & { ref: ArtifactRef } {
  const path = `trust/root-${version}.json`;
  return {
    name: path,
    type: 'File',
    data,
    ref: { path, size: data.length, sha256: createHash('sha256').update(data).digest('hex') },
  };
}

/**
 * The base bundle carrying `roots` instead of its chain, its metadata listing
 * them and signed again by the targets key of version 2: what a leaked CI key
 * could ship. The appliance trusts version 1.
 */
async function withChain(roots: ReadonlyArray<CraftEntry & { ref: ArtifactRef }>) {
  const base = await chained();
  const metadata = { ...base.metadata, trustChain: roots.map((root) => root.ref) };
  const rest = base.entries.filter((entry) => !entry.name.startsWith('trust/'));
  const [, ...after] = rest;
  const entries: CraftEntry[] = [
    { name: 'bundle.json', type: 'File', data: resigned(metadata, base.key) },
    ...roots.map(({ ref: _ref, ...entry }) => entry),
    ...after,
  ];
  return craftedFile(tarBytes(entries), 'tar');
}

describe('a hostile chain through bin/ferry, the appliance unchanged', () => {
  it('a carried root past 64 KiB, validly listed and signed: E_ROOT_TOO_LARGE, refused unread', async () => {
    const base = await chained();
    const v1 = find(base.entries, 'trust/root-1.json');
    const file = await withChain([
      rootEntry(v1.data, 1),
      rootEntry(Buffer.alloc(MAX_ROOT_BYTES + 1, 32), 2),
    ]);
    await expectRefusedEverywhere(file, 'E_ROOT_TOO_LARGE', 3, ['verify', 'plan', 'install'], made);
  });

  it.each([
    // At the cap the list is taken and its second root is read (and found junk).
    [MAX_ROOT_STEPS, 'E_ROOT_INVALID'],
    [MAX_ROOT_STEPS + 1, 'E_ROOT_CHAIN_TOO_LONG'],
  ])('a chain listing %i roots, validly signed: %s', async (count, code) => {
    const base = await chained();
    const v1 = find(base.entries, 'trust/root-1.json');
    const junk = Buffer.from('{}');
    const file = await withChain([
      rootEntry(v1.data, 1),
      ...Array.from({ length: count - 1 }, (_, i) => rootEntry(junk, i + 2)),
    ]);
    await expectRefusedEverywhere(file, code, 3, ['verify', 'install'], made);
  });

  it('a version 2 signed by a new root key alone, not by version 1: E_ROOT_THRESHOLD_OLD', async () => {
    const base = await chained();
    const out = join(base.dir, 'takeover-2.json');
    const v1 = join(base.dir, 'chain', 'root-1.json');
    const [rootKeyId = ''] = (await readTrustedRoot(v1)).roles.root.keyids;
    await trustSignNext({
      previous: v1,
      addRoot: [base.spare],
      revokeRoot: [rootKeyId],
      addTargets: [base.signer],
      expires: EXPIRES,
      signWith: [base.spareKey],
      out,
    });
    const file = await withChain([rootEntry(await readFile(v1), 1), await carriedRoot(out, 2)]);
    await expectRefusedEverywhere(
      file,
      'E_ROOT_THRESHOLD_OLD',
      3,
      ['verify', 'plan', 'install'],
      made,
    );
  });

  it('a chain with a gap (versions 1 and 3): E_ROOT_VERSION', async () => {
    const base = await chained();
    const out = await version3(base, 'gap-3.json');
    const file = await withChain([
      rootEntry(await readFile(join(base.dir, 'chain', 'root-1.json')), 1),
      await carriedRoot(out, 3),
    ]);
    await expectRefusedEverywhere(file, 'E_ROOT_VERSION', 3, ['verify', 'plan', 'install'], made);
  });

  it('an unknown signer with a sound chain and bytes after the end: E_SIGNATURE, before the rest is read', async () => {
    const base = await chained();
    const spare = createPrivateKey(await readFile(base.spareKey, 'utf8'));
    const entries = base.entries.map((entry) =>
      entry.name === 'bundle.json' ? { ...entry, data: resigned(base.metadata, spare) } : entry,
    );
    const file = await craftedFile(
      Buffer.concat([tarBytes(entries), Buffer.from('hidden after the end')]),
      'tar',
    );
    await expectRefusedEverywhere(file, 'E_SIGNATURE', 3, ['verify', 'plan', 'install'], made);
  });
});

import { join } from 'node:path';
import { keySigner, readPrivateKey } from '../../builder/signing.js';
import type { Signer } from '../../manifest-schema/envelope.js';
import { DOC_TYPES, sealDocument, type DocKind } from '../../repository/documents.js';
import type { Writer } from '../../repository/model.js';
import { documentManifest, EMPTY_DESCRIPTOR } from '../../repository/oci/artifact.js';
import { TAGS, type Store } from '../../repository/store.js';
import {
  EPOCH,
  ferryOk,
  json,
  keyPairs,
  tempDir,
  trustRoots,
  workspace,
  type KeyFiles,
  type Workspace,
} from '../helpers.js';

/**
 * What the repository rotation tests share, built by bin/ferry:
 *   root-1: root key alice, targets key ci-1;  root-2: ci-1 revoked, ci-2 added.
 *   1.0.0 and 1.1.0 signed by ci-1; 1.2.0 signed by ci-2, carrying root-1 and root-2.
 */
export interface RotationFixture {
  dir: string;
  ws: Workspace;
  keys: Record<string, KeyFiles>;
  root1: string;
  root2: string;
  bundles: Record<'1.0.0' | '1.1.0' | '1.2.0', string>;
  /** Writers signing with ci-1 (dropped by root-2) and ci-2. */
  old: Writer;
  current: Writer;
  build(release: string, key: KeyFiles, out: string, ...extra: string[]): Promise<string>;
  writerOf(key: KeyFiles, actor?: string): Promise<Writer>;
}

export async function rotationFixture(
  prefix: string,
  ...more: readonly string[]
): Promise<RotationFixture> {
  const dir = await tempDir(prefix);
  const ws = await workspace(dir);
  const keys: Record<string, KeyFiles> = await keyPairs(dir, 'alice', 'ci-1', 'ci-2', ...more);
  const key = (name: string) => keys[name] as KeyFiles;
  const [root1, root2] = (await trustRoots(join(dir, 'chain'), [key('alice')], key('ci-1'), [
    ['--revoke-targets-key', 'ci-1', '--add-targets-key', key('ci-2').pub],
  ])) as [string, string];
  const build = async (release: string, signer: KeyFiles, out: string, ...extra: string[]) => {
    const built = await ferryOk(
      [
        'build', join(ws.product, `release-${release}.yaml`), '--out', join(dir, out),
        '--key', signer.key, ...(release === '1.0.0' ? ['--first-release'] : []), '--json',
        ...extra,
      ],
      { SOURCE_DATE_EPOCH: EPOCH },
    ); // prettier-ignore
    return json<{ bundle: string }>(built).bundle;
  };
  const writerOf = async (signer: KeyFiles, actor = 'ci'): Promise<Writer> => ({
    actor,
    ci: null,
    keys: [keySigner(await readPrivateKey(signer.key))],
  });
  return {
    dir,
    ws,
    keys,
    root1,
    root2,
    bundles: {
      '1.0.0': await build('1.0.0', key('ci-1'), 'v1'),
      '1.1.0': await build('1.1.0', key('ci-1'), 'v1'),
      '1.2.0': await build('1.2.0', key('ci-2'), 'v2', '--trust-chain', join(dir, 'chain')),
    },
    old: await writerOf(key('ci-1')),
    current: await writerOf(key('ci-2')),
    build,
    writerOf,
  };
}

/**
 * Puts a document under `tag` as someone who can write the storage would:
 * signed by `signers` (none: the config's plain JSON), in place of what is there.
 */
export async function plantDocument(
  store: Store,
  kind: DocKind,
  tag: string,
  value: unknown,
  signers: readonly Signer[],
): Promise<void> {
  const blob = await sealDocument(kind, value, signers);
  await store.putBlob(Buffer.from('{}'), EMPTY_DESCRIPTOR.digest, EMPTY_DESCRIPTOR.size);
  await store.putBlob(blob.bytes, blob.digest, blob.size);
  const held = await store.readRef(tag);
  await store.replaceRef(
    tag,
    documentManifest({
      artifactType: DOC_TYPES[kind].artifactType,
      mediaType: DOC_TYPES[kind].mediaType,
      document: blob,
    }),
    held?.digest,
  );
}

/** The repository's config as stored (plain JSON). */
export async function readConfig(store: Store): Promise<Record<string, unknown>> {
  const held = await store.readRef(TAGS.config);
  const layer = (
    JSON.parse(held?.bytes.toString('utf8') ?? '{}') as {
      layers: Array<{ digest: string; size: number }>;
    }
  ).layers[0];
  return JSON.parse(
    (await store.readBlob(layer?.digest ?? '', layer?.size ?? 0)).toString('utf8'),
  ) as Record<string, unknown>;
}

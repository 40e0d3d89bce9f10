/**
 * The chain walk against a table: the fifteen root-rotation cases of the TUF
 * conformance suite (tuf-conformance, test_updater_key_rotations.py), then
 * versions, expiry, duplicates and limits. Every case is also built as
 * TUF-native metadata (the same `signed` document, signatures over its
 * canonical JSON by the same keys) and judged by @tufjs/models, the TUF
 * project's own JavaScript models, following the client workflow of the
 * specification (§5.3) as python-tuf orders it: the verdicts must agree.
 */
import { sign } from 'node:crypto';
import { Metadata, MetadataKind, Signature } from '@tufjs/models';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  envelopeBytes,
  MAX_ROOT_BYTES,
  MAX_ROOT_STEPS,
  parseTrustedRoot,
  walkRootChain,
  type ErrorCode,
  type RootDocument,
} from '../../manifest-schema/index.js';
import { newKey, rootBytes, rootDocument, rootEnvelope, type TestKey } from './roots.js';

const NOW = new Date('2030-06-01T00:00:00Z');
const PAST = '2030-01-01T00:00:00Z';
const POOL = Array.from({ length: 10 }, newKey);
const CI = newKey();

interface Step {
  keys: number[];
  threshold: number;
  sigs: number[];
  /** Defaults to the step's place in the chain, from 1. */
  version?: number;
  expires?: string;
  /** Keys whose signature is listed twice. */
  twice?: number[];
  /** Keys whose signature is replaced by one over other bytes. */
  forged?: number[];
  /** White space appended to the stored file, to make it too large. */
  pad?: number;
}

interface Case {
  steps: Step[];
  /** The version the walk reaches; with `code`, the last one accepted before the refusal. */
  final: number;
  code?: ErrorCode;
}

const v = (keys: number[], threshold: number, sigs: number[], more: Partial<Step> = {}): Step => ({
  keys,
  threshold,
  sigs,
  ...more,
});

const ROTATION_CASES: Record<string, Case> = {
  '1-of-1-key-rotation': {
    steps: [v([1], 1, [1]), v([2], 1, [2, 1]), v([2], 1, [2])],
    final: 3,
  },
  '1-of-1-key-rotation-unused-signatures': {
    steps: [v([1], 1, [3, 1, 4]), v([2], 1, [3, 2, 1, 4]), v([2], 1, [3, 2, 4])],
    final: 3,
  },
  '3-of-5-sign-with-different-keycombos': {
    steps: [
      v([0, 1, 2, 3, 4], 3, [0, 2, 4]),
      v([0, 1, 2, 3, 4], 3, [0, 4, 1]),
      v([0, 1, 2, 3, 4], 3, [0, 1, 3]),
      v([0, 1, 2, 3, 4], 3, [0, 1, 3]),
    ],
    final: 4,
  },
  '3-of-5-one-key-rotated': {
    steps: [v([0, 1, 2, 3, 4], 3, [0, 2, 4]), v([0, 1, 3, 4, 5], 3, [0, 4, 1])],
    final: 2,
  },
  '3-of-5-one-key-rotated-with-intermediate-step': {
    steps: [
      v([0, 1, 2, 3, 4], 3, [0, 2, 4]),
      v([0, 1, 3, 4, 5], 3, [0, 2, 4, 5]),
      v([0, 1, 3, 4, 5], 3, [0, 4, 5]),
    ],
    final: 3,
  },
  '3-of-5-all-keys-rotated-with-intermediate-step': {
    steps: [
      v([0, 1, 2, 3, 4], 3, [0, 2, 4]),
      v([5, 6, 7, 8, 9], 3, [0, 2, 4, 5, 6, 7]),
      v([5, 6, 7, 8, 9], 3, [5, 6, 7]),
    ],
    final: 3,
  },
  '1-of-3-threshold-increase-to-2-of-3': {
    steps: [v([1, 2, 3], 1, [1]), v([1, 2, 3], 2, [1, 2])],
    final: 2,
  },
  '2-of-3-threshold-decrease-to-1-of-3': {
    steps: [v([1, 2, 3], 2, [1, 2]), v([1, 2, 3], 1, [1, 2]), v([1, 2, 3], 1, [1])],
    final: 3,
  },
  '1-of-2-threshold-increase-to-2-of-2': {
    steps: [v([1], 1, [1]), v([1, 2], 2, [1, 2])],
    final: 2,
  },
  '1-of-1-key-rotation-fail-not-signed-with-old-key': {
    steps: [v([1], 1, [1]), v([2], 1, [2, 3, 4])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_OLD',
  },
  '1-of-1-key-rotation-fail-not-signed-with-new-key': {
    steps: [v([1], 1, [1]), v([2], 1, [1, 3, 4])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_NEW',
  },
  '3-of-5-one-key-rotate-fails-not-signed-with-3-new-keys': {
    steps: [v([0, 1, 2, 3, 4], 3, [0, 2, 4]), v([0, 1, 3, 4, 5], 3, [0, 2, 4])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_NEW',
  },
  '3-of-5-one-key-rotate-fails-not-signed-with-3-old-keys': {
    steps: [v([0, 1, 2, 3, 4], 3, [0, 2, 4]), v([0, 1, 3, 4, 5], 3, [0, 4, 5])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_OLD',
  },
  '1-of-3-threshold-bump-to-2-of-3-fails-new-threshold-not-reached': {
    steps: [v([1, 2, 3], 1, [1]), v([1, 2, 3], 2, [2])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_NEW',
  },
  '2-of-3-threshold-decr-to-1-of-3-fails-old-threshold-not-reached': {
    steps: [v([1, 2, 3], 2, [1, 2]), v([1, 2, 3], 1, [1])],
    final: 1,
    code: 'E_ROOT_THRESHOLD_OLD',
  },
};

const sameKey = (count: number): Step[] => Array.from({ length: count }, () => v([0], 1, [0]));

const MORE_CASES: Record<string, Case> = {
  'a skipped version is refused': {
    steps: [v([1], 1, [1]), v([1], 1, [1]), v([1], 1, [1], { version: 4 })],
    final: 2,
    code: 'E_ROOT_VERSION',
  },
  'a repeated version is refused': {
    steps: [v([1], 1, [1]), v([1], 1, [1]), v([1], 1, [1], { version: 2, expires: PAST })],
    final: 2,
    code: 'E_ROOT_VERSION',
  },
  'an expired final root is refused': {
    steps: [v([1], 1, [1]), v([1], 1, [1], { expires: PAST })],
    final: 2,
    code: 'E_ROOT_EXPIRED',
  },
  'an expired trusted root with nothing newer is refused': {
    steps: [v([1], 1, [1], { expires: PAST })],
    final: 1,
    code: 'E_ROOT_EXPIRED',
  },
  'an expired intermediate root is walked through': {
    steps: [
      v([1], 1, [1], { expires: PAST }),
      v([2], 1, [1, 2], { expires: PAST }),
      v([2], 1, [2]),
    ],
    final: 3,
  },
  'a signature listed twice cannot make up a threshold': {
    steps: [v([1, 2], 2, [1, 2]), v([1, 2], 2, [1], { twice: [1] })],
    final: 1,
    code: 'E_ROOT_THRESHOLD_OLD',
  },
  'a signature listed twice beside a met threshold counts once': {
    steps: [v([1, 2], 2, [1, 2]), v([1, 2], 2, [1, 2], { twice: [1] })],
    final: 2,
  },
  'a signature that does not verify counts for nothing': {
    steps: [v([1, 2], 2, [1, 2]), v([1, 2], 2, [1, 2], { forged: [2] })],
    final: 1,
    code: 'E_ROOT_THRESHOLD_OLD',
  },
  'a root over 64 KiB is refused': {
    steps: [v([1], 1, [1]), v([1], 1, [1], { pad: MAX_ROOT_BYTES })],
    final: 1,
    code: 'E_ROOT_TOO_LARGE',
  },
  [`${MAX_ROOT_STEPS} steps are walked`]: {
    steps: sameKey(MAX_ROOT_STEPS + 1),
    final: MAX_ROOT_STEPS + 1,
  },
  [`${MAX_ROOT_STEPS + 1} steps are refused`]: {
    steps: sameKey(MAX_ROOT_STEPS + 2),
    final: 1,
    code: 'E_ROOT_CHAIN_TOO_LONG',
  },
};

function documentOf(step: Step, index: number): RootDocument {
  return rootDocument({
    version: step.version ?? index + 1,
    root: step.keys.map((i) => POOL[i] as TestKey),
    rootThreshold: step.threshold,
    targets: [CI],
    ...(step.expires ? { expires: step.expires } : {}),
  });
}

const forgery = (key: TestKey) => sign(null, Buffer.from('other bytes'), key.privateKey);

/** The chain as Ferry stores it: DSSE envelopes. */
function ferryFile(step: Step, document: RootDocument): Buffer {
  const envelope = rootEnvelope(
    document,
    step.sigs.map((i) => POOL[i] as TestKey),
  );
  for (const i of step.forged ?? []) {
    const key = POOL[i] as TestKey;
    const signature = envelope.signatures.find((s) => s.keyid === key.keyid);
    if (signature) signature.sig = forgery(key).toString('base64');
  }
  for (const i of step.twice ?? []) {
    const signature = envelope.signatures.find((s) => s.keyid === POOL[i]?.keyid);
    if (signature) envelope.signatures.push({ ...signature });
  }
  return Buffer.concat([envelopeBytes(envelope), Buffer.alloc(step.pad ?? 0, ' ')]);
}

/**
 * The chain as TUF stores it: `{ signed, signatures }` with hex signatures
 * over the canonical JSON of `signed`, made through tufjs's own `sign`. TUF
 * metadata holds one signature per key id, so a signature Ferry's envelope
 * lists twice is here once (tufjs refuses a file that lists one twice: below).
 */
function tufFile(step: Step, document: RootDocument): { bytes: Buffer; signedBytes: Buffer[] } {
  const metadata = Metadata.fromJSON(MetadataKind.Root, {
    signed: JSON.parse(JSON.stringify(document)) as Record<string, never>,
    signatures: [],
  });
  const signedBytes: Buffer[] = [];
  for (const i of step.sigs) {
    const key = POOL[i] as TestKey;
    metadata.sign((bytes) => {
      signedBytes.push(bytes);
      const sig = step.forged?.includes(i) ? forgery(key) : sign(null, bytes, key.privateKey);
      return new Signature({ keyID: key.keyid, sig: sig.toString('hex') });
    });
  }
  const text = JSON.stringify(metadata.toJSON());
  return {
    bytes: Buffer.concat([Buffer.from(text), Buffer.alloc(step.pad ?? 0, ' ')]),
    signedBytes,
  };
}

interface Verdict {
  final: number;
  code?: string;
}

/**
 * The TUF client workflow (§5.3) over tufjs's models: the initial root must
 * be signed by itself; then for each newer root the trusted root's threshold,
 * the version, the new root's own threshold; then expiry of the final root.
 * The byte and step limits are the client's own (the spec leaves them to it).
 */
function tufVerdict(files: readonly Buffer[], now: Date): Verdict {
  const parse = (bytes: Buffer) =>
    Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString()) as Record<string, never>);
  const [first, ...newer] = files;
  let trusted = parse(first as Buffer);
  trusted.verifyDelegate('root', trusted);
  const at = (code: string): Verdict => ({ final: trusted.signed.version, code });
  if (newer.length > MAX_ROOT_STEPS) return at('E_ROOT_CHAIN_TOO_LONG');
  for (const bytes of newer) {
    if (bytes.length > MAX_ROOT_BYTES) return at('E_ROOT_TOO_LARGE');
    const next = parse(bytes);
    try {
      trusted.verifyDelegate('root', next);
    } catch (error) {
      expect((error as Error).constructor.name).toBe('UnsignedMetadataError');
      return at('E_ROOT_THRESHOLD_OLD');
    }
    if (next.signed.version !== trusted.signed.version + 1) return at('E_ROOT_VERSION');
    try {
      next.verifyDelegate('root', next);
    } catch (error) {
      expect((error as Error).constructor.name).toBe('UnsignedMetadataError');
      return at('E_ROOT_THRESHOLD_NEW');
    }
    trusted = next;
  }
  return trusted.signed.isExpired(now) ? at('E_ROOT_EXPIRED') : { final: trusted.signed.version };
}

function ferryVerdict(files: readonly Buffer[], now: Date): Verdict {
  const trusted = parseTrustedRoot(files[0] as Buffer, 'root-1.json');
  const walk = walkRootChain(
    trusted,
    files.map((bytes, index) => ({ file: `root-${index + 1}.json`, bytes })),
    now,
  );
  expect(walk.root.version).toBe(walk.versions.at(-1));
  return { final: walk.root.version, ...(walk.refusal ? { code: walk.refusal.code } : {}) };
}

/** Both forms of each step, made once: the two long chains share a thousand of them. */
const made = new Map<
  string,
  { document: RootDocument; ferry: Buffer; tuf: ReturnType<typeof tufFile> }
>();
function make(step: Step, index: number) {
  const key = `${index} ${JSON.stringify(step)}`;
  let files = made.get(key);
  if (!files) {
    const document = documentOf(step, index);
    files = { document, ferry: ferryFile(step, document), tuf: tufFile(step, document) };
    made.set(key, files);
  }
  return files;
}

function judge(steps: readonly Step[]) {
  const files = steps.map(make);
  const documents = files.map((file) => file.document);
  const tuf = files.map((file) => file.tuf);
  return {
    documents,
    tuf,
    ferry: ferryVerdict(
      files.map((file) => file.ferry),
      NOW,
    ),
    reference: tufVerdict(
      tuf.map((file) => file.bytes),
      NOW,
    ),
  };
}

describe('the chain walk', () => {
  describe.each([
    ['TUF conformance: root rotation', ROTATION_CASES],
    ['versions, expiry, duplicates and limits', MORE_CASES],
  ])('%s', (_title, cases) => {
    it.each(Object.entries(cases))('%s', (_name, { steps, final, code }) => {
      const { documents, tuf, ferry, reference } = judge(steps);
      const expected = code ? { final, code } : { final };
      expect(ferry).toEqual(expected);
      expect(reference).toEqual(expected);
      // Ferry's envelope carries exactly the bytes TUF signs: the canonical JSON of `signed`.
      for (const [i, { signedBytes }] of tuf.entries())
        for (const bytes of signedBytes) expect(bytes.toString()).toBe(canonicalJson(documents[i]));
    });
  });

  it('names the version and the root keys whose signatures are missing', () => {
    const steps = [v([0, 1, 2], 2, [0, 1]), v([0, 1, 2], 2, [0, 1, 2]), v([3, 4], 2, [1, 3, 4])];
    const documents = steps.map(documentOf);
    const trusted = parseTrustedRoot(
      ferryFile(steps[0] as Step, documents[0] as RootDocument),
      't',
    );
    const walk = walkRootChain(
      trusted,
      steps.map((step, i) => ({
        file: 'bundle.tar',
        entry: `trust/root-${i + 1}.json`,
        bytes: ferryFile(step, documents[i] as RootDocument),
      })),
      NOW,
    );
    expect(walk.versions).toEqual([1, 2]);
    expect(walk.refusal?.code).toBe('E_ROOT_THRESHOLD_OLD');
    expect(walk.refusal?.details).toMatchObject({ file: 'bundle.tar', entry: 'trust/root-3.json' });
    const message = walk.refusal?.message ?? '';
    expect(message).toContain('version 3');
    for (const missing of [POOL[0], POOL[2]])
      expect(message).toContain(missing?.keyid.slice(0, 16));
  });

  it('skips the roots at or below the trusted version, as a bundle carries them from version 1', () => {
    const steps = [v([1], 1, [1]), v([1], 1, [1]), v([2], 1, [1, 2])];
    const files = steps.map((step, i) => ferryFile(step, documentOf(step, i)));
    const trusted = walkRootChain(
      parseTrustedRoot(files[0] as Buffer, 't'),
      [{ file: 'root-2.json', bytes: files[1] as Buffer }],
      NOW,
    ).root;
    const walk = walkRootChain(
      trusted,
      files.map((bytes, i) => ({ file: `root-${i + 1}.json`, bytes })),
      NOW,
    );
    expect(walk.refusal).toBeUndefined();
    expect(walk.versions).toEqual([2, 3]);
  });

  it('reports the newest reset of the highest release among the roots walked, never the trusted one', () => {
    const [a, b] = [POOL[0] as TestKey, POOL[1] as TestKey];
    const doc = (version: number, reset?: string): RootDocument => ({
      ...rootDocument({ version, root: [a], rootThreshold: 1, targets: [b] }),
      ...(reset ? { 'x-ferry': { resetHighestRelease: reset } } : {}),
    });
    const bytes = [doc(1, '9.0.0'), doc(2, '1.2.0'), doc(3, '1.1.0'), doc(4)].map((d) =>
      rootBytes(d, [a]),
    );
    const candidates = bytes.map((b, i) => ({ file: `root-${i + 1}.json`, bytes: b }));
    const v1 = parseTrustedRoot(bytes[0] as Buffer, 'root-1.json');
    expect(walkRootChain(v1, candidates, NOW).root.resetHighestRelease).toEqual({
      release: '1.1.0',
      version: 3,
    });
    const v3 = walkRootChain(v1, candidates.slice(0, 3), NOW).root;
    expect(walkRootChain(v3, candidates, NOW).root.resetHighestRelease).toBeUndefined();
    expect(walkRootChain(v3, candidates.slice(0, 3), NOW).root.resetHighestRelease).toBeUndefined();
  });

  it('refuses an oversized root before parsing it', () => {
    const trusted = parseTrustedRoot(ferryFile(v([1], 1, [1]), documentOf(v([1], 1, [1]), 0)), 't');
    const junk = Buffer.alloc(MAX_ROOT_BYTES + 1, 'x');
    const walk = walkRootChain(trusted, [{ file: 'root-2.json', bytes: junk }], NOW);
    expect(walk.refusal?.code).toBe('E_ROOT_TOO_LARGE');
    const small = walkRootChain(
      trusted,
      [{ file: 'root-2.json', bytes: junk.subarray(0, 64) }],
      NOW,
    );
    expect(small.refusal?.code).toBe('E_ROOT_INVALID');
  });

  it('walks a valid root of exactly 64 KiB and refuses one a byte longer', () => {
    const step = v([1], 1, [1]);
    const trusted = parseTrustedRoot(ferryFile(step, documentOf(step, 0)), 't');
    const plain = ferryFile(step, documentOf(step, 1));
    const sized = (bytes: number) =>
      walkRootChain(
        trusted,
        [
          {
            file: 'root-2.json',
            bytes: Buffer.concat([plain, Buffer.alloc(bytes - plain.length, ' ')]),
          },
        ],
        NOW,
      );
    expect(sized(MAX_ROOT_BYTES)).toMatchObject({ versions: [1, 2] });
    expect(sized(MAX_ROOT_BYTES).refusal).toBeUndefined();
    expect(sized(MAX_ROOT_BYTES + 1).refusal?.code).toBe('E_ROOT_TOO_LARGE');
  });

  it('tufjs refuses TUF metadata that lists one key twice; Ferry counts the key once', () => {
    const step = v([1], 1, [1]);
    const { bytes } = tufFile(step, documentOf(step, 0));
    const json = JSON.parse(bytes.toString()) as { signatures: unknown[] };
    json.signatures.push(json.signatures[0]);
    expect(() => Metadata.fromJSON(MetadataKind.Root, json as never)).toThrow(
      /multiple signatures/,
    );
  });
});

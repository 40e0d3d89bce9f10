import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, jsonDepth } from './canonical.js';
import { FerryError, type ErrorCode } from './errors.js';
import { keyIdOf } from './keys.js';
import { EnvelopeSchema, type Envelope } from './schemas.js';
import { validate } from './validate.js';

export const PAYLOAD_TYPE = 'application/vnd.ferry.bundle+json';

/**
 * bundle.json larger than this is refused from its archive header, before it
 * is read. The largest fixture's is 9 KiB; each carried file adds about 250
 * bytes, so this holds some 16,000 files, and decoding it stays far under the
 * installer's memory budget.
 */
export const MAX_METADATA_BYTES = 4 * 1024 * 1024;
/** More signatures than this are refused before any is checked: a threshold of keys never needs more. */
export const MAX_SIGNATURES = 16;
/** JSON nested deeper than this is refused before it is parsed. */
export const MAX_METADATA_DEPTH = 32;

/** DSSE pre-authentication encoding: what the signatures are made over. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** Signs `payload` with every key; signatures sorted by key id so the bytes are reproducible. */
export function signEnvelope(
  payload: Buffer,
  keys: readonly KeyObject[],
  payloadType = PAYLOAD_TYPE,
): Envelope {
  let envelope: Envelope = { payloadType, payload: payload.toString('base64'), signatures: [] };
  for (const key of keys) envelope = addSignature(envelope, payload, key);
  return envelope;
}

/** What signs: a private key Ferry holds, or an external program (KMS, HSM) that holds one. */
export interface Signer {
  keyid: string;
  /** Checks what it signs, and whether it signed something already (media: the bundle). */
  publicKey: KeyObject;
  /** The Ed25519 signature of exactly these bytes. */
  sign(message: Buffer): Promise<Buffer>;
}

/** `payload` in an envelope signed by every signer, one at a time (a signer may ask for a touch or a PIN). */
export async function signDocument(
  payload: Buffer,
  signers: readonly Signer[],
  payloadType = PAYLOAD_TYPE,
): Promise<Envelope> {
  const message = pae(payloadType, payload);
  const signatures = [];
  for (const signer of signers)
    signatures.push({ keyid: signer.keyid, sig: (await signer.sign(message)).toString('base64') });
  const unsigned = { payloadType, payload: payload.toString('base64'), signatures: [] };
  return withSignatures(unsigned, signatures);
}

/**
 * The envelope with `key`'s signature added, or replacing that key's earlier
 * one: Ed25519 signatures are deterministic, so signing twice changes nothing.
 */
export function addSignature(envelope: Envelope, payload: Buffer, key: KeyObject): Envelope {
  const keyid = keyIdOf(key);
  const sig = sign(null, pae(envelope.payloadType, payload), key).toString('base64');
  return withSignatures(envelope, [
    ...envelope.signatures.filter((s) => s.keyid !== keyid),
    { keyid, sig },
  ]);
}

/** The envelope with these signatures, sorted by key id so the bytes are reproducible. */
export function withSignatures(envelope: Envelope, signatures: Envelope['signatures']): Envelope {
  return { ...envelope, signatures: [...signatures].sort((a, b) => (a.keyid < b.keyid ? -1 : 1)) };
}

export function envelopeBytes(envelope: Envelope): Buffer {
  return Buffer.from(canonicalJson(envelope), 'utf8');
}

export interface VerifiedKeys {
  /** The distinct keys among those offered whose signatures verified. */
  keyids: Set<string>;
  /** Signatures that claim one of the offered keys and do not verify, one line each. */
  problems: string[];
}

/**
 * Which of `keys` signed the envelope. A signature by a key not offered is
 * ignored; a key that signed twice counts once; a bad signature never counts.
 */
export function verifiedKeys(
  envelope: Envelope,
  payload: Buffer,
  keys: ReadonlyMap<string, KeyObject>,
): VerifiedKeys {
  const message = pae(envelope.payloadType, payload);
  const keyids = new Set<string>();
  const problems: string[] = [];
  for (const signature of envelope.signatures) {
    const key = keys.get(signature.keyid);
    if (key === undefined || keyids.has(signature.keyid)) continue;
    if (verify(null, message, key, Buffer.from(signature.sig, 'base64')))
      keyids.add(signature.keyid);
    else problems.push(`signature by key ${signature.keyid.slice(0, 16)}… does not verify`);
  }
  return { keyids, problems };
}

export interface DecodedEnvelope {
  envelope: Envelope;
  /** The exact signed bytes: the canonical JSON of the metadata. */
  payload: Buffer;
}

/** What an envelope carries and which codes its refusals get. */
export interface EnvelopeKind {
  payloadType: string;
  /** How messages name the document, e.g. `bundle.json`. */
  entry: string;
  maxBytes: number;
  tooLarge: ErrorCode;
  invalid: ErrorCode;
  /** What the document should have been, for hints: "a bundle Ferry built". */
  what: string;
  /** The bytes must be the canonical JSON of what they hold (bundles; trust roots are pretty-printed). */
  canonical?: boolean;
}

export const BUNDLE_ENVELOPE: EnvelopeKind = {
  payloadType: PAYLOAD_TYPE,
  entry: 'bundle.json',
  maxBytes: MAX_METADATA_BYTES,
  tooLarge: 'E_METADATA_TOO_LARGE',
  invalid: 'E_METADATA_INVALID',
  what: 'a bundle Ferry built',
  canonical: true,
};

/** Parses an envelope's bytes into the envelope and its payload bytes, refusing anything odd. */
export function decodeEnvelope(
  bytes: Buffer,
  file: string,
  kind: EnvelopeKind = BUNDLE_ENVELOPE,
): DecodedEnvelope {
  const where = { file, entry: kind.entry };
  if (bytes.length > kind.maxBytes) {
    throw new FerryError(kind.tooLarge, `${file}: ${kind.entry} is ${bytes.length} bytes`, {
      ...where,
      hint: `it is limited to ${kind.maxBytes} bytes; this is not ${kind.what}`,
    });
  }
  const text = bytes.toString('utf8');
  const envelope = parseJsonLimited(text, file, kind.entry, kind);
  if (kind.canonical) requireCanonical(envelope, text, file, kind.entry, bytes);
  const { signatures } = (envelope ?? {}) as { signatures?: unknown };
  const signatureCount = Array.isArray(signatures) ? signatures.length : 0;
  if (signatureCount > MAX_SIGNATURES) {
    throw new FerryError(
      kind.tooLarge,
      `${file}: ${kind.entry} carries ${signatureCount} signatures`,
      { ...where, hint: `it carries at most ${MAX_SIGNATURES}; this is not ${kind.what}` },
    );
  }
  const checked = validate(EnvelopeSchema, envelope);
  if (!checked.ok) {
    throw new FerryError(
      kind.invalid,
      `${file}: ${kind.entry} is not a signature envelope (${checked.errors.map((e) => `${e.path || '/'} ${e.message}`).join('; ')})`,
      { ...where, hint: `this is not ${kind.what}, or it was damaged` },
    );
  }
  if (checked.value.payloadType !== kind.payloadType) {
    throw new FerryError(
      kind.invalid,
      `${file}: ${kind.entry} carries "${checked.value.payloadType}"`,
      { ...where, hint: `${kind.what} carries ${kind.payloadType}` },
    );
  }
  const payload = decodeCanonicalBase64(checked.value.payload);
  if (!payload) {
    throw new FerryError(kind.invalid, `${file}: the envelope's payload is not canonical base64`, {
      ...where,
      hint: 'it was damaged or altered',
    });
  }
  const loose = checked.value.signatures.findIndex(({ sig }) => !decodeCanonicalBase64(sig));
  if (loose >= 0) {
    throw new FerryError(
      kind.invalid,
      `${file}: signature ${loose} of ${kind.entry} is not canonical base64`,
      { ...where, field: `/signatures/${loose}/sig`, hint: 'it was damaged or altered' },
    );
  }
  return { envelope: checked.value, payload };
}

/**
 * The bytes `text` encodes, or null unless it is their one canonical base64.
 * Node's decoder skips what is not base64 and stops at padding, so a payload
 * or signature with bytes added still decodes (and verifies): the same signed
 * release would come in any number of texts, none the one Ferry writes.
 */
function decodeCanonicalBase64(text: string): Buffer | null {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

/**
 * The builder writes exactly one text for a value: its canonical JSON. Any
 * other text of the same signed bytes is refused, above all duplicate keys,
 * which two JSON parsers resolve differently (JSON.parse keeps the last, so
 * its re-serialisation drops the first and the texts differ).
 */
export function requireCanonical(
  value: unknown,
  text: string,
  file: string,
  entry: string,
  bytes: Buffer,
): void {
  // Decoding replaces bytes that are not UTF-8 with U+FFFD, whose canonical
  // text is itself: the check below alone would take them, and a stricter
  // parser would refuse (or read otherwise) the same signed bytes.
  const encoded = Buffer.from(text, 'utf8');
  if (!encoded.equals(bytes)) {
    throw new FerryError(
      'E_METADATA_NOT_CANONICAL',
      `${file}: ${entry} is not UTF-8 (from byte ${firstByteDifference(encoded, bytes)})`,
      {
        file,
        entry,
        hint: 'Ferry writes one exact text for its metadata; this one was edited or crafted: do not use it',
      },
    );
  }
  let canonical: string | null;
  try {
    canonical = canonicalJson(value);
  } catch {
    canonical = null; // a fraction or an unsafe integer: never canonical
  }
  if (canonical === text) return;
  const at = canonical === null ? -1 : firstDifference(canonical, text);
  throw new FerryError(
    'E_METADATA_NOT_CANONICAL',
    `${file}: ${entry} is not canonical JSON${
      at < 0
        ? ' (it holds a number that is not a safe integer)'
        : ` (it differs from its canonical form at character ${at}: a duplicate key, key order, white space or escaping)`
    }`,
    {
      file,
      entry,
      hint: 'Ferry writes one exact text for its metadata; this one was edited or crafted: do not use it',
    },
  );
}

function firstByteDifference(a: Buffer, b: Buffer): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

export function parseJsonLimited(
  text: string,
  file: string,
  entry: string,
  kind: Pick<EnvelopeKind, 'tooLarge' | 'invalid' | 'what'> = BUNDLE_ENVELOPE,
): unknown {
  const depth = jsonDepth(text);
  if (depth > MAX_METADATA_DEPTH) {
    throw new FerryError(kind.tooLarge, `${file}: ${entry} is nested ${depth} levels deep`, {
      file,
      entry,
      hint: `it nests at most ${MAX_METADATA_DEPTH} levels; this is not ${kind.what}`,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new FerryError(kind.invalid, `${file}: ${entry} is not JSON`, {
      file,
      entry,
      hint: 'it was damaged or altered',
      cause,
    });
  }
}

import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, jsonDepth } from './canonical.js';
import { FerryError } from './errors.js';
import { keyIdOf } from './keys.js';
import { EnvelopeSchema, type Envelope, type TrustRoot } from './schemas.js';
import { validate } from './validate.js';

export const PAYLOAD_TYPE = 'application/vnd.ferry.bundle+json';

/** bundle.json larger than this is refused before it is read: real metadata is far smaller. */
export const MAX_METADATA_BYTES = 64 * 1024 * 1024;
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
export function signEnvelope(payload: Buffer, keys: readonly KeyObject[]): Envelope {
  const message = pae(PAYLOAD_TYPE, payload);
  const signatures = keys
    .map((key) => ({ keyid: keyIdOf(key), sig: sign(null, message, key).toString('base64') }))
    .sort((a, b) => (a.keyid < b.keyid ? -1 : 1));
  return { payloadType: PAYLOAD_TYPE, payload: payload.toString('base64'), signatures };
}

export function envelopeBytes(envelope: Envelope): Buffer {
  return Buffer.from(canonicalJson(envelope), 'utf8');
}

export interface SignatureStatus {
  /** True when at least `threshold` distinct trusted keys made valid signatures. */
  valid: boolean;
  /** Key ids of the trusted keys whose signatures verified. */
  keyids: string[];
  threshold: number;
  /** Why signatures did not count, one line each. */
  problems: string[];
}

export function checkSignatures(
  envelope: Envelope,
  payload: Buffer,
  trust: TrustRoot,
): SignatureStatus {
  const message = pae(envelope.payloadType, payload);
  const trusted = new Map(trust.keys.map((key) => [key.keyid, key.publicKey]));
  const good = new Set<string>();
  const problems: string[] = [];
  for (const signature of envelope.signatures) {
    const pem = trusted.get(signature.keyid);
    if (pem === undefined) {
      problems.push(`signature by key ${signature.keyid.slice(0, 16)}… is not from a trusted key`);
      continue;
    }
    const key = createPublicKey(pem);
    if (!verify(null, message, key, Buffer.from(signature.sig, 'base64'))) {
      problems.push(`signature by trusted key ${signature.keyid.slice(0, 16)}… does not verify`);
      continue;
    }
    good.add(signature.keyid);
  }
  if (envelope.signatures.length === 0) problems.push('the bundle carries no signature');
  return {
    valid: good.size >= trust.threshold,
    keyids: [...good].sort(),
    threshold: trust.threshold,
    problems,
  };
}

/** Throws E_SIGNATURE or E_THRESHOLD unless the status is valid. */
export function assertTrusted(status: SignatureStatus, file: string): void {
  if (status.valid) return;
  const code = status.keyids.length > 0 ? 'E_THRESHOLD' : 'E_SIGNATURE';
  const detail = status.problems.length > 0 ? `: ${status.problems.join('; ')}` : '';
  throw new FerryError(
    code,
    `${file}: ${status.keyids.length} of the ${status.threshold} required trusted signatures verified${detail}`,
    {
      file,
      entry: 'bundle.json',
      hint: 'the bundle was not signed by keys this trust root accepts, or it was changed after signing: get it again from its publisher',
    },
  );
}

export interface DecodedEnvelope {
  envelope: Envelope;
  /** The exact signed bytes: the canonical JSON of the metadata. */
  payload: Buffer;
}

/** Parses bundle.json's bytes into the envelope and its payload bytes, refusing anything odd. */
export function decodeEnvelope(bytes: Buffer, file: string): DecodedEnvelope {
  const where = { file, entry: 'bundle.json' };
  if (bytes.length > MAX_METADATA_BYTES) {
    throw new FerryError('E_METADATA_TOO_LARGE', `${file}: bundle.json is ${bytes.length} bytes`, {
      ...where,
      hint: `metadata is limited to ${MAX_METADATA_BYTES} bytes; this is not a bundle Ferry built`,
    });
  }
  const text = bytes.toString('utf8');
  const envelope = parseJsonLimited(text, file, 'bundle.json');
  const checked = validate(EnvelopeSchema, envelope);
  if (!checked.ok) {
    throw new FerryError(
      'E_METADATA_INVALID',
      `${file}: bundle.json is not a signature envelope (${checked.errors.map((e) => `${e.path || '/'} ${e.message}`).join('; ')})`,
      { ...where, hint: 'this is not a bundle Ferry built, or it was damaged' },
    );
  }
  if (checked.value.payloadType !== PAYLOAD_TYPE) {
    throw new FerryError(
      'E_METADATA_INVALID',
      `${file}: bundle.json carries "${checked.value.payloadType}"`,
      {
        ...where,
        hint: `a Ferry bundle carries ${PAYLOAD_TYPE}`,
      },
    );
  }
  const payload = Buffer.from(checked.value.payload, 'base64');
  if (payload.toString('base64') !== checked.value.payload) {
    throw new FerryError(
      'E_METADATA_INVALID',
      `${file}: the envelope's payload is not canonical base64`,
      {
        ...where,
        hint: 'the bundle was damaged or altered',
      },
    );
  }
  return { envelope: checked.value, payload };
}

export function parseJsonLimited(text: string, file: string, entry: string): unknown {
  const depth = jsonDepth(text);
  if (depth > MAX_METADATA_DEPTH) {
    throw new FerryError(
      'E_METADATA_TOO_LARGE',
      `${file}: ${entry} is nested ${depth} levels deep`,
      {
        file,
        entry,
        hint: `metadata nests at most ${MAX_METADATA_DEPTH} levels; this is not a bundle Ferry built`,
      },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new FerryError('E_METADATA_INVALID', `${file}: ${entry} is not JSON`, {
      file,
      entry,
      hint: 'the bundle was damaged or altered',
      cause,
    });
  }
}

import { canonicalJson } from './canonical.js';
import { decodeEnvelope, type EnvelopeKind } from './envelope.js';
import { FerryError } from './errors.js';
import { PartsIndexSchema, type Envelope, type PartsIndex, type TrustRoot } from './schemas.js';
import { assertTrusted, checkSignatures, type TrustedRoot } from './trust.js';
import { validate } from './validate.js';

/**
 * Removable media: a bundle cut into byte parts, one per volume, each volume
 * carrying the same signed parts index. Names are upper case, so that FAT32
 * (long names) and ISO 9660 level 2 (with Joliet and Rock Ridge) show them
 * as written on every system.
 */
export const MEDIA_DIR = 'FERRY';
export const PARTS_INDEX = `${MEDIA_DIR}/PARTS.JSON`;
export const PARTS_SUMS = `${MEDIA_DIR}/SHA256SUM.TXT`;
export const MEDIA_README = 'README.TXT';
export const PARTS_PAYLOAD_TYPE = 'application/vnd.ferry.parts+json';

export const PARTS_ENVELOPE: EnvelopeKind = {
  payloadType: PARTS_PAYLOAD_TYPE,
  entry: PARTS_INDEX,
  maxBytes: 1024 * 1024,
  tooLarge: 'E_MEDIA_INDEX_INVALID',
  invalid: 'E_MEDIA_INDEX_INVALID',
  what: 'a parts index written by `ferry media`',
};

/** Part N's path on its volume. */
export function partName(number: number): string {
  return `${MEDIA_DIR}/BUNDLE.${String(number).padStart(3, '0')}`;
}

export function volumeLabel(index: Pick<PartsIndex, 'label'>, volume: number): string {
  return `${index.label}${volume}`;
}

export interface DecodedPartsIndex {
  envelope: Envelope;
  /** The exact signed bytes. */
  payload: Buffer;
  index: PartsIndex;
}

/**
 * Parses FERRY/PARTS.JSON and checks that its parts tile the bundle: part N
 * on volume N, each starting where the one before ended, together exactly
 * the bundle's size. With a trust root, the signature is checked first,
 * before the signed payload is even parsed.
 */
export function decodePartsIndex(
  bytes: Buffer,
  file: string,
  trust?: TrustRoot | TrustedRoot,
): DecodedPartsIndex {
  const { envelope, payload } = decodeEnvelope(bytes, file, PARTS_ENVELOPE);
  if (trust) assertTrusted(checkSignatures(envelope, payload, trust), file, PARTS_INDEX);
  const invalid = (why: string): FerryError =>
    new FerryError('E_MEDIA_INDEX_INVALID', `${file}: ${why}`, {
      file,
      entry: PARTS_INDEX,
      hint: 'the parts index was damaged or altered: make the volumes again with `ferry media`',
    });
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw invalid('the signed payload is not JSON');
  }
  const checked = validate(PartsIndexSchema, value);
  if (!checked.ok)
    throw invalid(checked.errors.map((e) => `${e.path || '/'} ${e.message}`).join('; '));
  const index = checked.value;
  // Bytes, not text: bytes that are not UTF-8 decode to U+FFFD, whose canonical text is itself.
  if (!Buffer.from(canonicalJson(index), 'utf8').equals(payload))
    throw invalid('the signed payload is not canonical JSON');
  let offset = 0;
  for (const [at, part] of index.parts.entries()) {
    if (part.name !== partName(at + 1) || part.volume !== at + 1 || part.offset !== offset)
      throw invalid(`part ${at + 1} is not ${partName(at + 1)} on volume ${at + 1} at ${offset}`);
    offset += part.size;
  }
  if (offset !== index.bundle.size || index.parts.length !== index.volumes)
    throw invalid(
      `${index.parts.length} parts of ${offset} bytes do not make ${index.volumes} volumes of a ${index.bundle.size}-byte bundle`,
    );
  return { envelope, payload, index };
}

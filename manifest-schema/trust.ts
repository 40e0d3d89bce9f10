import { readDocument } from './documents.js';
import { FerryError } from './errors.js';
import { keyIdOf, parsePublicKey } from './keys.js';
import { TrustRootSchema, type TrustRoot } from './schemas.js';

/** Reads a trust root and checks what the schema cannot. */
export async function readTrustRoot(file: string): Promise<TrustRoot> {
  const { value, lineOf } = await readDocument(
    file,
    TrustRootSchema,
    'E_TRUST_INVALID',
    'trust root',
  );
  return checkTrustRoot(value, file, lineOf);
}

/** Key ids match their keys, no key twice, and the threshold is reachable. */
export function checkTrustRoot(
  value: TrustRoot,
  file: string,
  lineOf: (pointer: string) => number | undefined = () => undefined,
): TrustRoot {
  const seen = new Set<string>();
  for (const [index, key] of value.keys.entries()) {
    const field = `/keys/${index}`;
    const line = lineOf(field);
    const where = { file, field, ...(line ? { line } : {}) };
    const actual = keyIdOf(parsePublicKey(key.publicKey, `${file}${field}`));
    if (actual !== key.keyid) {
      throw new FerryError(
        'E_TRUST_INVALID',
        `${file}: key ${index} has key id ${key.keyid} but its public key's id is ${actual}`,
        {
          ...where,
          hint: 'rewrite the trust root with `ferry trust init`',
        },
      );
    }
    if (seen.has(actual)) {
      throw new FerryError('E_TRUST_INVALID', `${file}: key ${actual} is listed twice`, {
        ...where,
        hint: 'list each key once',
      });
    }
    seen.add(actual);
  }
  if (value.threshold > value.keys.length) {
    throw new FerryError(
      'E_TRUST_INVALID',
      `${file}: threshold ${value.threshold} is more than its ${value.keys.length} keys`,
      {
        file,
        field: '/threshold',
        hint: 'lower the threshold or add keys',
      },
    );
  }
  return value;
}

/**
 * Canonical JSON: object keys sorted by code unit, no insignificant white
 * space, integers only. Signatures are made over these exact bytes, and the
 * verifier checks the stored bytes, never a re-serialisation.
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, '');
}

function serialise(value: unknown, path: string): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`canonical JSON holds only safe integers; ${path || '/'} is ${value}`);
    }
    return String(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, index) => serialise(item, `${path}/${index}`)).join(',')}]`;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${serialise(item, `${path}/${key}`)}`).join(',')}}`;
  }
  throw new TypeError(`canonical JSON cannot hold ${typeof value} at ${path || '/'}`);
}

/**
 * The nesting depth of a JSON text, counted without parsing it, so that a
 * hostile document is refused before JSON.parse recurses through it.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

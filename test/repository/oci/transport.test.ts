import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentFor, timedOut } from '../../../repository/oci/http.js';
import { parseChallenge } from '../../../repository/oci/transport.js';
import { ROOT } from '../../helpers.js';

describe('parseChallenge', () => {
  it.each([
    [
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/app:pull,push"',
      'bearer',
      {
        realm: 'https://ghcr.io/token',
        service: 'ghcr.io',
        scope: 'repository:acme/app:pull,push',
      },
    ],
    [
      'Bearer realm="https://auth.example/token", service="reg", scope="repository:a/b:pull repository:c/d:pull", error="insufficient_scope"',
      'bearer',
      {
        realm: 'https://auth.example/token',
        service: 'reg',
        scope: 'repository:a/b:pull repository:c/d:pull',
        error: 'insufficient_scope',
      },
    ],
    ['Basic realm="basic-realm"', 'basic', { realm: 'basic-realm' }],
    ['basic realm=plain', 'basic', { realm: 'plain' }],
    ['Bearer realm="a\\"b"', 'bearer', { realm: 'a"b' }],
  ])('%s', (header, scheme, params) => {
    expect(parseChallenge(header)).toEqual({ scheme, params });
  });

  it('has no challenge in an empty header', () => {
    expect(parseChallenge('')).toBeUndefined();
  });
});

describe('a timeout says the limit as it was set', () => {
  it.each([
    [500, '500 ms'],
    [1500, '1.5 s'],
    [90_000, '90 s'],
    [60_000, '1 minute'],
    [300_000, '5 minutes'],
  ])('%i ms reads %s', (ms, said) => {
    expect(timedOut(ms).message).toBe(`the answer took more than ${said} to arrive`);
    expect(silentFor(ms).message).toBe(`the connection stayed silent for ${said}`);
  });
});

describe('repository/oci boundary', () => {
  // The registry client is a transport: it knows the contract (errors, canonical
  // JSON, hashing) and nothing of how bundles are built, read or installed.
  it('imports only node: modules, manifest-schema/ and its own folder', async () => {
    const dir = join(ROOT, 'repository', 'oci');
    const imports: string[] = [];
    for (const entry of await readdir(dir)) {
      if (!entry.endsWith('.ts')) continue;
      const text = await readFile(join(dir, entry), 'utf8');
      for (const match of text.matchAll(/from\s+'([^']+)'/g)) imports.push(match[1] as string);
    }
    expect(imports.length).toBeGreaterThan(10);
    expect(
      imports.filter((target) => !/^(node:|\.\/|\.\.\/\.\.\/manifest-schema\/)/.test(target)),
    ).toEqual([]);
  });
});

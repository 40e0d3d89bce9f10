import { describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import {
  assertTagOrDigest,
  isLoopbackHost,
  parseRegistryReference,
} from '../../../repository/oci/reference.js';

function refusal(text: string, insecure = false): FerryError {
  try {
    parseRegistryReference(text, { insecure });
  } catch (error) {
    if (error instanceof FerryError) return error;
    throw error;
  }
  throw new Error(`${text} was accepted`);
}

describe('parseRegistryReference', () => {
  it.each([
    [
      'oci://registry.example.com/acme/appliance',
      'registry.example.com',
      'acme/appliance',
      'https://registry.example.com',
    ],
    [
      'oci://Registry.Example.com:5443/a/b/c',
      'registry.example.com:5443',
      'a/b/c',
      'https://registry.example.com:5443',
    ],
    [
      'oci://127.0.0.1:5000/acme/appliance',
      '127.0.0.1:5000',
      'acme/appliance',
      'http://127.0.0.1:5000',
    ],
    ['oci://127.8.9.10/x', '127.8.9.10', 'x', 'http://127.8.9.10'],
    ['oci://localhost:5000/ns/p', 'localhost:5000', 'ns/p', 'http://localhost:5000'],
    ['oci://[::1]:5000/ns/p', '[::1]:5000', 'ns/p', 'http://[::1]:5000'],
    ['oci://[0:0:0:0:0:0:0:1]/ns/p', '[0:0:0:0:0:0:0:1]', 'ns/p', 'http://[::1]'],
    ['oci://r.example:443/ns/p', 'r.example:443', 'ns/p', 'https://r.example'],
    ['oci://localhost:80/ns/p', 'localhost:80', 'ns/p', 'http://localhost'],
    [
      'oci://10.0.0.1:5000/my_org/app.v2',
      '10.0.0.1:5000',
      'my_org/app.v2',
      'https://10.0.0.1:5000',
    ],
    ['oci://r.example/a__b/c--d', 'r.example', 'a__b/c--d', 'https://r.example'],
  ])('%s', (text, registry, repository, origin) => {
    expect(parseRegistryReference(text)).toMatchObject({ registry, repository, origin });
  });

  it('allows plain HTTP to a host that is not loopback only when asked', () => {
    expect(parseRegistryReference('oci://10.0.0.1:5000/a/b').origin).toBe('https://10.0.0.1:5000');
    expect(parseRegistryReference('oci://10.0.0.1:5000/a/b', { insecure: true })).toMatchObject({
      origin: 'http://10.0.0.1:5000',
      insecure: true,
    });
    expect(parseRegistryReference('oci://128.0.0.1/a/b').origin).toBe('https://128.0.0.1');
  });

  it.each([
    'https://registry.example.com/acme/appliance',
    'oci://registry.example.com',
    'oci://registry.example.com/',
    'oci://registry.example.com/Acme/appliance',
    'oci://registry.example.com/acme//appliance',
    'oci://registry.example.com/acme/appliance/',
    'oci://registry.example.com/-acme/appliance',
    'oci://registry.example.com/acme/appliance:1.2.0',
    'oci://registry.example.com/acme/appliance@sha256:' + 'a'.repeat(64),
    'oci://registry.example.com/acme/appliance?x=1',
    'oci://registry.example.com:0/a',
    'oci://registry.example.com:70000/a',
    'oci://bad_host/a',
    'oci://[::zz]/a',
    `oci://r.example/${'a'.repeat(250)}`,
  ])('refuses %s with E_REPO_REFERENCE', (text) => {
    expect(refusal(text).code).toBe('E_REPO_REFERENCE');
  });

  it('refuses credentials in the reference without echoing them', () => {
    const error = refusal('oci://ci:hunter2@registry.example.com/acme/appliance');
    expect(error.code).toBe('E_REPO_REFERENCE');
    expect(error.message).not.toContain('hunter2');
    expect(error.hint).toMatch(/FERRY_REGISTRY_USER/);
  });
});

describe('tags, digests and loopback', () => {
  it.each([
    '1.2.0',
    'v1',
    '_x',
    'stable',
    'sha256-abc',
    `sha256:${'0'.repeat(64)}`,
    'a'.repeat(128),
  ])('accepts %s', (value) => expect(() => assertTagOrDigest(value)).not.toThrow());

  it.each([
    '1.2.0+build.5',
    '.hidden',
    '-x',
    '',
    'a'.repeat(129),
    `sha256:${'A'.repeat(64)}`,
    'sha512:ab',
  ])('refuses %s', (value) =>
    expect(() => assertTagOrDigest(value)).toThrow(
      expect.objectContaining({ code: 'E_REPO_REFERENCE' }),
    ),
  );

  it.each([
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['[::1]', true],
    ['::1', true],
    ['::ffff:127.0.0.1', false],
    ['128.0.0.1', false],
    ['localhost.example.com', false],
    ['10.0.0.1', false],
  ])('%s is loopback: %s', (host, loopback) => expect(isLoopbackHost(host)).toBe(loopback));
});

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_SCHEMAS } from '../../manifest-schema/output-declarations.js';
import {
  buildAll,
  EPOCH,
  ferry,
  json,
  ROOT,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';
import { cloneAppliance, initAppliance, installOk } from './appliance.js';

// Every command's --json output, from the real CLI, against the schema
// published for it in manifest-schema/schemas/output-<command>.json.

type Name = keyof typeof OUTPUT_SCHEMAS;
const ajv = new Ajv({ allErrors: true, strict: false });
let ws: Workspace;
let bundles: Record<string, string>;
let base: string;

beforeAll(async () => {
  ws = await workspace(await tempDir());
  bundles = await buildAll(ws, join(ws.dir, 'bundles'), 'tar', ['1.0.0', '1.1.0']);
  base = join(ws.dir, 'at-1.0.0');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
});

async function published(name: Name): Promise<object> {
  const file = join(ROOT, 'manifest-schema', 'schemas', `output-${name}.json`);
  return JSON.parse(await readFile(file, 'utf8')) as object;
}

async function conforms(name: Name, output: unknown): Promise<void> {
  const validate = ajv.compile(await published(name));
  expect(validate(output), `${name}: ${ajv.errorsText(validate.errors)}`).toBe(true);
}

async function clone(name: string): Promise<string> {
  const root = join(ws.dir, name);
  await cloneAppliance(base, root);
  return root;
}

describe('--json output', () => {
  it.each(Object.keys(OUTPUT_SCHEMAS) as Name[])(
    'schemas/output-%s.json is generated from manifest-schema/output-declarations.ts (run `npm run schemas`)',
    async (name) => {
      expect(await published(name)).toEqual(JSON.parse(JSON.stringify(OUTPUT_SCHEMAS[name])));
    },
  );

  it('every command: schemaVersion first, the published shape, the same names', async () => {
    const root = await clone('json');
    const spec = join(ws.product, 'release-1.1.0.yaml');
    const chain = join(ws.dir, 'chain');
    await mkdir(chain);
    const [root1, root2] = [join(chain, 'root-1.json'), join(chain, 'root-2.json')];
    const expires = ['--expires', '2099-01-01T00:00:00Z'];
    const tuf = ['--root-key', ws.pub, '--targets-key', ws.pub, ...expires];
    const next = [...expires, '--out', root2];
    const outputs: Array<[Name, string[]]> = [
      ['version', ['--version', '--json']],
      ['keygen', ['keygen', '--out', join(ws.dir, 'k2'), '--json']],
      ['trust-init', ['trust', 'init', '--key', ws.pub, '--out', join(ws.dir, 't.json'), '--json']],
      ['trust-init', ['trust', 'init', ...tuf, '--sign-with', ws.key, '--out', root1, '--json']],
      ['trust-sign-next', ['trust', 'sign-next', '--previous', root1, ...next, '--json']],
      ['trust-sign', ['trust', 'sign', root2, '--key', ws.key, '--previous', root1, '--json']],
      ['trust-show', ['trust', 'show', root2, '--previous', root1, '--json']],
      ['trust-verify-chain', ['trust', 'verify-chain', chain, '--trusted', root1, '--json']],
      ['lint', ['lint', spec, '--json']],
      ['build', ['build', spec, '--out', join(ws.dir, 'b'), '--key', ws.key, '--json']],
      ['inspect', ['inspect', bundles['1.1.0'] as string, '--json']],
      ['verify', ['verify', bundles['1.1.0'] as string, '--trust', ws.trust, '--json']],
      [
        'init',
        [
          'init',
          '--root',
          join(ws.dir, 'fresh'),
          '--product',
          'acme-appliance',
          '--platform',
          'acme-os@7.2.1',
          '--trust',
          ws.trust,
          '--json',
        ],
      ],
      ['plan', ['plan', bundles['1.1.0'] as string, '--root', root, '--json']],
      ['status', ['status', '--root', root, '--verify', '--json']],
      ['recover', ['recover', '--root', root, '--json']],
      ['log', ['log', '--root', root, '--json']],
      ['error', ['inspect', join(ws.dir, 'no-such.tar'), '--json']],
    ];
    for (const [name, args] of outputs) {
      const result = await ferry(args, { env: { SOURCE_DATE_EPOCH: EPOCH } });
      const output = json(result);
      expect(Object.keys(output)[0], name).toBe('schemaVersion');
      await conforms(name, output);
    }
    const installed = await ferry([
      'install',
      bundles['1.1.0'] as string,
      '--root',
      root,
      '--yes',
      '--json',
    ]);
    expect(installed.code, installed.stderr).toBe(0);
    await conforms('install', JSON.parse(installed.stdout.trim().split('\n').at(-1) as string));
    const rolled = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(rolled.code, rolled.stderr).toBe(0);
    await conforms('rollback', json(rolled));
  });

  it('repository and media commands: schemaVersion first, the published shape', async () => {
    const repo = join(ws.dir, 'repo');
    const media = join(ws.dir, 'media');
    const bundle = bundles['1.1.0'] as string;
    const key = ['--key', ws.key];
    const outputs: Array<[Name, string[]]> = [
      [
        'publish',
        ['publish', bundle, '--repo', repo, '--trust', ws.trust, '--channel', 'dev', ...key],
      ],
      ['approve', ['approve', '1.1.0', '--repo', repo, '--to', 'beta', '--by', 'alice', ...key]],
      ['promote', ['promote', '1.1.0', '--repo', repo, '--to', 'beta', ...key]],
      ['channels', ['channels', '--repo', repo]],
      ['history', ['history', '--repo', repo, '--verify']],
      ['policy', ['policy', '--repo', repo]],
      ['pull', ['pull', '--repo', repo, '--channel', 'beta', '--out', join(ws.dir, 'pulled')]],
      ['gc', ['gc', '--repo', repo]],
      ['media', ['media', bundle, '--out', media, '--no-installer', ...key]],
      ['media-verify', ['media', 'verify', media, '--trust', ws.trust]],
    ];
    for (const [name, args] of outputs) {
      const result = await ferry([...args, '--json'], { env: { FERRY_ACTOR: 'ci' } });
      expect(result.code, `${name}: ${result.stderr}`).toBe(0);
      const output = json(result);
      expect(Object.keys(output)[0], name).toBe('schemaVersion');
      await conforms(name, output);
    }
  });

  it('inspect of an expired bundle says so, in text and --json, and still exits 0', async () => {
    const built = await ferry(
      [
        'build', join(ws.product, 'release-1.1.0.yaml'), '--out', join(ws.dir, 'expired'),
        '--key', ws.key, '--expires', '2001-01-01T00:00:00Z', '--allow-expired', '--json',
      ],
      { env: { SOURCE_DATE_EPOCH: EPOCH } },
    ); // prettier-ignore
    expect(built.code, built.stderr).toBe(0);
    const expired = json<{ bundle: string }>(built).bundle;
    const inspected = await ferry(['inspect', expired, '--trust', ws.trust, '--json']);
    expect(inspected.code, inspected.stderr).toBe(0);
    const output = json<{ expires: string; expired: boolean }>(inspected);
    expect(output).toMatchObject({ expires: '2001-01-01T00:00:00Z', expired: true });
    await conforms('inspect', output);
    const text = await ferry(['inspect', expired]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('expires    2001-01-01T00:00:00Z: EXPIRED');
    // A bundle without an expiry never expires: no date, and false.
    const lasting = json<{ expires?: string; expired: boolean }>(
      await ferry(['inspect', bundles['1.1.0'] as string, '--json']),
    );
    expect(lasting.expired).toBe(false);
    expect(lasting.expires).toBeUndefined();
  });

  it('a field the schema does not know fails the check', async () => {
    const validate = ajv.compile(await published('recover'));
    expect(validate({ schemaVersion: 1, recovered: false, release: null })).toBe(true);
    expect(validate({ schemaVersion: 1, recovered: false, release: null, file: 'x' })).toBe(false);
  });
});

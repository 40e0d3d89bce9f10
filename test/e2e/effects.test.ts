import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ferry, json, keyPairs, tempDir } from '../helpers.js';
import { installOk } from './appliance.js';

// What a component declares of its update (estimatedDuration, restart,
// reboot): checked in the spec, signed in the bundle, and told to the
// artifacts that run for it.

let dir: string;
let key: string;
let trust: string;

/** Every artifact writes its FERRY_ environment to $FERRY_ROOT/env/<pass>-<component>. */
const RECORD = [
  '#!/bin/sh',
  'set -eu',
  'mkdir -p "$FERRY_ROOT/env"',
  'env | grep "^FERRY_\\(ESTIMATED_SECONDS\\|RESTART\\|REBOOT\\)=" | sort > "$FERRY_ROOT/env/$FERRY_PASS-${FERRY_COMPONENT:-bundle}"',
  '',
].join('\n');

async function spec(name: string, components: string[]): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      'product: effects',
      'release: "1.0.0"',
      'platform: { name: os, range: "*" }',
      'components:',
      ...components,
      'verification: [./record.sh]',
      '',
    ].join('\n'),
  );
  return file;
}

const artifacts = 'payload: ./payload, artifacts: { update: [./record.sh], test: [./record.sh] }';

beforeAll(async () => {
  dir = await tempDir();
  await mkdir(join(dir, 'payload'));
  await writeFile(join(dir, 'payload', 'README'), 'payload\n');
  await writeFile(join(dir, 'record.sh'), RECORD, { mode: 0o755 });
  const { k } = await keyPairs(dir, 'k');
  key = k.key;
  trust = join(dir, 'trust.json');
  expect((await ferry(['trust', 'init', '--key', k.pub, '--out', trust])).code).toBe(0);
});

async function recorded(root: string, file: string): Promise<Record<string, string>> {
  const text = await readFile(join(root, 'env', file), 'utf8');
  return Object.fromEntries(
    text
      .split('\n')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('estimated duration, restart and reboot', () => {
  it('are signed into the bundle, planned, and told to every artifact that runs', async () => {
    const file = await spec('declared', [
      `  db: { version: "1.0.0", estimatedDuration: 1m30s, restart: [db.service, api], reboot: true, ${artifacts} }`,
      `  web: { version: "1.0.0", estimatedDuration: 45s, restart: [nginx], ${artifacts} }`,
      `  tools: { version: "1.0.0", ${artifacts} }`,
    ]);
    const build = await ferry(['build', file, '--out', join(dir, 'out'), '--key', key, '--json']);
    expect(build.code, build.stderr).toBe(0);
    const bundle = json<{ bundle: string }>(build).bundle;
    const inspected = json<{ components: Array<Record<string, unknown>> }>(
      await ferry(['inspect', bundle, '--json']),
    );
    expect(inspected.components.find((c) => c.name === 'db')).toMatchObject({
      estimatedSeconds: 90,
      restart: ['db.service', 'api'],
      reboot: true,
    });
    expect(inspected.components.find((c) => c.name === 'tools')).not.toHaveProperty('reboot');
    expect((await ferry(['inspect', bundle])).stdout).toContain(
      'db: takes about 1m30s; restarts db.service, api; needs a reboot',
    );

    const root = join(dir, 'appliance');
    const init = await ferry([
      'init',
      '--root',
      root,
      '--product',
      'effects',
      '--platform',
      'os@1.0.0',
      '--trust',
      trust,
    ]);
    expect(init.code, init.stderr).toBe(0);
    const planned = await ferry(['plan', bundle, '--root', root]);
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toContain(
      'Takes an unknown time: tools declares no estimate (the rest takes about 2m15s).',
    );
    expect(planned.stdout).toContain('Restarts api, db.service, nginx.');
    expect(planned.stdout).toContain('Needs a reboot.');

    await installOk(bundle, root);
    // A component's artifacts hear what it declares; undeclared is empty, and no reboot.
    expect(await recorded(root, 'update-db')).toEqual({
      FERRY_ESTIMATED_SECONDS: '90',
      FERRY_REBOOT: '1',
      FERRY_RESTART: 'db.service api',
    });
    expect(await recorded(root, 'test-web')).toEqual({
      FERRY_ESTIMATED_SECONDS: '45',
      FERRY_REBOOT: '0',
      FERRY_RESTART: 'nginx',
    });
    expect(await recorded(root, 'update-tools')).toEqual({
      FERRY_ESTIMATED_SECONDS: '',
      FERRY_REBOOT: '0',
      FERRY_RESTART: '',
    });
    // The bundle's verification hears the totals: the estimate is unknown while tools declares none.
    expect(await recorded(root, 'test-bundle')).toEqual({
      FERRY_ESTIMATED_SECONDS: '',
      FERRY_REBOOT: '1',
      FERRY_RESTART: 'api db.service nginx',
    });
  });

  it.each([
    ['90', 'it has no unit'],
    ['"1.5h"', 'is not a duration'],
    ['0s', 'is zero'],
    ['200h', 'over seven days'],
  ])('refuses estimatedDuration %s, naming the line and column', async (duration, problem) => {
    const file = await spec(`bad-${duration.replace(/\W/g, '')}`, [
      '  db:',
      '    version: "1.0.0"',
      `    estimatedDuration: ${duration}`,
      '    payload: ./payload',
    ]);
    const result = await ferry(['lint', file, '--json']);
    expect(result.code).toBe(2);
    const { error } = json<{
      error: { code: string; message: string; line: number; column: number; field: string };
    }>(result);
    expect(error).toMatchObject({
      code: 'E_SPEC_INVALID',
      field: '/components/db/estimatedDuration',
      line: 7,
      column: 24,
    });
    expect(error.message).toContain(`${file}:7:24:`);
    expect(error.message).toContain(problem);
  });

  it('refuses a service name that could not be told apart in FERRY_RESTART', async () => {
    const file = await spec('bad-service', [
      '  db: { version: "1.0.0", restart: ["api server"], payload: ./payload }',
    ]);
    const result = await ferry(['lint', file, '--json']);
    expect(result.code).toBe(2);
    expect(json<{ error: { code: string; field: string } }>(result).error).toMatchObject({
      code: 'E_SPEC_INVALID',
      field: '/components/db/restart/0',
    });
  });

  it.each([
    ['an option', '["-H", "root@mirror"]', 0],
    ['a long option', '[nginx, "--no-block"]', 1],
  ])(
    'refuses %s given as a service, which `systemctl restart $FERRY_RESTART` would obey',
    async (_, list, index) => {
      const file = await spec(`option-service-${index}`, [
        `  db: { version: "1.0.0", restart: ${list}, payload: ./payload }`,
      ]);
      const result = await ferry(['lint', file, '--json']);
      expect(result.code).toBe(2);
      expect(json<{ error: { code: string; field: string } }>(result).error).toMatchObject({
        code: 'E_SPEC_INVALID',
        field: `/components/db/restart/${index}`,
      });
    },
  );

  it('refuses restart lists that together would not fit the environment of verification', async () => {
    // Each list is within the schema; their union in FERRY_RESTART is over
    // 128 KiB, which Linux refuses to start a program with (E2BIG).
    const services = (prefix: string): string =>
      Array.from(
        { length: 256 },
        (_, i) => `${prefix}${String(i).padStart(3, '0')}${'x'.repeat(251)}`,
      ).join(', ');
    const file = await spec('huge-restart', [
      `  db: { version: "1.0.0", restart: [${services('d')}], ${artifacts} }`,
      `  web: { version: "1.0.0", restart: [${services('w')}], ${artifacts} }`,
    ]);
    const result = await ferry(['lint', file, '--json']);
    expect(result.code).toBe(2);
    const { error } = json<{ error: { code: string; field: string; message: string } }>(result);
    expect(error).toMatchObject({ code: 'E_SPEC_INVALID', field: '/components/web/restart' });
    expect(error.message).toContain('FERRY_RESTART');
  });
});

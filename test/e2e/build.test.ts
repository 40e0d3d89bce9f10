import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  buildAll,
  copyFixture,
  EPOCH,
  ferry,
  json,
  RELEASES,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';

interface InspectJson {
  product: string;
  kind: string;
  release: string;
  target: Record<string, string>;
  supportedFrom: string[];
  changes: Array<{ id: string; component: string; version: string }>;
  components: Array<{ name: string; payload: string }>;
  signature: { valid: boolean | null; keyids: string[] };
  bytesRead: number;
}

/** The parts of a fixture spec these tests edit. */
interface SpecDoc {
  release: string;
  components: Record<
    string,
    {
      version: string;
      requires?: Record<string, string>;
      payload: unknown;
      artifacts: Record<string, string[]>;
    }
  >;
}

let dir: string;
let ws: Workspace;
const bundles: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  bundles.tar = await buildAll(ws, join(dir, 'out-tar'), 'tar');
  // the zip builds rebuild the same releases: the history already records them
  bundles.zip = await buildAll(ws, join(dir, 'out-zip'), 'zip');
});

describe('keygen and trust init', () => {
  it('prints a key id and refuses to overwrite a key', async () => {
    const again = await ferry(['keygen', '--out', join(dir, 'keys'), '--name', 'release']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('E_EXISTS');
    const fresh = await ferry(['keygen', '--out', join(dir, 'keys'), '--name', 'other', '--json']);
    expect(fresh.code).toBe(0);
    expect(json<{ keyid: string }>(fresh).keyid).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a threshold above the number of keys', async () => {
    const result = await ferry([
      'trust',
      'init',
      '--key',
      ws.pub,
      '--threshold',
      '2',
      '--out',
      join(dir, 't2.json'),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_USAGE');
  });
});

describe.each(['tar', 'zip'])('every fixture release as %s', (format) => {
  it.each(RELEASES)('%s builds, inspects and verifies', async (release) => {
    const bundle = bundles[format]?.[release] as string;
    const inspect = await ferry(['inspect', bundle, '--trust', ws.trust, '--json']);
    expect(inspect.code).toBe(0);
    const meta = json<InspectJson>(inspect);
    expect(meta.product).toBe('acme-appliance');
    expect(meta.release).toBe(release);
    expect(meta.kind).toBe(release === '1.0.0' ? 'install' : 'update');
    expect(meta.signature.valid).toBe(true);
    const verify = await ferry(['verify', bundle, '--trust', ws.trust]);
    // Without a terminal, progress is plain lines on stderr, and nothing else is.
    for (const line of verify.stderr.trimEnd().split('\n'))
      expect(line).toMatch(/^verify: checked .* of .* \(\d+%\)/);
    expect(verify.code).toBe(0);
  });
});

describe('the cumulative bundle of the newest release', () => {
  it('supports every earlier release, lists every change since the first, and carries no unchanged payload', async () => {
    const bundle = bundles.tar?.['1.3.0'] as string;
    const meta = json<InspectJson>(await ferry(['inspect', bundle, '--json']));
    expect(meta.supportedFrom).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    expect(meta.changes.map((c) => `${c.component}:${c.id}@${c.version}`).sort()).toEqual([
      'api:API-9@2.1.0',
      'db:DB-12@4.0.0',
      'db:DB-20@4.0.0',
      'web:WEB-7@1.0.1',
    ]);
    expect(meta.target).toEqual({ db: '4.0.0', api: '2.1.0', web: '1.0.1', maps: '5.0.0' });
    expect(meta.components.find((c) => c.name === 'maps')?.payload).toBe('unchanged');
    expect(meta.signature.valid).toBeNull();
    const names = execFileSync('tar', ['-tf', bundle], { encoding: 'utf8' }).split('\n');
    expect(names[0]).toBe('bundle.json');
    expect(names.some((name) => name.startsWith('payload/maps/'))).toBe(false);
    expect(names).toContain('payload/db/share/schema.sql');
    expect(names).toContain('artifacts/legacy-agent/remove/uninstall.sh');
  });

  it('a fix-only release carries only the fixed component', async () => {
    const meta = json<InspectJson>(
      await ferry(['inspect', bundles.zip?.['1.1.0'] as string, '--json']),
    );
    expect(meta.components.filter((c) => c.payload === 'included').map((c) => c.name)).toEqual([
      'web',
    ]);
    expect(meta.changes.map((c) => c.id)).toEqual(['WEB-7']);
  });

  it('an install bundle carries everything and lists every change', async () => {
    const out = join(dir, 'out-install');
    const result = await ferry(
      [
        'build',
        join(ws.product, 'release-1.3.0.yaml'),
        '--out',
        out,
        '--key',
        ws.key,
        '--kind',
        'install',
        '--json',
      ],
      {
        env: { SOURCE_DATE_EPOCH: EPOCH },
      },
    );
    expect(result.code).toBe(0);
    const meta = json<InspectJson>(
      await ferry(['inspect', json<{ bundle: string }>(result).bundle, '--json']),
    );
    expect(meta.kind).toBe('install');
    expect(meta.supportedFrom).toEqual([]);
    expect(meta.components.every((c) => c.payload === 'included')).toBe(true);
    expect(meta.changes.map((c) => c.id).sort()).toEqual([
      'API-3',
      'API-9',
      'DB-1',
      'DB-12',
      'DB-20',
      'MAP-2',
      'WEB-1',
      'WEB-7',
    ]);
  });
});

describe('reproducible builds', () => {
  it.each(['tar', 'tar.gz', 'zip'])(
    'two %s builds from separate copies are byte-identical',
    async (format) => {
      const digests: string[] = [];
      for (const copy of ['a', 'b']) {
        const product = await copyFixture(join(dir, `repro-${format}-${copy}`));
        const result = await ferry(
          [
            'build',
            join(product, 'release-1.0.0.yaml'),
            '--first-release',
            '--out',
            join(dir, `repro-${format}-${copy}`, 'out'),
            '--key',
            ws.key,
            '--format',
            format,
            '--json',
          ],
          {
            env: { SOURCE_DATE_EPOCH: EPOCH },
          },
        );
        expect(result.code, result.stderr).toBe(0);
        const built = json<{ sha256: string; bundle: string }>(result);
        const actual = execFileSync('sha256sum', [built.bundle], { encoding: 'utf8' }).split(
          ' ',
        )[0];
        expect(actual).toBe(built.sha256);
        digests.push(built.sha256);
      }
      expect(digests[0]).toBe(digests[1]);
    },
  );
});

describe('released versions', () => {
  async function build(product: string, release: string, out: string, epoch?: string) {
    return ferry(
      [
        'build',
        join(product, `release-${release}.yaml`),
        '--out',
        out,
        '--key',
        ws.key,
        ...(release === '1.0.0' ? ['--first-release'] : []),
        '--json',
      ],
      epoch ? { env: { SOURCE_DATE_EPOCH: epoch } } : {},
    );
  }

  it('a rebuild of a recorded release reproduces it without SOURCE_DATE_EPOCH', async () => {
    const product = await copyFixture(join(dir, 'rebuild-time'));
    const first = await build(product, '1.0.0', join(dir, 'rebuild-time', 'a'), EPOCH);
    expect(first.code, first.stderr).toBe(0);
    const again = await build(product, '1.0.0', join(dir, 'rebuild-time', 'b'));
    expect(again.code, again.stderr).toBe(0);
    expect(json<{ sha256: string }>(again).sha256).toBe(json<{ sha256: string }>(first).sha256);
  });

  it('rebuilding a recorded release with other bytes is refused, and its bundle is left as it was', async () => {
    const product = await copyFixture(join(dir, 'rebuild-bytes'));
    const out = join(dir, 'rebuild-bytes', 'out');
    const first = json<{ bundle: string; sha256: string }>(
      await build(product, '1.0.0', out, EPOCH),
    );
    await writeFile(join(product, 'components/web/1.0.0/index.html'), '<p>other</p>\n');
    const again = await build(product, '1.0.0', out, EPOCH);
    expect(again.code).toBe(2);
    const error = json<{ error: { code: string; component: string; message: string } }>(
      again,
    ).error;
    expect(error).toMatchObject({ code: 'E_VERSION_REUSED', component: 'web' });
    expect(error.message).toContain('web 1.0.0');
    expect(error.message).toContain('index.html');
    const digest = execFileSync('sha256sum', [first.bundle], { encoding: 'utf8' }).split(' ')[0];
    expect(digest).toBe(first.sha256);
  });

  it('a later release carrying a recorded version with other bytes is refused', async () => {
    const product = await copyFixture(join(dir, 'reuse'));
    const out = join(dir, 'reuse', 'out');
    for (const release of ['1.0.0', '1.1.0'])
      expect((await build(product, release, out, EPOCH)).code).toBe(0);
    await writeFile(join(product, 'components/web/1.0.1/index.html'), '<p>other</p>\n');
    const result = await build(product, '1.2.0', out, EPOCH);
    expect(result.code).toBe(2);
    const error = json<{ error: { code: string; message: string } }>(result).error;
    expect(error.code).toBe('E_VERSION_REUSED');
    expect(error.message).toMatch(/web 1\.0\.1 was released in 1\.1\.0 .*index\.html/);
    // Into a folder of its own, the refused build leaves none behind.
    const fresh = join(dir, 'reuse', 'fresh');
    const refused = await build(product, '1.2.0', join(fresh, 'out'), EPOCH);
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('E_VERSION_REUSED');
    expect(existsSync(fresh)).toBe(false);
  });
});

describe('tampering', () => {
  async function tampered(
    source: string,
    name: string,
    edit: (bytes: Buffer) => void,
  ): Promise<string> {
    const copy = join(dir, name);
    await cp(source, copy);
    const bytes = await readFile(copy);
    edit(bytes);
    await writeFile(copy, bytes);
    return copy;
  }

  it.each(['tar', 'zip'])(
    'one flipped payload byte in a %s fails verify with exit 3 naming the entry',
    async (format) => {
      const source = bundles[format]?.['1.0.0'] as string;
      const bytes = await readFile(source);
      // tiles.bin is the large binary file: flip a byte in its middle
      const marker = bytes.indexOf(Buffer.from('payload/maps/data/tiles.bin'), 1024);
      const copy = await tampered(source, `flip.${format}`, (b) => {
        b[marker + 1024 * 1024] = (b[marker + 1024 * 1024] ?? 0) ^ 0xff;
      });
      const result = await ferry(['verify', copy, '--trust', ws.trust, '--json']);
      expect(result.code).toBe(3);
      const error = json<{ error: { code: string; entry: string } }>(result).error;
      expect(['E_HASH_MISMATCH', 'E_BUNDLE_CORRUPT']).toContain(error.code);
      expect(error.entry).toBe('payload/maps/data/tiles.bin');
    },
  );

  it('a tar cut short fails verify with exit 3 naming the entry it cut', async () => {
    const source = bundles.tar?.['1.0.0'] as string;
    const bytes = await readFile(source);
    const marker = bytes.indexOf(Buffer.from('payload/maps/data/tiles.bin'), 1024);
    // Cut in the entry's header, then in its data.
    for (const end of [marker + 10, marker + 1024 * 1024]) {
      const copy = join(dir, `cut-${end}.tar`);
      await writeFile(copy, bytes.subarray(0, end));
      const result = await ferry(['verify', copy, '--trust', ws.trust, '--json']);
      expect(result.code, result.stderr).toBe(3);
      const error = json<{ error: { code: string; entry: string; message: string } }>(result).error;
      expect(error).toMatchObject({
        code: 'E_BUNDLE_CORRUPT',
        entry: 'payload/maps/data/tiles.bin',
      });
      expect(error.message).toContain('cut short in payload/maps/data/tiles.bin');
    }
  });

  it('a changed metadata byte fails the signature with exit 3', async () => {
    const source = bundles.tar?.['1.2.0'] as string;
    const bytes = await readFile(source);
    const start = bytes.indexOf(Buffer.from('"payload":"')) + 40;
    const copy = await tampered(source, 'meta.tar', (b) => {
      b[start] = b[start] === 0x41 ? 0x42 : 0x41; // another base64 letter: still valid JSON
    });
    for (const command of ['verify', 'inspect']) {
      const result = await ferry([command, copy, '--trust', ws.trust]);
      expect(result.code, result.stderr).toBe(3);
    }
    const verify = await ferry(['verify', copy, '--trust', ws.trust, '--json']);
    expect(['E_SIGNATURE', 'E_METADATA_INVALID']).toContain(
      json<{ error: { code: string } }>(verify).error.code,
    );
  });

  it('a bundle signed by an untrusted key fails verify with exit 3', async () => {
    const other = await ferry(['keygen', '--out', join(dir, 'rogue'), '--name', 'rogue']);
    expect(other.code).toBe(0);
    const product = await copyFixture(join(dir, 'rogue-build'));
    const built = await ferry([
      'build',
      join(product, 'release-1.0.0.yaml'),
      '--first-release',
      '--out',
      join(dir, 'rogue-out'),
      '--key',
      join(dir, 'rogue', 'rogue.key'),
      '--json',
    ]);
    expect(built.code).toBe(0);
    const result = await ferry([
      'verify',
      json<{ bundle: string }>(built).bundle,
      '--trust',
      ws.trust,
      '--json',
    ]);
    expect(result.code).toBe(3);
    expect(json<{ error: { code: string } }>(result).error.code).toBe('E_SIGNATURE');
  });

  it('a threshold of two needs two signatures', async () => {
    await ferry(['keygen', '--out', join(dir, 'second'), '--name', 'second']);
    const trust2 = join(dir, 'trust2.json');
    expect(
      (
        await ferry([
          'trust',
          'init',
          '--key',
          ws.pub,
          '--key',
          join(dir, 'second', 'second.pub'),
          '--threshold',
          '2',
          '--out',
          trust2,
        ])
      ).code,
    ).toBe(0);
    const one = await ferry([
      'verify',
      bundles.tar?.['1.1.0'] as string,
      '--trust',
      trust2,
      '--json',
    ]);
    expect(one.code).toBe(3);
    expect(json<{ error: { code: string } }>(one).error.code).toBe('E_THRESHOLD');
    const product = await copyFixture(join(dir, 'two-keys'));
    const built = await ferry([
      'build',
      join(product, 'release-1.0.0.yaml'),
      '--first-release',
      '--out',
      join(dir, 'two-out'),
      '--key',
      ws.key,
      '--key',
      join(dir, 'second', 'second.key'),
      '--json',
    ]);
    expect(built.code).toBe(0);
    expect(
      (await ferry(['verify', json<{ bundle: string }>(built).bundle, '--trust', trust2])).code,
    ).toBe(0);
  });
});

describe('build refusals (exit 2, naming the problem)', () => {
  async function specVariant(
    name: string,
    release: string,
    edit: (spec: SpecDoc) => void,
  ): Promise<string> {
    const product = await copyFixture(join(dir, `refuse-${name}`));
    const file = join(product, `release-${release}.yaml`);
    const spec = parse(await readFile(file, 'utf8')) as SpecDoc;
    edit(spec);
    await writeFile(file, stringify(spec));
    return file;
  }

  interface Refused {
    code: string;
    file: string;
    field?: string;
    line?: number;
    problems?: Array<{ path: string; message: string }>;
  }

  /**
   * Builds `file --json`, expecting exit 2 with `code`: the error as JSON, and
   * stderr. `--first-release` unless told otherwise, as the variants are of 1.0.0.
   */
  async function refusal(
    file: string,
    code: string,
    first = true,
  ): Promise<{ error: Refused; stderr: string }> {
    const result = await ferry([
      'build',
      file,
      '--out',
      join(dir, 'refused'),
      '--key',
      ws.key,
      ...(first ? ['--first-release'] : []),
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(2);
    const error = json<{ error: Refused }>(result).error;
    expect(error.code).toBe(code);
    expect(error.file).toBe(file);
    expect(result.stderr).toContain('hint:');
    return { error, stderr: result.stderr };
  }

  async function refuse(file: string, code: string, first = true): Promise<string> {
    return (await refusal(file, code, first)).stderr;
  }

  it('an --expires already past, before reading the spec or writing anything', async () => {
    const product = await copyFixture(join(dir, 'refuse-expired'));
    const spec = join(product, 'release-1.0.0.yaml');
    const out = join(dir, 'refused-expired');
    const args = ['build', spec, '--out', out, '--key', ws.key, '--first-release'];
    const result = await ferry([...args, '--expires', '2001-01-01', '--json']);
    expect(result.code, result.stderr).toBe(2);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(result);
    expect(error.code).toBe('E_USAGE');
    expect(error.message).toContain('--expires 2001-01-01T00:00:00Z');
    expect(error.message).toContain('already past');
    expect(error.hint).toContain('--allow-expired');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(product, 'history'))).toBe(false);
    // A dry run says what the build would.
    const dry = await ferry([...args, '--expires', '2001-01-01', '--dry-run']);
    expect(dry.code, dry.stdout).toBe(2);
    expect(dry.stderr).toContain('E_USAGE: --expires 2001-01-01T00:00:00Z is already past');
    // Reproducing a bundle whose expiry has passed since it was made is the one reason to.
    const reproduced = await ferry([...args, '--expires', '2001-01-01', '--allow-expired']);
    expect(reproduced.code, reproduced.stderr).toBe(0);
  });

  it('a release not newer than its history', async () => {
    const product = await copyFixture(join(dir, 'refuse-older'));
    for (const release of ['1.0.0', '1.1.0']) {
      expect(
        (
          await ferry([
            'build',
            join(product, `release-${release}.yaml`),
            '--out',
            join(dir, 'refused'),
            '--key',
            ws.key,
            ...(release === '1.0.0' ? ['--first-release'] : []),
          ])
        ).code,
      ).toBe(0);
    }
    const file = join(product, 'release-1.0.0.yaml');
    const spec = parse(await readFile(file, 'utf8')) as SpecDoc;
    spec.components.web!.version = '1.0.5';
    await writeFile(file, stringify(spec));
    const exists = await refusal(file, 'E_RELEASE_EXISTS');
    expect(exists.stderr).toContain('1.0.0');
    spec.release = '0.9.0';
    await writeFile(file, stringify(spec));
    const older = await refusal(file, 'E_RELEASE_NOT_NEWER', false);
    expect(older.stderr).toContain('1.1.0');
    // Named by file, line and field, as every build refusal is.
    const line = stringify(spec)
      .split('\n')
      .findIndex((text) => text.startsWith('release:'));
    for (const { error, stderr } of [exists, older]) {
      expect(error).toMatchObject({ field: '/release', line: line + 1 });
      expect(stderr).toContain(`${file}:${line + 1}:`);
    }
  });

  it('a dependency on an unknown component', async () => {
    const file = await specVariant('unknown', '1.0.0', (spec) => {
      spec.components.api!.requires = { cache: '^1.0.0' };
    });
    const stderr = await refuse(file, 'E_UNKNOWN_COMPONENT');
    expect(stderr).toMatch(/api requires cache/);
    expect(stderr).toMatch(/release-1\.0\.0\.yaml:\d+/);
  });

  it('a dependency cycle, naming its members', async () => {
    const file = await specVariant('cycle', '1.0.0', (spec) => {
      spec.components.db!.requires = { web: '^1.0.0' };
    });
    const stderr = await refuse(file, 'E_CYCLE');
    // each needs the next: api needs db, db needs web, web needs api
    expect(stderr).toContain('api → db → web → api');
  });

  it('a requires range nothing in the release satisfies', async () => {
    const file = await specVariant('unsatisfiable', '1.0.0', (spec) => {
      spec.components.api!.requires = { db: '>=9.0.0' };
    });
    expect(await refuse(file, 'E_UNSATISFIABLE')).toContain('db 3.0.0');
  });

  it('a missing payload folder', async () => {
    const file = await specVariant('payload', '1.0.0', (spec) => {
      spec.components.db!.payload = './components/db/9.9.9';
    });
    expect(await refuse(file, 'E_SPEC_PATH')).toContain('components/db/9.9.9');
  });

  it('a missing artifact', async () => {
    const file = await specVariant('artifact', '1.0.0', (spec) => {
      spec.components.web!.artifacts.test = ['./scripts/web/nothing.sh'];
    });
    const stderr = await refuse(file, 'E_SPEC_PATH');
    expect(stderr).toContain('nothing.sh');
  });

  it('an unquoted version, with its line and a hint to quote it', async () => {
    const product = await copyFixture(join(dir, 'refuse-quote'));
    const file = join(product, 'release-1.0.0.yaml');
    const text = (await readFile(file, 'utf8')).replace("version: '3.0.0'", 'version: 1.10');
    await writeFile(file, text);
    const line = text.split('\n').findIndex((l) => l.includes('version: 1.10')) + 1;
    const stderr = await refuse(file, 'E_SPEC_INVALID');
    expect(stderr).toContain(`release-1.0.0.yaml:${line}`);
    expect(stderr).toContain('/components/db/version');
    expect(stderr).toContain('quote');
  });

  it('a malformed YAML file', async () => {
    const product = await copyFixture(join(dir, 'refuse-yaml'));
    const file = join(product, 'release-1.0.0.yaml');
    await writeFile(file, 'product: [unclosed\n');
    await refuse(file, 'E_YAML');
  });

  it('a duplicate key names its line and column', async () => {
    const product = await copyFixture(join(dir, 'refuse-duplicate'));
    const file = join(product, 'release-1.0.0.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace("release: '1.0.0'", "release: '1.0.0'\nrelease: '1.0.1'"));
    const line = text.split('\n').findIndex((l) => l.startsWith('release:')) + 2;
    expect(await refuse(file, 'E_YAML')).toContain(
      `release-1.0.0.yaml:${line}:1: Map keys must be unique`,
    );
  });

  it('every schema problem, in --json too: versions as written, semver, did you mean', async () => {
    const product = await copyFixture(join(dir, 'refuse-many'));
    const file = join(product, 'release-1.0.0.yaml');
    const text = (await readFile(file, 'utf8'))
      .replace("release: '1.0.0'", 'release: 1.0')
      .replace("version: '3.0.0'", 'version: 1.10')
      .replace("version: '2.0.0'", "version: 'v1.0'")
      .replace('owner: frontend-team', 'ownr: frontend-team');
    await writeFile(file, text);
    const { problems = [] } = (await refusal(file, 'E_SPEC_INVALID')).error;
    const about = (path: string) => problems.find((p) => p.path === path)?.message;
    expect(about('/release')).toContain('"1.0.0"');
    expect(about('/components/db/version')).toContain('"1.10.0"');
    expect(about('/components/db/version')).toContain('1.10 is the number 1.1');
    expect(about('/components/api/version')).toContain('semver');
    expect(about('/components/web/ownr')).toContain('did you mean owner?');
  });

  it('a spec path that is a folder is a usage error', async () => {
    const result = await ferry([
      'build',
      ws.product,
      '--out',
      join(dir, 'refused'),
      '--key',
      ws.key,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('is a folder');
  });

  it('a missing spec file', async () => {
    const result = await ferry([
      'build',
      join(dir, 'nope.yaml'),
      '--out',
      join(dir, 'refused'),
      '--key',
      ws.key,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_NOT_FOUND');
  });

  it('unknown flags and missing keys are usage errors', async () => {
    expect((await ferry(['build', 'x.yaml', '--bogus'])).code).toBe(2);
    const noKey = await ferry([
      'build',
      join(ws.product, 'release-1.0.0.yaml'),
      '--out',
      join(dir, 'refused'),
    ]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--key');
    await rm(join(dir, 'refused'), { recursive: true, force: true });
  });
});

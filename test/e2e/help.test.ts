import { describe, expect, it } from 'vitest';
import { loadCommands } from '../../cli/main.js';
import { FERRY_VERSION as VERSION } from '../../manifest-schema/ferry-version.js';
import { optionLabel } from '../../cli/help.js';
import { ferry, json, ROOT, run, tempDir } from '../helpers.js';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';

const commands = await loadCommands();
// `media` is a command and has a subcommand (`media verify`): only words that are no command are groups.
const groups = [...new Set(commands.map(([name]) => name.split(' ')))]
  .filter((words) => words.length > 1)
  .map(([word]) => word as string)
  .filter((word) => !commands.some(([name]) => name === word));

function fits(text: string): void {
  for (const line of text.split('\n')) expect([...line].length, line).toBeLessThanOrEqual(80);
}

/** The name bin/ferry gives its code cache on this Node with these flags (see bin/ferry). */
const cacheName = (flags = ''): string =>
  `ferry-script.js.${createHash('sha256').update(`${process.version}\0${flags}`).digest('hex').slice(0, 16)}.cache`;

/** A checkout of bin/ferry and the built script alone, without a code cache yet. */
async function scriptCheckout(): Promise<{ checkout: string; packaged: string; cache: string }> {
  const checkout = await tempDir('ferry-code-cache-');
  const packaged = join(checkout, 'dist', 'package');
  await mkdir(join(checkout, 'bin'));
  await mkdir(packaged, { recursive: true });
  await copyFile(join(ROOT, 'bin', 'ferry'), join(checkout, 'bin', 'ferry'));
  await copyFile(
    join(ROOT, 'dist', 'package', 'ferry-script.js'),
    join(packaged, 'ferry-script.js'),
  );
  return { checkout, packaged, cache: join(packaged, cacheName()) };
}

describe('help', () => {
  it.each(commands)(
    'ferry %s -h and --help list every option, described, within 80 columns',
    async (name, command) => {
      for (const flag of ['--help', '-h']) {
        const result = await ferry([...name.split(' '), flag]);
        expect(result.code).toBe(0);
        expect(result.stderr).toBe('');
        expect(result.stdout).toMatch(new RegExp(`^Usage: ferry ${name} `));
        fits(result.stdout);
        for (const [option, spec] of Object.entries(command.options)) {
          expect(spec.help, `--${option} has no help`).toBeTruthy();
          expect(result.stdout).toContain(optionLabel(option, spec));
        }
      }
    },
  );

  it('help wins over a wrong flag beside it', async () => {
    const result = await ferry(['build', '--bogus', '-h']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: ferry build /);
  });

  it('ferry --help lists every command within 80 columns', async () => {
    const result = await ferry(['--help']);
    expect(result.code).toBe(0);
    fits(result.stdout);
    for (const [name] of commands) expect(result.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
  });

  it.each(groups)('ferry %s alone lists its subcommands', async (group) => {
    const alone = await ferry([group]);
    expect(alone.code).toBe(2);
    fits(alone.stdout);
    for (const [name] of commands.filter(([n]) => n.startsWith(`${group} `)))
      expect(alone.stdout).toContain(`  ${name} `);
    expect((await ferry([group, '--help'])).code).toBe(0);
    const wrong = await ferry([group, 'no-such-thing']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('E_USAGE');
  });

  it("a command's help names its subcommands", async () => {
    for (const [word] of commands.filter(([name]) => !name.includes(' '))) {
      const subcommands = commands.filter(([name]) => name.startsWith(`${word} `));
      if (subcommands.length === 0) continue;
      const help = (await ferry([word, '--help'])).stdout;
      for (const [name] of subcommands) expect(help).toContain(`ferry ${name}`);
    }
  });

  it('a wrong flag is named in Ferry words, without the parser leaking', async () => {
    const unknown = await ferry(['build', 'spec.yaml', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown option --bogus');
    expect(unknown.stderr).not.toMatch(/positional|'--'/);
    const missing = await ferry(['build', 'spec.yaml', '--out']);
    expect(missing.stderr).toContain('--out needs a value');
    const flagged = await ferry(['install', 'b.tar', '--yes=1']);
    expect(flagged.stderr).toContain('--yes takes no value');
  });

  it('a checkout not built yet: bin/ferry names the missing bundle with a code and a hint', async () => {
    const checkout = await tempDir('ferry-unbuilt-');
    await mkdir(join(checkout, 'bin'));
    await copyFile(join(ROOT, 'bin', 'ferry'), join(checkout, 'bin', 'ferry'));
    const result = await run(process.execPath, [join(checkout, 'bin', 'ferry'), '--version'], {
      env: { PATH: process.env.PATH ?? '' },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `ferry: E_NOT_FOUND: ${join(checkout, 'dist', 'package', 'ferry-script.js')} does not exist`,
    );
    expect(result.stderr).toContain('hint: run `npm run build`');
  });

  it("bin/ferry makes V8's code cache of its script at its first run and starts from it after; a cache V8 refuses is made again", async () => {
    const { checkout, packaged, cache } = await scriptCheckout();
    const version = () =>
      run(process.execPath, [join(checkout, 'bin', 'ferry'), '--version'], {
        env: { PATH: process.env.PATH ?? '' },
      });

    expect((await version()).stdout).toBe(`ferry ${VERSION}\n`);
    const made = await stat(cache);
    expect((await version()).stdout).toBe(`ferry ${VERSION}\n`);
    // Taken, not made again: a refused cache would be replaced by a rename.
    expect((await stat(cache)).ino).toBe(made.ino);

    // Another script of the same length (a build that made 0.1.0 0.1.1): V8 would take the
    // cache and run the old code.
    const script = join(packaged, 'ferry-script.js');
    const text = await readFile(script, 'utf8');
    expect(text).toContain(`"${VERSION}"`);
    const other = VERSION.replace(/\d$/, (digit) => String((Number(digit) + 1) % 10));
    await writeFile(script, text.replace(`"${VERSION}"`, `"${other}"`));
    expect((await version()).stdout).toBe(`ferry ${other}\n`);
    expect((await stat(cache)).ino).not.toBe(made.ino);
    expect((await version()).stdout).toBe(`ferry ${other}\n`);

    await writeFile(cache, Buffer.alloc(made.size, 7));
    expect((await version()).stdout).toBe(`ferry ${other}\n`);
    const remade = await readFile(cache);
    expect(remade.equals(Buffer.alloc(made.size, 7))).toBe(false);
    expect(await readdir(packaged)).toEqual(['ferry-script.js', cacheName()].sort());
  });

  it("bin/ferry's code cache holds the code the commands it was made with compiled: npm run build's holds more than a start's, and FERRY_CODE_CACHE_GROW=1 adds a command's", async () => {
    const { checkout, packaged, cache } = await scriptCheckout();
    const ferryHere = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      run(process.execPath, [join(checkout, 'bin', 'ferry'), ...args], {
        env: { PATH: process.env.PATH ?? '', ...env },
      });

    expect((await ferryHere(['--version'])).code).toBe(0);
    const started = await stat(cache);
    // The build's cache, of the same script, after the commands package.mjs runs.
    expect((await stat(join(ROOT, 'dist', 'package', cacheName()))).size).toBeGreaterThan(
      started.size * 2,
    );

    // A command run without the variable leaves a cache it could take as it is.
    expect((await ferryHere(['keygen', '--out', join(checkout, 'keys'), '--name', 'k'])).code).toBe(
      0,
    );
    expect((await stat(cache)).ino).toBe(started.ino);
    expect((await stat(cache)).size).toBe(started.size);

    const grown = await ferryHere(['keygen', '--out', join(checkout, 'keys2'), '--name', 'k'], {
      FERRY_CODE_CACHE_GROW: '1',
    });
    expect(grown.code).toBe(0);
    const afterKeygen = await stat(cache);
    expect(afterKeygen.size).toBeGreaterThan(started.size);
    // What an earlier run added stays: --version compiles nothing keygen did not. (Sizes
    // vary by tens of bytes from run to run.)
    expect((await ferryHere(['--version'], { FERRY_CODE_CACHE_GROW: '1' })).code).toBe(0);
    const kept = await stat(cache);
    expect(kept.size).toBeGreaterThan(started.size + (afterKeygen.size - started.size) / 2);

    // A run with other V8 flags, which V8 would refuse the cache to, keeps one of its own
    // (as a run on another Node does: the name is of the Node's version and the flags).
    const flagged = await ferryHere(['--version'], {
      NODE_OPTIONS: '--max-old-space-size=4096',
    });
    expect(flagged.code).toBe(0);
    expect((await stat(cache)).ino).toBe(kept.ino);
    expect(await readdir(packaged)).toEqual(
      ['ferry-script.js', cacheName(), cacheName('--max-old-space-size=4096')].sort(),
    );
  });

  it('--version, and --version --json, name the package version', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(VERSION).toBe(pkg.version);
    expect((await ferry(['--version'])).stdout).toBe(`ferry ${VERSION}\n`);
    expect(json(await ferry(['--version', '--json']))).toEqual({
      schemaVersion: 1,
      name: 'ferry',
      version: VERSION,
    });
  });
});

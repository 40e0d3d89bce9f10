// The entry of dist/package/ferry-installer, the Node single executable
// (`npm run package` bundles it with Ferry's CLI to CommonJS, with V8's code
// cache of it beside: a start parses nothing, and without the cache V8 still
// compiles CommonJS lazily, where an ES module is compiled whole). It checks what
// must be checked before Ferry runs, then runs the CLI. The console's screen
// (ink, whose layout engine needs top-level await, so ESM) is the one part
// kept apart: `ferry console` writes it to a private folder, imports it and
// removes the folder. Only Node's own modules exist here: `require` in a SEA
// loads nothing else.
import { createHash } from 'node:crypto';
import {
  createReadStream,
  lstatSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { getRawAsset } from 'node:sea';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { runCli } from '../cli/main.js';
import { importModule } from './import-module.js';
import { report, versioned } from '../cli/report.js';
import type { runConsole as RunConsole } from '../installer/console/run.js';
import { FerryError, type ERROR_CODES } from '../manifest-schema/errors.js';
import { FERRY_VERSION } from '../manifest-schema/ferry-version.js';

/** The SEA asset holding the console's ESM bundle (scripts/package.mjs names it too). */
const ASSET = 'console.mjs';

/**
 * Variables that load code into this process. Node and the loader act on
 * them before this script runs, so refusing cannot undo what they did; it
 * stops the installer from checking signatures and changing the appliance as
 * if its code were only its own. Checked against Node 20: NODE_REPL_EXTERNAL_MODULE
 * is ignored by a SEA, and NODE_PATH finds nothing because the bundle
 * requires only Node's built-in modules (test/e2e/package.test.ts holds that).
 * SIGUSR1, the other way into a running Node, is caught by refuseDebugger.
 */
const REFUSED_ENVIRONMENT: Record<string, string> = {
  NODE_OPTIONS: 'Node reads options from it, and --require, --import or --inspect run foreign code',
  OPENSSL_CONF: 'OpenSSL loads the provider and engine libraries its configuration names',
  LD_PRELOAD: 'the dynamic loader loads the libraries it names into every program',
  LD_AUDIT: 'the dynamic loader loads the auditing libraries it names into every program',
  LD_LIBRARY_PATH:
    'the dynamic loader looks there first for the libraries the executable needs (libstdc++, libdl, …), so a library put there runs',
};

function fail(code: keyof typeof ERROR_CODES, message: string, hint: string): never {
  throw new FerryError(code, message, { hint });
}

function checkEnvironment(env: NodeJS.ProcessEnv): void {
  const set = Object.keys(REFUSED_ENVIRONMENT).filter((name) => (env[name] ?? '') !== '');
  if (set.length === 0) return;
  fail(
    'E_UNSAFE_ENVIRONMENT',
    `${set.map((name) => `${name} is set: ${REFUSED_ENVIRONMENT[name]}`).join('; ')}`,
    `ferry-installer checks signatures and runs no code but its own: run it again without them (env -u ${set.join(' -u ')} ./ferry-installer …)`,
  );
}

/** Folders to unpack into, in order: FERRY_TMP alone when set (an explicit choice is honoured or refused). */
function tempCandidates(env: NodeJS.ProcessEnv): string[] {
  if (env.FERRY_TMP) return [resolve(env.FERRY_TMP)];
  const folders = [env.TMPDIR ? resolve(env.TMPDIR) : '/tmp', '/tmp', '/var/tmp', '/dev/shm'];
  return [...new Set(folders)];
}

/**
 * The folder's real path, when neither it nor any folder above it lets
 * another user replace what is inside: each belongs to root or to us, and
 * others may write to none of them unless it has the sticky bit (/tmp). A
 * folder of ours inside someone else's home could be renamed away by them,
 * and one of theirs put in its place.
 */
function safeFolder(candidate: string): string {
  const real = realpathSync(candidate);
  if (!lstatSync(real).isDirectory()) throw new Error('not a folder');
  for (let folder = real; ; folder = dirname(folder)) {
    const stats = lstatSync(folder);
    const which = folder === real ? 'it' : `${folder} above it`;
    if ((stats.mode & 0o022) !== 0 && (stats.mode & 0o1000) === 0)
      throw new Error(`others may write to ${which} and it has no sticky bit`);
    if (stats.uid !== 0 && stats.uid !== process.getuid?.())
      throw new Error(`${which} belongs to another user (uid ${stats.uid})`);
    if (folder === dirname(folder)) return real;
  }
}

/**
 * A new 0700 folder in the first usable candidate, holding `name` with these
 * bytes. A parent that another user owns, or that others may write to without
 * the sticky bit, is skipped: they could swap our folder for theirs between
 * writing the bundle and importing it. So is one where the file cannot be
 * written (a full /tmp): the folder made there is removed, and the next
 * candidate tried.
 */
function privateFile(
  env: NodeJS.ProcessEnv,
  name: string,
  bytes: Uint8Array,
): { folder: string; file: string } {
  const tried: string[] = [];
  for (const candidate of tempCandidates(env)) {
    let folder: string | null = null;
    try {
      const real = safeFolder(candidate);
      folder = mkdtempSync(join(real, 'ferry-installer-'));
      const file = join(folder, name);
      writeFileSync(file, bytes, { mode: 0o600, flag: 'wx' });
      return { folder, file };
    } catch (error) {
      if (folder !== null) rmSync(folder, { recursive: true, force: true });
      tried.push(`${candidate}: ${(error as Error).message}`);
    }
  }
  return fail(
    'E_IO',
    `no folder to unpack the installer's console into${env.FERRY_TMP ? ' (FERRY_TMP)' : ''}: ${tried.join('; ')}`,
    `set FERRY_TMP to a folder on the appliance that root can write to, with ${Math.ceil(bytes.length / 2 ** 20)} MiB free (removed once loaded)`,
  );
}

async function versionJson(): Promise<string> {
  const executable = resolve(process.execPath);
  const hash = createHash('sha256');
  await pipeline(createReadStream(executable), hash);
  return JSON.stringify(
    versioned({
      name: 'ferry',
      version: FERRY_VERSION,
      executable,
      sha256: hash.digest('hex'),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    }),
    null,
    2,
  );
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * `ferry media`'s installer for volume 1, in the executable: scripts/package.mjs
 * points builder/media.ts's import of builder/installer-beside.js here.
 */
export function defaultInstaller(): Promise<string | null> {
  return Promise.resolve(process.execPath);
}

/**
 * `ferry console` in the executable: scripts/package.mjs points the console
 * command's import of installer/console/run.js here. Imports the console's
 * bundle from a private folder and removes the folder as soon as it is
 * loaded, before the console starts: a killed installer leaves nothing
 * behind, and no signal handler of ours competes with the console's own.
 */
export async function runConsole(
  ...args: Parameters<typeof RunConsole>
): ReturnType<typeof RunConsole> {
  // Caught from before the folder is made: a signal while it is written waits, then removes it.
  let folder: string | null = null;
  const remove = (): void => {
    if (folder !== null) rmSync(folder, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    remove();
    for (const name of SIGNALS) process.removeListener(name, onSignal);
    process.kill(process.pid, signal);
  };
  for (const name of SIGNALS) process.on(name, onSignal);
  process.on('exit', remove);
  let loaded: { runConsole: typeof RunConsole };
  try {
    const unpacked = privateFile(
      process.env,
      ASSET,
      new Uint8Array(getRawAsset(ASSET) as ArrayBuffer),
    );
    folder = unpacked.folder;
    loaded = (await importModule(pathToFileURL(unpacked.file).href)) as typeof loaded;
  } finally {
    remove();
    for (const name of SIGNALS) process.removeListener(name, onSignal);
    process.removeListener('exit', remove);
  }
  return loaded.runConsole(...args);
}

/**
 * Node opens its inspector on 127.0.0.1:9229 when the process gets SIGUSR1,
 * and whoever connects to it runs code in this process, as root, with no
 * password: any local user, once anything sends the signal (a careless
 * `pkill -USR1`, a log rotation script). A listener of our own is what stops
 * Node from doing so (Node 20 has no --disable-sigusr1); the installer opens no
 * debugger. Signal handles do not keep the process alive.
 */
export function refuseDebugger(): void {
  process.on('SIGUSR1', () => {
    process.stderr.write('ferry: SIGUSR1 ignored: ferry-installer opens no debugger\n');
  });
}

export async function boot(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const wantsJson = argv.includes('--json');
  refuseDebugger();
  try {
    checkEnvironment(env);
    // Who it is, and the sha256 of its own file, before any of Ferry runs.
    if (argv[0] === '--version') {
      process.stdout.write(wantsJson ? `${await versionJson()}\n` : `ferry ${FERRY_VERSION}\n`);
      return 0;
    }
    return await runCli(argv);
  } catch (error) {
    return report(error, wantsJson);
  }
}

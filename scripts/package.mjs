// `npm run package`: the installer for appliances, in two forms that hold the
// same bundle of Ferry, the console and every dependency.
//
//   dist/package/ferry.mjs           needs Node.js 20.19 or newer: `node ferry.mjs …`;
//                                    bin/ferry runs it too (`npm run build`
//                                    writes it alone: `package.mjs --script-only`)
//   dist/package/ferry-installer     a Node single executable application: needs
//                                    only glibc and libstdc++ (see the README)
//
// The executable is this machine's Node binary with the bundle injected, so it
// runs on this architecture. FERRY_NODE_BINARY=/path/to/node builds it from
// another Node binary of the same version (the official linux-arm64 one, say)
// into dist/package/ferry-installer-linux-<arch>. Nothing here uses the network.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// FERRY_PACKAGE_VERSION and FERRY_PACKAGE_OUT make a build that calls itself
// another version, elsewhere: the hand-over test needs an older installer.
const out = process.env.FERRY_PACKAGE_OUT ?? join(root, 'dist', 'package');
const version =
  process.env.FERRY_PACKAGE_VERSION ??
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
// Both sides of this name: scripts/sea-boot.ts reads the asset it names.
const ASSET = 'console.mjs';
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const ELF_MACHINES = { 0x3e: 'x64', 0xb7: 'arm64' };
mkdirSync(out, { recursive: true });

/** Through a temp file and a rename: a concurrent run or a reader never sees half a file. */
function writeAtomic(file, contents, mode = 0o644) {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, contents, { mode });
  renameSync(temp, file);
}

/** esbuild of one entry (TypeScript source text) into memory. */
async function bundle(entry, { define, plugins = [], ...options }) {
  const result = await build({
    stdin: { contents: entry, resolveDir: root, sourcefile: 'ferry-entry.ts', loader: 'ts' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    write: false,
    // React's production build: what an appliance should run, and a third
    // less code to compile at every start.
    define: {
      'process.env.NODE_ENV': '"production"',
      // manifest-schema/ferry-version.ts: no package.json travels with the bundle.
      FERRY_PACKAGE_VERSION: JSON.stringify(version),
      ...define,
    },
    // ink imports its React devtools (and through them a WebSocket client that
    // looks for optional modules on disk) only when DEV=true. An appliance
    // never debugs ink, and a bundle that requires nothing outside Node cannot
    // be handed a module from a writable folder on the way.
    plugins: [
      {
        name: 'stub-ink-devtools',
        setup(builder) {
          builder.onResolve({ filter: /^\.\/devtools\.js$/ }, (args) =>
            args.importer.includes(`${join('node_modules', 'ink')}`)
              ? { path: 'ink-devtools', namespace: 'stub' }
              : undefined,
          );
          builder.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
            contents: 'export {};',
            loader: 'js',
          }));
        },
      },
      ...plugins,
    ],
    legalComments: 'none',
    logLevel: 'warning',
    ...options,
  });
  // A warning is code that behaves otherwise in the bundle than in dist/
  // (import.meta in CommonJS is empty): refused, not shipped.
  if (result.warnings.length > 0)
    throw new Error(`esbuild warned ${result.warnings.length} time(s): see above`);
  return result.outputFiles[0].contents;
}

const esm = {
  format: 'esm',
  // CommonJS dependencies (ajv, yauzl) call require() for Node's own modules.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __ferryCreateRequire } from 'node:module';\nconst require = __ferryCreateRequire(import.meta.url);",
  },
};

// The two CommonJS forms (bin/ferry's and the executable's) are compiled from
// V8's code cache, and Node 20 gives such a script no loader for import():
// each import() of one of Node's modules (the terminal's question, the DVD
// swap's prompt) failed with ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING. As
// require(), it needs none. (The console is imported by scripts/import-module.ts.)
const cjs = { format: 'cjs', supported: { 'dynamic-import': false } };

const script = join(out, 'ferry.mjs');
writeAtomic(
  script,
  await bundle(
    "import { runCli } from './cli/main.ts';\nprocess.exitCode = await runCli(process.argv.slice(2));\n",
    esm,
  ),
  0o755,
);
console.log(`wrote ${script} (${(statSync(script).size / 1024).toFixed(0)} KiB)`);

// ------------------------------------------------------ bin/ferry's form
// The same Ferry for bin/ferry, in the form the executable runs: CommonJS,
// which V8 compiles lazily, from V8's code cache of it (bin/ferry writes it
// as a run ends; this build runs the commands used most, see growCodeCache),
// with the console an ES module beside it. One ES module is compiled whole at every start: `ferry
// --version` took 0.086 s, and 0.041 s this way (`node -e 0`: 0.02 s; medians
// of 15, 2026-12-05). ferry.mjs stays the one file to ship.
const consoleModule = await bundle(
  "export { runConsole } from './installer/console/run.tsx';\n",
  esm,
);
// Only the checkout's own: bin/ferry runs nothing else (FERRY_PACKAGE_OUT builds
// an older installer for the hand-over test).
if (out === join(root, 'dist', 'package')) {
  const scriptForm = await bundle(
    "import { runCli } from './cli/main.ts';\nrunCli(process.argv.slice(2)).then((code) => { process.exitCode = code; });\n",
    {
      ...cjs,
      // Every import.meta.url of the bundle is the file's own URL, as in ferry.mjs.
      define: { 'import.meta.url': '__ferryScriptUrl' },
      plugins: [
        {
          name: 'console-beside',
          setup(builder) {
            builder.onResolve({ filter: /\/console\/run\.js$/ }, (args) =>
              args.importer === join(root, 'cli', 'commands', 'console.ts')
                ? { path: join(root, 'scripts', 'console-beside.ts') }
                : undefined,
            );
          },
        },
      ],
    },
  );
  writeAtomic(join(out, 'ferry-console.mjs'), consoleModule);
  // A function of the CommonJS module's arguments (bin/ferry calls it): the text
  // compiled is the file's text, so the code cache matches it byte for byte.
  writeAtomic(
    join(out, 'ferry-script.js'),
    [
      '(function (exports, require, module, __filename, __dirname) {',
      "'use strict';",
      "const __ferryScriptUrl = require('node:url').pathToFileURL(__filename).href;",
      Buffer.from(scriptForm).toString('utf8'),
      '})',
      '',
    ].join('\n'),
  );
  // Every Node's cache of the script before (bin/ferry names each for its Node and flags).
  const caches = () => readdirSync(out).filter((name) => /^ferry-script\.js\..*cache$/.test(name));
  for (const name of caches()) rmSync(join(out, name), { force: true });
  run(process.execPath, [join(root, 'bin', 'ferry'), '--version'], root);
  if (caches().length === 0)
    fail('bin/ferry --version wrote no code cache (dist/package/ferry-script.js.*.cache)');
  const missed = growCodeCache();
  console.log(
    `wrote ${join(out, 'ferry-script.js')} and its code cache, for bin/ferry${missed.length ? ` (without what ${missed.join(', ')} compile: see above)` : ''}`,
  );
}

/**
 * Runs the commands an operator and a CI job run most, through bin/ferry on
 * a copy of the sample appliance's first release in a folder of its own, each
 * adding the code it compiled to bin/ferry's code cache (see bin/ferry). A
 * command that fails costs only its share of the cache, not the build (which
 * `npm ci` runs): it is named, and the commands that fail are returned.
 */
function growCodeCache() {
  const work = mkdtempSync(join(tmpdir(), 'ferry-code-cache-'));
  const missed = [];
  try {
    const product = join(root, 'fixtures', 'acme-appliance');
    if (!existsSync(product)) {
      console.error(`package: bin/ferry's code cache holds only its start: ${product} is missing`);
      return ['the commands'];
    }
    cpSync(product, join(work, 'product'), { recursive: true, verbatimSymlinks: true });
    const at = (...parts) => join(work, ...parts);
    const bundle = at('bundles', 'acme-appliance-1.0.0-install.tar');
    const trust = ['--trust', at('trust.json')];
    const commands = [
      ['keygen', '--out', at('keys'), '--name', 'cache'],
      ['trust', 'init', '--key', at('keys', 'cache.pub'), '--out', at('trust.json')],
      [
        'build',
        at('product', 'release-1.0.0.yaml'),
        '--out',
        at('bundles'),
        '--key',
        at('keys', 'cache.key'),
        '--first-release',
      ],
      ['verify', bundle, ...trust],
      [
        'init',
        '--root',
        at('appliance'),
        '--product',
        'acme-appliance',
        '--platform',
        'acme-os@7.2.1',
        ...trust,
      ],
      ['install', bundle, '--root', at('appliance'), '--yes'],
      ['status', '--root', at('appliance'), '--verify'],
      ['publish', bundle, '--repo', at('repo'), ...trust, '--key', at('keys', 'cache.key')],
      ['pull', '--repo', at('repo'), '--version', '1.0.0', '--out', at('pulled')],
      ['--help'],
    ];
    for (const args of commands) {
      const result = spawnSync(process.execPath, [join(root, 'bin', 'ferry'), ...args], {
        cwd: work,
        encoding: 'utf8',
        // A command that hangs would hang `npm ci`: it is stopped, and goes without.
        timeout: 120_000,
        env: {
          ...process.env,
          FERRY_CODE_CACHE_GROW: '1',
          FERRY_STATE_DIR: at('state'),
          HOME: work,
        },
      });
      if (result.status !== 0) {
        console.error(
          `package: bin/ferry's code cache goes without what \`ferry ${args[0]}\` compiles: it ${result.error ? `did not end (${result.error.message})` : `failed (${result.status})`}:\n${result.stderr}`,
        );
        missed.push(`ferry ${args[0]}`);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return missed;
}
if (process.argv.includes('--script-only')) process.exit(0);

// ------------------------------------------------------ the executable
// Ferry and its CLI as CommonJS, the executable's entry: V8 compiles a
// CommonJS script lazily, where an ES module of the same size is compiled
// whole at every start (twice the time of bin/ferry for --help). The
// console's screen cannot be CommonJS (ink's layout engine awaits at its top
// level), so it is an ES module asset of its own, loaded only by `console`:
// the console command's import of it resolves to the boot script's loader.
// So does the media command's search for an installer to put on volume 1:
// in the executable, that is the executable itself.
const bootInstead = [
  [join(root, 'cli', 'commands', 'console.ts'), /\/console\/run\.js$/],
  [join(root, 'builder', 'media.ts'), /\/installer-beside\.js$/],
];
const boot = await bundle(
  "import { boot } from './scripts/sea-boot.ts';\nboot(process.argv.slice(2), process.env).then((code) => { process.exitCode = code; });\n",
  {
    ...cjs,
    plugins: [
      {
        name: 'boot-instead',
        setup(builder) {
          for (const [importer, filter] of bootInstead)
            builder.onResolve({ filter }, (args) =>
              args.importer === importer
                ? { path: join(root, 'scripts', 'sea-boot.ts') }
                : undefined,
            );
        },
      },
    ],
  },
);
const asset = consoleModule;

const given = process.env.FERRY_NODE_BINARY;
const node = realpathSync(given ?? process.execPath);
const arch = elfArch(node);
const executable = join(out, given ? `ferry-installer-linux-${arch}` : 'ferry-installer');
if (given) requireVersion(node, process.version);

// Relative paths, resolved in a folder of this run's own: the blob records
// the entry's name, which must not vary from build to build, and two runs at
// once (two test files) must not share a blob.
const config = {
  main: 'boot.cjs',
  output: 'blob',
  disableExperimentalSEAWarning: true,
  // V8's code cache of the entry: a start parses nothing. (import() from
  // the entry itself would then fail in Node 20; scripts/sea-boot.ts imports
  // the console's module from a script of its own.) The cache is made by the
  // Node running this script, for its own architecture: none for another.
  useCodeCache: !given,
  useSnapshot: false,
  assets: { [ASSET]: ASSET },
};
const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
const nodeStats = statSync(node);
const key = createHash('sha256')
  .update(
    JSON.stringify({
      config,
      node: [node, nodeStats.size, nodeStats.mtimeMs, process.version],
      postject: readFileSync(join(dirname(postject), '..', 'package.json'), 'utf8'),
    }),
  )
  .update(boot)
  .update(asset)
  .digest('hex');
const keyFile = `${executable}.inputs`;
// Two runs at once (two test files on a clean clone) would each build and
// rename theirs over the other's while a test runs it, and two builds differ
// (V8's code cache): the second waits for the first and finds it up to date.
const unlock = lock(`${executable}.lock`);
try {
  if (existsSync(executable) && existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key) {
    console.log(`${executable} is up to date`);
  } else {
    const started = Date.now();
    const work = mkdtempSync(join(tmpdir(), 'ferry-package-'));
    writeFileSync(join(work, config.main), boot);
    writeFileSync(join(work, config.assets[ASSET]), asset);
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config));
    // The blob holds the boot script and the asset, and nothing of this
    // machine's architecture; its format follows the Node version, which is why
    // FERRY_NODE_BINARY must be the version running this script.
    run(process.execPath, ['--experimental-sea-config', 'sea-config.json'], work);
    const temp = `${executable}.${process.pid}.tmp`;
    copyFileSync(node, temp);
    chmodSync(temp, 0o755);
    run(
      process.execPath,
      [postject, temp, 'NODE_SEA_BLOB', join(work, config.output), '--sentinel-fuse', FUSE],
      work,
    );
    renameSync(temp, executable);
    rmSync(work, { recursive: true });
    const hash = createHash('sha256');
    await pipeline(createReadStream(executable), hash);
    writeAtomic(`${executable}.sha256`, `${hash.digest('hex')}  ${basename(executable)}\n`);
    writeAtomic(keyFile, key);
    console.log(
      `wrote ${executable} (linux-${arch}, Node ${process.version}, ${(statSync(executable).size / 1024 ** 2).toFixed(0)} MiB, ${((Date.now() - started) / 1000).toFixed(0)} s) and its .sha256`,
    );
  }
} finally {
  unlock();
}

/**
 * A folder made with mkdir, holding its maker's pid: waits while a live
 * process holds it, takes it over from one that is gone. Returns its release.
 */
function lock(folder) {
  const pidFile = join(folder, 'pid');
  for (let waited = 0; ; waited++) {
    try {
      mkdirSync(folder);
      writeFileSync(pidFile, String(process.pid));
      return () => rmSync(folder, { recursive: true, force: true });
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    let holder, age;
    try {
      holder = Number(existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : 0);
      age = Date.now() - statSync(folder).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // No pid yet: its maker is between mkdir and write, or died there. A build
    // takes a minute: a holder of ten is another process that took its pid.
    const stale = holder > 0 ? !alive(holder) || age > 600_000 : age > 60_000;
    if (stale) {
      rmSync(folder, { recursive: true, force: true });
      continue;
    }
    if (waited % 50 === 0) console.log(`waiting for another build of ${executable} (${folder})`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** The architecture an ELF executable is for, from its header. */
function elfArch(file) {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  readSync(fd, header, 0, 20, 0);
  closeSync(fd);
  const machine = ELF_MACHINES[header.readUInt16LE(18)];
  if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1 || !machine)
    fail(`${file} is not a 64-bit little-endian Linux executable of a known architecture`);
  return machine;
}

/** A Node binary of another architecture cannot be asked its version: find it in the binary. */
function requireVersion(file, wanted) {
  const marker = `/release/${wanted}/node-${wanted}`;
  const text = readFileSync(file).toString('latin1');
  if (!text.includes(marker))
    fail(
      `${file} is not Node ${wanted} (the version running this script): the single executable's blob follows Node's version. Use the official node-${wanted}-linux-<arch> binary, or run this script with that version.`,
    );
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0)
    fail(
      `${basename(command)} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}`,
    );
}

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

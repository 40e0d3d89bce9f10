import { parseArgs } from 'node:util';
import { FERRY_VERSION } from '../manifest-schema/ferry-version.js';
import { printable } from '../manifest-schema/printable.js';
import { usageError, type Command, type Parsed } from './args.js';
import { report } from './report.js';

type Loader = () => Promise<{ command: Command }>;

/**
 * The one CLI: every command by the words that call it, in the order help
 * lists them, and the one place that turns errors into exit codes. A
 * command's module loads only when it runs (help loads them all), and loads
 * its library only then, so `ferry inspect` reads neither the builder nor the
 * other commands.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: Loader]> = [
  ['keygen', () => import('./commands/keygen.js')],
  ['trust init', () => import('./commands/trust-init.js')],
  ['trust sign-next', () => import('./commands/trust-sign-next.js')],
  ['trust sign', () => import('./commands/trust-sign.js')],
  ['trust show', () => import('./commands/trust-show.js')],
  ['trust verify-chain', () => import('./commands/trust-verify-chain.js')],
  ['build', () => import('./commands/build.js')],
  ['inspect', () => import('./commands/inspect.js')],
  ['verify', () => import('./commands/verify.js')],
  ['init', () => import('./commands/init.js')],
  ['status', () => import('./commands/status.js')],
  ['plan', () => import('./commands/plan.js')],
  ['install', () => import('./commands/install.js')],
  ['rollback', () => import('./commands/rollback.js')],
  ['console', () => import('./commands/console.js')],
  ['media', () => import('./commands/media.js')],
  ['media verify', () => import('./commands/media-verify.js')],
  ['recover', () => import('./commands/recover.js')],
  ['publish', () => import('./commands/publish.js')],
  ['approve', () => import('./commands/approve.js')],
  ['promote', () => import('./commands/promote.js')],
  ['pull', () => import('./commands/pull.js')],
  ['channels', () => import('./commands/channels.js')],
  ['history', () => import('./commands/history.js')],
  ['policy', () => import('./commands/policy.js')],
  ['gc', () => import('./commands/gc.js')],
];

export async function loadCommands(): Promise<Array<[name: string, command: Command]>> {
  return Promise.all(COMMANDS.map(async ([name, load]) => [name, (await load()).command]));
}

async function helpText(): Promise<string> {
  const commands = (await loadCommands()).map(([, command]) => command);
  const width = Math.max(...commands.map((c) => c.usage.length));
  const lines = commands.map((command) => `  ${command.usage.padEnd(width)}  ${command.summary}`);
  const exits =
    '0 ok · 1 failed, nothing changed · 2 usage or input · 3 trust · 4 plan blocked · 5 busy';
  return `ferry: signed, cumulative updates across an air gap\n\nUsage:\n${lines.join('\n')}\n\nEvery command takes --json for a machine-readable result on stdout.\nExit codes: ${exits}\n`;
}

/** The command named by the first two words or the first one, and the arguments after its name. */
async function findCommand(argv: string[]): Promise<{ command: Command; rest: string[] } | null> {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const found = COMMANDS.find(([candidate]) => candidate === name);
    if (found) return { command: (await found[1]()).command, rest: argv.slice(words) };
  }
  return null;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(await helpText());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    process.stdout.write(`ferry ${FERRY_VERSION}\n`);
    return 0;
  }
  const wantsJson = argv.includes('--json');
  // A reader that went away (`ferry install … | head -3`) must never stop a command half way.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', ignoreClosed);
  try {
    const found = await findCommand(argv);
    if (!found) throw usageError(`unknown command "${argv[0]}"`);
    if (found.rest.includes('--help')) {
      process.stdout.write(`${found.command.usage}\n  ${found.command.summary}\n`);
      return 0;
    }
    let parsed: Parsed;
    try {
      parsed = parseArgs({
        args: found.rest,
        options: found.command.options,
        allowPositionals: true,
        strict: true,
      }) as Parsed;
    } catch (error) {
      throw usageError((error as Error).message, `usage: ${found.command.usage}`);
    }
    const handedOver = await found.command.handOver?.(parsed, argv);
    if (handedOver !== undefined && handedOver !== null) return handedOver;
    const result = await found.command.run(parsed);
    if (wantsJson)
      process.stdout.write(
        `${printable(JSON.stringify(result.json, null, result.jsonLines ? undefined : 2))}\n`,
      );
    else if (result.human !== '') process.stdout.write(`${printable(result.human)}\n`);
    return result.exitCode ?? 0;
  } catch (error) {
    return report(error, wantsJson);
  }
}

function ignoreClosed(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
}

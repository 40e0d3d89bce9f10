import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { FERRY_VERSION } from '../manifest-schema/ferry-version.js';
import { printable } from '../manifest-schema/printable.js';
import { forCommand, usageError, type Command, type Options, type Parsed } from './args.js';
import { commandHelp, commandList, EXITS, helpOption, wrap } from './help.js';
import { report, versioned } from './report.js';

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
  ['lint', () => import('./commands/lint.js')],
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
  ['log', () => import('./commands/log.js')],
  ['completion', () => import('./commands/completion.js')],
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
  return [
    'ferry: signed, cumulative updates across an air gap',
    '',
    'Usage: ferry COMMAND [options]     ferry COMMAND --help for its options',
    '',
    'Commands:',
    commandList(await loadCommands()),
    '',
    wrap('Every command takes --json for a machine-readable result on stdout.', ''),
    wrap(`Exit codes: ${EXITS}`, '', '  '),
    '',
  ].join('\n');
}

/** The command named by the first two words or the first one, and the arguments after its name. */
async function findCommand(
  argv: string[],
): Promise<{ name: string; command: Command; rest: string[] } | null> {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const found = COMMANDS.find(([candidate]) => candidate === name);
    if (found) return { name, command: (await found[1]()).command, rest: argv.slice(words) };
  }
  return null;
}

/** The commands under a first word that is not a command itself (`trust`), for `ferry trust` alone. */
async function findGroup(word: string | undefined): Promise<Array<[string, Command]>> {
  const members = COMMANDS.filter(([name]) => name.startsWith(`${word} `));
  return Promise.all(members.map(async ([name, load]) => [name, (await load()).command]));
}

const asksHelp = (args: readonly string[]): boolean =>
  args.some((arg) => arg === '--help' || arg === '-h');

/**
 * The process's entry (bin/ferry, the bundled script, the single executable):
 * `main`, with V8's incremental marking off. node:http hands every socket read
 * over in a fresh 64 KiB buffer; with Ferry's code loaded the heap is past the
 * size where V8 starts incremental marking, and it then ran a full mark-compact
 * every 16 MiB received: 60 per GiB pulled, 0.9 s of CPU, 30% of a 1 GiB pull
 * from a registry on loopback (medians, 2026-12-04). Without it a collection
 * still runs when the heap reaches its limit, all at once: a pause of a few
 * milliseconds for a heap of Ferry's size. Set here, before any command's code
 * loads, so that no marking can be under way when it changes (Node warns that
 * flags changed later may act unpredictably); tests calling `main` leave V8 as it is.
 */
export function runCli(argv: string[]): Promise<number> {
  setFlagsFromString('--no-incremental-marking');
  return main(argv);
}

export async function main(argv: string[]): Promise<number> {
  // A reader that went away (`ferry log | head`, `ferry install … | head -3`) is the
  // reader's choice, and a terminal closed under an install is SIGHUP's business:
  // neither may stop a command half way.
  for (const stream of [process.stdout, process.stderr])
    stream.off('error', ignoreClosed).on('error', ignoreClosed);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(await helpText());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === 'help') return main([...argv.slice(1), ...(argv.length > 1 ? ['--help'] : [])]);
  const wantsJson = argv.includes('--json');
  if (argv[0] === '--version') {
    process.stdout.write(
      wantsJson
        ? `${JSON.stringify(versioned({ name: 'ferry', version: FERRY_VERSION }), null, 2)}\n`
        : `ferry ${FERRY_VERSION}\n`,
    );
    return 0;
  }
  try {
    const found = await findCommand(argv);
    if (!found) {
      const group = await findGroup(argv[0]);
      if (group.length === 0) throw usageError(`unknown command "${argv[0]}"`);
      const [word, next] = argv;
      if (next !== undefined && !next.startsWith('-'))
        throw usageError(
          `unknown command "${word} ${next}"`,
          `ferry ${word} takes: ${group.map(([name]) => name.split(' ')[1]).join(', ')}`,
        );
      process.stdout.write(`Usage: ferry ${word} COMMAND [options]\n\n${commandList(group)}\n`);
      return asksHelp(argv) ? 0 : 2;
    }
    const { name, command, rest } = found;
    const parsed = parse(name, command, rest);
    if (parsed === 'help') {
      process.stdout.write(`${commandHelp(name, command)}\n`);
      return 0;
    }
    const handedOver = await command.handOver?.(parsed, argv);
    if (handedOver !== undefined && handedOver !== null) return handedOver;
    const result = await command.run(parsed).catch((error: unknown) => {
      throw forCommand(error, name);
    });
    if (wantsJson)
      process.stdout.write(
        `${printable(JSON.stringify(versioned(result.json), null, result.jsonLines ? undefined : 2))}\n`,
      );
    else if (result.human !== '') process.stdout.write(`${printable(result.human)}\n`);
    return result.exitCode ?? 0;
  } catch (error) {
    return report(error, wantsJson);
  }
}

/** The command's flags, or 'help' when -h/--help is among them (even beside a flag that is wrong). */
function parse(name: string, command: Command, args: string[]): Parsed | 'help' {
  const options: Options = { ...command.options, ...helpOption };
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args: withPastedKeys(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    if (asksHelp(args)) return 'help';
    throw usageError(parserMessage(error), `see \`ferry ${name} --help\``);
  }
  return parsed.values.help === true ? 'help' : parsed;
}

/**
 * `--key "$(cat release.key)"`: a PEM key after an option that takes a value is
 * that option's value, though it starts with -, so the option's own check
 * refuses it as a key given in place of where to find it (E_KEY_SOURCE), never echoed.
 */
function withPastedKeys(args: readonly string[], options: Options): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    const option = arg.startsWith('--') ? options[arg.slice(2)] : undefined;
    if (option?.type === 'string' && next?.startsWith('-----BEGIN')) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}

/** node:util's parser error in Ferry's words: it names the option, never suggests `--`. */
function parserMessage(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' <]+)/.exec(message)?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (message.includes('does not take an argument')) return `${option} takes no value`;
    // The value is never repeated: it may be a secret pasted in the wrong place.
    return message.includes('ambiguous')
      ? `${option} needs a value; one that starts with - is written ${option}=VALUE`
      : `${option} needs a value`;
  }
  return message.split('\n')[0] ?? message;
}

/** EPIPE: a reader that left; EIO: a terminal that hung up (its window closed, SSH dropped). */
function ignoreClosed(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE' && error.code !== 'EIO' && error.code !== 'ERR_STREAM_DESTROYED')
    throw error;
}

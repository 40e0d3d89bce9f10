import { FerryError } from '../manifest-schema/errors.js';

/**
 * What a command is, and the helpers that read its flags. A command parses
 * its flags here and calls one library function, loaded on demand so that
 * `ferry inspect` never loads the builder.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** What it does, for --help: every option has one (test/e2e/help.test.ts holds that). */
  help?: string;
  /** The name of its value in help and usage (FILE, DIR); the option's own name in capitals when left out. */
  arg?: string;
}

export type Options = Record<string, OptionSpec>;

export type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface Parsed {
  values: Values;
  positionals: string[];
}

export interface CommandResult {
  json: unknown;
  human: string;
  exitCode?: number;
  /** The command streamed JSON lines already: print the result as one more line. */
  jsonLines?: boolean;
}

/** One command; the words that call it (`build`, `trust init`) are its key in main.ts. */
export interface Command {
  usage: string;
  summary: string;
  options: Options;
  run(args: Parsed): Promise<CommandResult>;
  /**
   * Runs first: when the bundle needs a newer Ferry that it carries, the
   * whole command (`argv`, unchanged) is handed to that one; its exit status,
   * or null to run here.
   */
  handOver?(args: Parsed, argv: readonly string[]): Promise<number | null>;
}

/** The hand-over of `plan` and `install`, which name a bundle and an appliance. */
export async function handOverBundle(
  { values, positionals }: Parsed,
  argv: readonly string[],
): Promise<number | null> {
  const [bundle] = positionals;
  if (bundle === undefined) return null;
  const stateFile = optional(values, 'state');
  // --state plans elsewhere: the root's default applies only without it.
  const appliance = stateFile === undefined ? root(values) : optional(values, 'root');
  const { carriedInstaller, runCarried } = await import('../installer/handover.js');
  const { askOnTerminal } = await import('./volume-prompt.js');
  const { catchStopSignals } = await import('../installer/engine/events.js');
  // The check may ask for volume 1 and copy the carried installer: an interrupt there ends it
  // as one before any transaction does, not by the signal's default.
  const stopping = catchStopSignals((line) => process.stderr.write(`${line}\n`));
  // Started from a later volume, the check needs volume 1 (bundle.json) first: asked for
  // on a terminal, as install asks for every volume.
  const ask = askOnTerminal(stopping.signal);
  const options = {
    bundle,
    signal: stopping.signal,
    ...(ask ? { ask } : {}),
    ...(appliance !== undefined ? { root: appliance } : {}),
    ...(stateFile !== undefined ? { stateFile } : {}),
  };
  const interrupted = (cause?: unknown): FerryError =>
    new FerryError(
      'E_INTERRUPTED',
      `interrupted by ${String(stopping.signal.reason)} while checking whether ${bundle} needs a newer Ferry; nothing was changed`,
      {
        file: bundle,
        hint: 'run the command again when you are ready',
        ...(cause ? { cause } : {}),
      },
    );
  let carried: Awaited<ReturnType<typeof carriedInstaller>>;
  try {
    carried = await carriedInstaller(options);
  } catch (error) {
    if (!stopping.signal.aborted) throw error;
    throw interrupted(error);
  } finally {
    // The installer handed over to gets the signals from here on (runCarried forwards them).
    stopping.release();
  }
  // Most of the check (reading the appliance, opening the bundle) does not listen for the
  // signal: it ran to its end, and neither the command nor a hand-over may start now.
  if (stopping.signal.aborted) throw interrupted();
  return carried && runCarried(carried, bundle, argv);
}

export const jsonOption = {
  json: { type: 'boolean', help: 'print the result as JSON on stdout' },
} as const satisfies Options;

/** The appliance's root, as dpkg --root and rpm --root: FERRY_ROOT, else the running system. */
export const rootOption = {
  root: { type: 'string', arg: 'R', help: 'the appliance root (default: $FERRY_ROOT, else /)' },
} as const satisfies Options;

export function root(values: Values): string {
  return optional(values, 'root') ?? (process.env.FERRY_ROOT || '/');
}

/** Where the keys that sign come from: every command that signs takes the same sources. */
export const signingOptions = {
  key: {
    type: 'string',
    multiple: true,
    help: 'a private key to sign with: a file, env:VAR or - (stdin)',
  },
  signer: {
    type: 'string',
    multiple: true,
    arg: 'COMMAND',
    help: 'a program that signs: reads the bytes on stdin, prints the signature',
  },
  'signer-key': {
    type: 'string',
    multiple: true,
    arg: 'PUB',
    help: "each signer's public key (a file or env:VAR), in order; else asked of it",
  },
} as const satisfies Options;

export function signingInput(values: Values) {
  return {
    keys: list(values, 'key'),
    signers: list(values, 'signer'),
    signerKeys: list(values, 'signer-key'),
  };
}

/** The controls `plan` and `install` share. */
export const controlOptions = {
  force: {
    type: 'string',
    multiple: true,
    arg: 'C',
    help: "ignore component C's version, dependency, platform and drift checks",
  },
  skip: { type: 'string', multiple: true, arg: 'C', help: 'leave component C as it is' },
  delete: {
    type: 'string',
    multiple: true,
    arg: 'C',
    help: 'remove component C, running its remove artifacts',
  },
  control: {
    type: 'string',
    arg: 'FILE',
    help: 'the controls as YAML: { force: [..], skip: [..], delete: [..] }',
  },
  'allow-downgrade': { type: 'boolean', help: 'let components go to an older version' },
  partial: {
    type: 'boolean',
    help: 'install what can be, leaving the components in error as they are',
  },
  'no-drift-check': {
    type: 'boolean',
    help: 'do not compare installed files with what was installed (no E_DRIFT)',
  },
} as const satisfies Options;

export function controlInput(values: Values) {
  const file = optional(values, 'control');
  return {
    force: list(values, 'force'),
    skip: list(values, 'skip'),
    delete: list(values, 'delete'),
    ...(file !== undefined ? { controlFile: file } : {}),
    allowDowngrade: flag(values, 'allow-downgrade'),
    partial: flag(values, 'partial'),
    driftCheck: !flag(values, 'no-drift-check'),
  };
}

/** The hint of a usage error raised where the command's name is not known; main names it. */
export const GENERIC_USAGE_HINT = 'see `ferry COMMAND --help`';

export function usageError(message: string, hint?: string): FerryError {
  return new FerryError('E_USAGE', message, { hint: hint ?? GENERIC_USAGE_HINT });
}

/** The usage error with the command named in its hint: `ferry verify --help`, not `ferry COMMAND --help`. */
export function forCommand(error: unknown, name: string): unknown {
  if (!(error instanceof FerryError) || error.code !== 'E_USAGE') return error;
  if (error.hint !== GENERIC_USAGE_HINT) return error;
  return new FerryError('E_USAGE', error.message, {
    ...error.details,
    hint: `see \`ferry ${name} --help\``,
  });
}

export function required(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usageError(`--${name} is required`);
  return value;
}

export function optional(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function list(values: Values, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value.filter((v) => typeof v === 'string') : [];
}

export function flag(values: Values, name: string): boolean {
  return values[name] === true;
}

/** The one positional argument a command takes. */
export function positional(positionals: readonly string[], name: string): string {
  const [value, ...rest] = positionals;
  if (value === undefined) throw usageError(`${name} is required`);
  if (rest.length > 0) throw usageError(`unexpected argument ${rest[0]}`);
  return value;
}

export function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) throw usageError(`--${name} must be a whole number, not "${value}"`);
  return Number(value);
}

/** `name` is an option's (`format`: --format) or a positional argument's (`SHELL`). */
export function choice<T extends string>(value: string, allowed: readonly T[], name: string): T {
  const named = name === name.toUpperCase() ? name : `--${name}`;
  if (!(allowed as readonly string[]).includes(value))
    throw usageError(`${named} must be one of ${allowed.join(', ')}, not "${value}"`);
  return value as T;
}

/** A date as key holders write it: YYYY-MM-DD (midnight UTC) or YYYY-MM-DDTHH:MM:SSZ. */
export function date(value: string, name: string): Date {
  const parsed = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$/.test(value)
    ? new Date(value)
    : new Date(NaN);
  if (Number.isNaN(parsed.getTime()))
    throw usageError(`--${name} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, not "${value}"`);
  return parsed;
}

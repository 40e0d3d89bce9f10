import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { BundleFormat } from '../builder/write.js';
import type { InstallEvent } from '../installer/install.js';
import { ERROR_CODES, FerryError, isFerryError } from '../manifest-schema/errors.js';
import {
  bytes,
  formatBuild,
  formatEvent,
  formatInspect,
  formatInstall,
  formatPlan,
  formatStatus,
  formatVerify,
} from './format.js';

// Commands load their library on demand: `ferry inspect` need not load the builder.
const BUNDLE_FORMATS: readonly BundleFormat[] = ['tar', 'tar.gz', 'zip'];

/**
 * The one CLI. Each command parses its flags and calls one library function;
 * this file is the only place that turns errors into exit codes.
 */
type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  usage: string;
  summary: string;
  options: Options;
  run(args: Parsed): Promise<CommandResult>;
}

interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

interface CommandResult {
  json: unknown;
  human: string;
  exitCode?: number;
  /** The command streamed JSON lines already: print the result as one more line. */
  jsonLines?: boolean;
}

const json = { json: { type: 'boolean' } } as const satisfies Options;
const controlOptions = {
  force: { type: 'string', multiple: true },
  skip: { type: 'string', multiple: true },
  delete: { type: 'string', multiple: true },
  control: { type: 'string' },
  'allow-downgrade': { type: 'boolean' },
  partial: { type: 'boolean' },
} as const satisfies Options;

function controlInput(values: Parsed['values']) {
  const file = optional(values, 'control');
  return {
    force: list(values, 'force'),
    skip: list(values, 'skip'),
    delete: list(values, 'delete'),
    ...(file !== undefined ? { controlFile: file } : {}),
    allowDowngrade: values['allow-downgrade'] === true,
    partial: values.partial === true,
  };
}

const COMMANDS: Record<string, Command> = {
  keygen: {
    usage: 'ferry keygen --out DIR [--name NAME]',
    summary: 'make an Ed25519 key pair NAME.key / NAME.pub and print its key id',
    options: { out: { type: 'string' }, name: { type: 'string' }, ...json },
    async run({ values }) {
      const { keygen } = await import('../builder/signing.js');
      const result = await keygen(required(values, 'out'), optional(values, 'name'));
      return {
        json: result,
        human: `${result.keyid}\n  private key ${result.privateKey} (keep it off appliances)\n  public key  ${result.publicKey}`,
      };
    },
  },
  'trust init': {
    usage: 'ferry trust init --key PUB... [--threshold K] --out FILE',
    summary: 'write a trust root of public keys, K of which must sign a bundle',
    options: {
      key: { type: 'string', multiple: true },
      threshold: { type: 'string' },
      out: { type: 'string' },
      ...json,
    },
    async run({ values }) {
      const keys = list(values, 'key');
      const threshold = integer(optional(values, 'threshold') ?? '1', 'threshold');
      const out = required(values, 'out');
      const { trustInit } = await import('../builder/signing.js');
      const root = await trustInit(keys, threshold, out);
      const ids = root.keys.map((key) => key.keyid);
      return {
        json: { trust: out, threshold: root.threshold, keyids: ids },
        human: `wrote ${out}: ${root.threshold} of ${ids.length} key(s) must sign\n${ids.map((id) => `  ${id}`).join('\n')}`,
      };
    },
  },
  build: {
    usage:
      'ferry build SPEC --out DIR --key KEY... [--format tar|tar.gz|zip] [--kind update|install]',
    summary: 'build and sign a bundle from a release spec, and write its release record',
    options: {
      out: { type: 'string' },
      key: { type: 'string', multiple: true },
      format: { type: 'string' },
      kind: { type: 'string' },
      ...json,
    },
    async run({ values, positionals }) {
      const format = choice<BundleFormat>(
        optional(values, 'format') ?? 'tar',
        BUNDLE_FORMATS,
        'format',
      );
      const kind = optional(values, 'kind');
      const { buildBundle } = await import('../builder/build.js');
      const result = await buildBundle({
        spec: positional(positionals, 'SPEC'),
        out: required(values, 'out'),
        keys: list(values, 'key'),
        format,
        ...(kind !== undefined
          ? { kind: choice(kind, ['update', 'install'] as const, 'kind') }
          : {}),
        ...(process.env.SOURCE_DATE_EPOCH !== undefined
          ? { sourceDateEpoch: process.env.SOURCE_DATE_EPOCH }
          : {}),
      });
      return { json: result, human: formatBuild(result) };
    },
  },
  inspect: {
    usage: 'ferry inspect BUNDLE [--trust FILE]',
    summary:
      "show a bundle's metadata (reads nothing else): release, target, changes, components, signature",
    options: { trust: { type: 'string' }, ...json },
    async run({ values, positionals }) {
      const { inspectBundle } = await import('../installer/inspect.js');
      const result = await inspectBundle(
        positional(positionals, 'BUNDLE'),
        optional(values, 'trust'),
      );
      return {
        json: result,
        human: formatInspect(result),
        exitCode: result.signature.valid === false ? 3 : 0,
      };
    },
  },
  verify: {
    usage: 'ferry verify BUNDLE --trust FILE',
    summary: 'check the signature and every byte of a bundle against its signed metadata',
    options: { trust: { type: 'string' }, ...json },
    async run({ values, positionals }) {
      const { verifyBundle } = await import('../installer/verify.js');
      const result = await verifyBundle(
        positional(positionals, 'BUNDLE'),
        required(values, 'trust'),
      );
      return { json: { ...result, valid: true }, human: formatVerify(result) };
    },
  },
  init: {
    usage: 'ferry init --root R --product P --platform NAME@VERSION --trust FILE',
    summary: 'provision an empty appliance under R',
    options: {
      root: { type: 'string' },
      product: { type: 'string' },
      platform: { type: 'string' },
      trust: { type: 'string' },
      'default-location': { type: 'string' },
      ...json,
    },
    async run({ values }) {
      const { initAppliance } = await import('../installer/appliance.js');
      const location = optional(values, 'default-location');
      const appliance = await initAppliance({
        root: required(values, 'root'),
        product: required(values, 'product'),
        platform: required(values, 'platform'),
        trust: required(values, 'trust'),
        ...(location !== undefined ? { defaultPayloadLocation: location } : {}),
      });
      const { config, paths } = appliance;
      return {
        json: {
          root: paths.root,
          product: config.product,
          platform: config.platform,
          trustKeyids: appliance.trust.keys.map((k) => k.keyid),
        },
        human: `provisioned ${config.product} on ${config.platform.name} ${config.platform.version} at ${paths.root}\n  settings ${paths.config}\n  trust    ${paths.trust} (${appliance.trust.keys.length} key(s), threshold ${appliance.trust.threshold})`,
      };
    },
  },
  status: {
    usage: 'ferry status --root R [--verify] [--export FILE]',
    summary:
      'the installed release, components and last transactions; --verify checks every installed file; --export writes the facts to plan against elsewhere',
    options: {
      root: { type: 'string' },
      export: { type: 'string' },
      verify: { type: 'boolean' },
      ...json,
    },
    async run({ values }) {
      const { applianceStatus } = await import('../installer/status.js');
      const file = optional(values, 'export');
      const result = await applianceStatus(required(values, 'root'), {
        verify: values.verify === true,
        ...(file !== undefined ? { exportTo: file } : {}),
      });
      const problems = result.problems;
      return {
        json: result,
        human: formatStatus(result),
        exitCode: problems && problems.length > 0 ? 1 : 0,
      };
    },
  },
  plan: {
    usage:
      'ferry plan BUNDLE (--root R | --state FILE) [--force C] [--skip C] [--delete C] [--control FILE] [--allow-downgrade] [--partial]',
    summary:
      'what installing the bundle would do to each component and why, from its metadata alone',
    options: { root: { type: 'string' }, state: { type: 'string' }, ...controlOptions, ...json },
    async run({ values, positionals }) {
      const { planFor } = await import('../installer/planning.js');
      const root = optional(values, 'root');
      const stateFile = optional(values, 'state');
      const { plan, opened } = await planFor(
        {
          bundle: positional(positionals, 'BUNDLE'),
          ...(root !== undefined ? { root } : {}),
          ...(stateFile !== undefined ? { stateFile } : {}),
        },
        controlInput(values),
      );
      await opened.reader.close();
      return { json: plan, human: formatPlan(plan), exitCode: plan.verdict === 'ok' ? 0 : 4 };
    },
  },
  install: {
    usage:
      'ferry install BUNDLE --root R [--force C] [--skip C] [--delete C] [--control FILE] [--allow-downgrade] [--partial] [--now] [--reason TEXT] [--yes]',
    summary:
      'plan, pre-validate, stage, update, test and commit; any failure rolls everything back',
    options: {
      root: { type: 'string' },
      yes: { type: 'boolean' },
      now: { type: 'boolean' },
      reason: { type: 'string' },
      ...controlOptions,
      ...json,
    },
    async run({ values, positionals }) {
      const bundle = positional(positionals, 'BUNDLE');
      const root = required(values, 'root');
      const wantsJson = values.json === true;
      await confirm(values, `install ${bundle} on ${root}`);
      const { install } = await import('../installer/install.js');
      const reason = optional(values, 'reason');
      const progress = progressPrinter();
      const result = await install({
        bundle,
        root,
        controls: controlInput(values),
        now: values.now === true,
        ...(reason !== undefined ? { reason } : {}),
        onEvent: (event) => {
          if (wantsJson) {
            if (event.type !== 'result') process.stdout.write(`${JSON.stringify(event)}\n`);
          } else {
            progress.show(event);
          }
        },
      });
      const exitCode =
        result.plan.verdict === 'blocked'
          ? 4
          : result.outcome === 'committed' || (result.outcome === 'unchanged' && !result.failure)
            ? 0
            : 1;
      const { plan, ...rest } = result;
      return {
        json: { type: 'result', ...plan, ...rest },
        human: formatInstall(result),
        exitCode,
        jsonLines: true,
      };
    },
  },
  rollback: {
    usage: 'ferry rollback --root R [--reason TEXT] [--yes]',
    summary:
      'back to the previous committed release, from the versions kept beside the active ones',
    options: {
      root: { type: 'string' },
      yes: { type: 'boolean' },
      reason: { type: 'string' },
      ...json,
    },
    async run({ values }) {
      const root = required(values, 'root');
      await confirm(values, `roll ${root} back to its previous release`);
      const { rollback } = await import('../installer/rollback.js');
      const reason = optional(values, 'reason');
      const result = await rollback(root, {
        ...(reason !== undefined ? { reason } : {}),
        onEvent: (event) => {
          const line = values.json === true ? null : formatEvent(event);
          if (line !== null) process.stderr.write(`${line}\n`);
        },
      });
      const human =
        result.outcome === 'committed'
          ? `ROLLED BACK to ${result.to ?? '(empty)'} (from ${result.from ?? '(empty)'})`
          : result.outcome === 'unchanged'
            ? `UNCHANGED: the previous release has the same components`
            : `FAILED: still at ${result.from ?? '(empty)'}: ${result.failure?.component ?? ''} ${result.failure?.status ?? ''}`;
      return { json: result, human, exitCode: result.outcome === 'rolled-back' ? 1 : 0 };
    },
  },
  console: {
    usage: 'ferry console --root R [--media DIR…]',
    summary:
      'the one-click console: finds bundles on attached media, shows what they bring and do, Enter applies',
    options: { root: { type: 'string' }, media: { type: 'string', multiple: true } },
    async run({ values }) {
      // ink reads these when it loads: a real terminal gets the live screen even
      // under CI=true (which makes ink print only the last frame), and NO_COLOR
      // is honoured (chalk only knows FORCE_COLOR).
      if (process.stdout.isTTY) delete process.env.CI;
      if (process.env.NO_COLOR !== undefined) process.env.FORCE_COLOR = '0';
      const { runConsole } = await import('../installer/console/run.js');
      const exitCode = await runConsole({
        root: required(values, 'root'),
        media: list(values, 'media'),
      });
      return { json: null, human: '', exitCode };
    },
  },
  recover: {
    usage: 'ferry recover --root R',
    summary:
      'resolve a transaction that a crash or power cut interrupted (install and rollback do this first themselves)',
    options: { root: { type: 'string' }, ...json },
    async run({ values }) {
      const { recover } = await import('../installer/status.js');
      const result = await recover(required(values, 'root'), (message) =>
        process.stderr.write(`warning: ${message}\n`),
      );
      return {
        json: result,
        human: result.recovered
          ? `recovered: the appliance is at ${result.release ?? '(empty)'}`
          : `nothing to recover: the appliance is at ${result.release ?? '(empty)'}`,
      };
    },
  },
};

/**
 * Plain lines for a person; on a terminal, staging progress also redraws one
 * line in place (a log file or CI gets no carriage returns).
 */
function progressPrinter() {
  const live = process.stderr.isTTY === true && process.env.NO_COLOR === undefined;
  let drawn = false;
  return {
    show(event: InstallEvent): void {
      if (event.type === 'progress') {
        if (!live) return;
        const percent = event.total > 0 ? Math.floor((100 * event.bytes) / event.total) : 100;
        process.stderr.write(
          `\r   staging ${bytes(event.bytes)} of ${bytes(event.total)} (${percent}%)\x1b[K`,
        );
        drawn = true;
        return;
      }
      const line = formatEvent(event);
      if (line === null) return;
      if (drawn) process.stderr.write('\n');
      drawn = false;
      process.stderr.write(`${line}\n`);
    },
  };
}

/** install and rollback change the appliance: on a TTY they ask; without one they need --yes. */
async function confirm(values: Parsed['values'], what: string): Promise<void> {
  if (values.yes === true) return;
  if (!process.stdin.isTTY) {
    throw new FerryError(
      'E_USAGE',
      `refusing to ${what} without confirmation: no terminal to ask on`,
      { hint: 'pass --yes to confirm (for scripts and CI)' },
    );
  }
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${what}? [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim()))
    throw new FerryError('E_USAGE', 'not confirmed; nothing was changed', {
      hint: 'answer y to go ahead, or pass --yes',
    });
}

function usageError(message: string, hint?: string): FerryError {
  return new FerryError('E_USAGE', message, { hint: hint ?? 'see `ferry --help`' });
}

function required(values: Parsed['values'], name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usageError(`--${name} is required`);
  return value;
}

function optional(values: Parsed['values'], name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function list(values: Parsed['values'], name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value : [];
}

function positional(positionals: string[], name: string): string {
  const [value, ...rest] = positionals;
  if (value === undefined) throw usageError(`${name} is required`);
  if (rest.length > 0) throw usageError(`unexpected argument ${rest[0]}`);
  return value;
}

function integer(value: string, name: string): number {
  if (!/^\d+$/.test(value)) throw usageError(`--${name} must be a whole number, not "${value}"`);
  return Number(value);
}

function choice<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if (!(allowed as readonly string[]).includes(value))
    throw usageError(`--${name} must be one of ${allowed.join(', ')}, not "${value}"`);
  return value as T;
}

function helpText(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map(
    (command) => `  ${command.usage.padEnd(width)}  ${command.summary}`,
  );
  const exits =
    '0 ok · 1 failed, nothing changed · 2 usage or input · 3 trust · 4 plan blocked · 5 busy';
  return `ferry: signed, cumulative updates across an air gap\n\nUsage:\n${lines.join('\n')}\n\nEvery command takes --json for a machine-readable result on stdout.\nExit codes: ${exits}\n`;
}

function findCommand(argv: string[]): { name: string; command: Command; rest: string[] } | null {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS[name];
    if (command) return { name, command, rest: argv.slice(words) };
  }
  return null;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(helpText());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    process.stdout.write('ferry 0.1.0\n');
    return 0;
  }
  const wantsJson = argv.includes('--json');
  try {
    const found = findCommand(argv);
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
    const result = await found.command.run(parsed);
    if (wantsJson)
      process.stdout.write(
        `${JSON.stringify(result.json, null, result.jsonLines ? undefined : 2)}\n`,
      );
    else if (result.human !== '') process.stdout.write(`${result.human}\n`);
    return result.exitCode ?? 0;
  } catch (error) {
    return report(error, wantsJson);
  }
}

function report(error: unknown, wantsJson: boolean): number {
  const ferryError = isFerryError(error)
    ? error
    : new FerryError(
        'E_INTERNAL',
        `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        {
          hint: 'this is a bug in Ferry: please report it with the command you ran',
        },
      );
  if (wantsJson)
    process.stdout.write(`${JSON.stringify({ error: ferryError.toJSON() }, null, 2)}\n`);
  process.stderr.write(`ferry: ${ferryError.code}: ${ferryError.message}\n`);
  if (ferryError.hint) process.stderr.write(`  hint: ${ferryError.hint}\n`);
  return ERROR_CODES[ferryError.code].exit;
}

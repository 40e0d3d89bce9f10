import type { InstallResult } from '../../installer/engine/events.js';
import type { Plan } from '../../installer/plan.js';
import {
  controlInput,
  controlOptions,
  handOverBundle,
  flag,
  jsonOption,
  optional,
  positional,
  root as rootOf,
  rootOption,
  type Command,
} from '../args.js';
import { ask, mustAsk } from '../confirm.js';
import { formatFailure, formatPlan } from '../format.js';
import { progressPrinter } from '../progress.js';
import { askOnTerminal } from '../volume-prompt.js';

export const command: Command = {
  usage:
    'ferry install BUNDLE [--root R] [--force C] [--skip C] [--delete C] [--control FILE] [--allow-downgrade] [--partial] [--no-drift-check] [--now] [--reason TEXT] [--yes]',
  summary: 'plan, pre-validate, stage, update, test and commit; any failure rolls everything back',
  options: {
    ...rootOption,
    yes: { type: 'boolean', help: 'go ahead without asking (for scripts and CI)' },
    now: { type: 'boolean', help: 'install outside the maintenance window' },
    reason: {
      type: 'string',
      arg: 'TEXT',
      help: 'why, recorded in the history with the controls used',
    },
    ...controlOptions,
    ...jsonOption,
  },
  handOver: handOverBundle,
  async run({ values, positionals }) {
    const bundle = positional(positionals, 'BUNDLE');
    const root = rootOf(values);
    const wantsJson = flag(values, 'json');
    const what = `install ${bundle} on ${root}`;
    // On a terminal the operator sees the plan (as `ferry plan` shows it) before saying yes.
    const confirm = mustAsk(flag(values, 'yes'), what)
      ? async (plan: Plan) => {
          process.stderr.write(`${formatPlan(plan)}\n\n`);
          // Declared below, and set before install asks.
          await ask(what, stopping.signal);
        }
      : undefined;
    const { install } = await import('../../installer/engine/install.js');
    const { exitCodeOf, catchStopSignals, rolledBackSummary } =
      await import('../../installer/engine/events.js');
    const reason = optional(values, 'reason');
    const progress = await progressPrinter();
    const stopping = catchStopSignals((line) => process.stderr.write(`${line}\n`));
    // On media, the next volume is asked for on the terminal.
    const askVolume = askOnTerminal(stopping.signal, wantsJson ? undefined : progress);
    // While it asks for a volume nothing but the terminal keeps this process alive: a
    // terminal closed there would end it before SIGHUP could stop the install.
    const alive = setInterval(() => undefined, 60_000);
    const result = await install({
      ...(askVolume ? { ask: askVolume } : {}),
      bundle,
      root,
      controls: controlInput(values),
      now: flag(values, 'now'),
      ...(reason !== undefined ? { reason } : {}),
      ...(confirm ? { confirm } : {}),
      signal: stopping.signal,
      onEvent: (event) => {
        if (wantsJson) {
          if (event.type !== 'result') process.stdout.write(`${JSON.stringify(event)}\n`);
          if (event.type === 'interrupt') process.stderr.write(`ferry: ${event.message}\n`);
        } else {
          progress.show(event);
        }
      },
    }).finally(() => {
      clearInterval(alive);
      stopping.release();
    });
    const { plan, ...rest } = result;
    return {
      json: { type: 'result', ...plan, ...rest },
      human: formatInstall(result, rolledBackSummary),
      exitCode: exitCodeOf(result),
      jsonLines: true,
    };
  },
};

function formatInstall(
  result: InstallResult,
  rolledBackSummary: (result: InstallResult) => string,
): string {
  const { plan } = result;
  const lines: string[] = [];
  if (result.outcome === 'committed') {
    lines.push(
      `COMMITTED: ${plan.product} is at ${plan.to}${plan.reachesTarget ? '' : ' (not a verified release: components were skipped, deleted or left out)'}`,
    );
  } else if (result.outcome === 'rolled-back') {
    lines.push(`ROLLED BACK: ${plan.product} ${rolledBackSummary(result)}`);
  } else if (plan.verdict === 'blocked') {
    lines.push(formatPlan(plan), '', 'UNCHANGED: the plan is blocked; nothing was changed');
  } else if (result.failure) {
    lines.push(
      `UNCHANGED: ${plan.product} is still at ${plan.from ?? '(empty)'}; nothing was changed`,
    );
  } else if (plan.reachesTarget) {
    lines.push(`UNCHANGED: ${plan.product} is already at ${plan.to}; nothing to do`);
  } else {
    // Every change was skipped: saying "already at" the target would be false.
    lines.push(
      `UNCHANGED: ${plan.product} is still at ${plan.from ?? '(empty)'}; nothing to do: every component that would change toward ${plan.to} is skipped`,
    );
  }
  lines.push(...formatFailure(result.failure, result.log));
  return lines.join('\n');
}

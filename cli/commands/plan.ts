import {
  controlInput,
  controlOptions,
  handOverBundle,
  jsonOption,
  optional,
  positional,
  type Command,
} from '../args.js';
import { formatPlan } from '../format.js';

export const command: Command = {
  usage:
    'ferry plan BUNDLE (--root R | --state FILE) [--force C] [--skip C] [--delete C] [--control FILE] [--allow-downgrade] [--partial] [--no-drift-check]',
  summary: 'what installing the bundle would do to each component and why, from its metadata alone',
  options: {
    root: { type: 'string' },
    state: { type: 'string' },
    ...controlOptions,
    ...jsonOption,
  },
  handOver: handOverBundle,
  async run({ values, positionals }) {
    const { planFor } = await import('../../installer/planning.js');
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
};

import { render, useInput } from 'ink';
import { useEffect, useMemo, useState } from 'react';
import { FerryError, isFerryError, printableDeep } from '../../manifest-schema/index.js';
import { openAppliance } from '../appliance.js';
import { exitCodeOf } from '../engine/events.js';
import { install } from '../engine/install.js';
import { applianceView, discover } from './discover.js';
import { initialState, reduce, type ConsoleEvent, type ConsoleState } from './model.js';
import { ConsoleView } from './view.js';

export interface ConsoleOptions {
  root: string;
  media: readonly string[];
  mountPoints?: readonly string[];
}

/**
 * The controller: holds the state, turns keys into actions and engine events
 * into state. Components only render what it holds.
 */
export class ConsoleController {
  state: ConsoleState;
  private readonly listeners = new Set<(state: ConsoleState) => void>();
  private readonly root: string;
  onQuit: () => void = () => undefined;

  constructor(state: ConsoleState, root: string) {
    this.state = state;
    this.root = root;
  }

  subscribe(listener: (state: ConsoleState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispatch(event: ConsoleEvent): void {
    this.state = reduce(this.state, event);
    for (const listener of this.listeners) listener(this.state);
  }

  key(input: string, enter: boolean, arrow: 'up' | 'down' | null = null): void {
    if (arrow !== null) {
      this.dispatch({ type: 'choose', step: arrow === 'down' ? 1 : -1 });
      return;
    }
    if (input === 'q' && this.state.screen !== 'installing') {
      this.onQuit();
      return;
    }
    if (!enter || this.state.screen !== 'choose') return;
    const candidate =
      this.state.chosen === null ? undefined : this.state.candidates[this.state.chosen];
    const plan = candidate?.plan;
    if (!candidate || !plan) {
      this.dispatch({
        type: 'notice',
        text: 'Enter does nothing: there is no bundle that can be applied.',
      });
      return;
    }
    if (plan.verdict !== 'ok') {
      const why =
        plan.reasons[0]?.message ??
        plan.components
          .find((c) => c.action === 'error')
          ?.reasons.find((r) => r.code.startsWith('E_'))?.message ??
        'the plan is blocked';
      this.dispatch({
        type: 'notice',
        text: `Enter does nothing: this bundle cannot be applied here. ${why}`,
      });
      return;
    }
    if (plan.order.length === 0) {
      this.dispatch({
        type: 'notice',
        text: `Enter does nothing: the appliance is already at ${plan.to}.`,
      });
      return;
    }
    void this.apply(candidate.file);
  }

  private async apply(bundle: string): Promise<void> {
    this.dispatch({ type: 'start', at: Date.now() });
    try {
      await install({ bundle, root: this.root, onEvent: (event) => this.dispatch(event) });
      const after = await openAppliance(this.root);
      this.state = { ...this.state, appliance: applianceView(after) };
      this.dispatch({ type: 'notice', text: '' });
    } catch (error) {
      const failure = isFerryError(error)
        ? { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
        : { code: 'E_INTERNAL', message: String(error) };
      this.dispatch({ type: 'failed', error: failure });
    }
  }
}

/** The screen: renders what the controller holds and hands it the keys. */
export function ConsoleApp({ controller }: { controller: ConsoleController }) {
  const [state, setState] = useState(controller.state);
  useEffect(() => controller.subscribe(setState), [controller]);
  useInput((input, key) =>
    controller.key(input, key.return, key.upArrow ? 'up' : key.downArrow ? 'down' : null),
  );
  // Names, notes and messages come from bundles: nothing in them may drive the terminal.
  const shown = useMemo(() => printableDeep(state), [state]);
  return <ConsoleView state={shown} />;
}

export async function runConsole(options: ConsoleOptions): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new FerryError('E_USAGE', 'ferry console needs a terminal', {
      hint: `without one, use: ferry install BUNDLE --root ${options.root} --yes`,
    });
  }
  const appliance = await openAppliance(options.root);
  const candidates = await discover(appliance, options.media, options.mountPoints);
  const controller = new ConsoleController(
    initialState(applianceView(appliance), candidates),
    options.root,
  );
  const instance = render(<ConsoleApp controller={controller} />);
  controller.onQuit = () => instance.unmount();
  await instance.waitUntilExit();
  const { result, error } = controller.state;
  if (error) return 1;
  return result ? exitCodeOf(result) : 0;
}

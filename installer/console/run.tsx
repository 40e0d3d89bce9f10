import { render, useInput } from 'ink';
import { useEffect, useMemo, useState } from 'react';
import type { AskForVolume } from '../../bundle/media.js';
import { FerryError, isFerryError, printableDeep } from '../../manifest-schema/index.js';
import { openAppliance } from '../appliance.js';
import { exitCodeOf, STOP_SIGNALS } from '../engine/events.js';
import { install } from '../engine/install.js';
import { carriedInstaller, runCarried, type CarriedInstaller } from '../handover.js';
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
  /** Aborted when the operator interrupts an install under way. */
  private stopping: AbortController | null = null;
  /** The install's wait for a volume: Enter goes on, q gives up. */
  private waiting: { resolve: () => void; reject: () => void } | null = null;
  /** The operator left: a hand-over still being checked must not start after that. */
  private quitting = false;
  /** The checked installer to hand over to once the screen is gone (runConsole runs it). */
  handOverTo: { bundle: string; carried: CarriedInstaller } | null = null;
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
    if (this.waiting && (enter || input === 'q')) {
      const { resolve, reject } = this.waiting;
      this.waiting = null;
      this.dispatch({ type: 'volume', wanted: null });
      if (enter) resolve();
      else reject();
      return;
    }
    if (input === 'q' && this.state.screen !== 'installing') {
      this.quit();
      return;
    }
    if (!enter || this.state.screen !== 'choose') return;
    const candidate =
      this.state.chosen === null ? undefined : this.state.candidates[this.state.chosen];
    if (candidate?.needs) {
      if (candidate.needs.carried !== null) void this.handOver(candidate.file);
      else
        this.dispatch({
          type: 'notice',
          text: `Enter does nothing: ${candidate.problem?.message ?? ''}. What to do: ${candidate.needs.hint}`,
        });
      return;
    }
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

  /**
   * Ctrl-C, SIGTERM or SIGHUP: during an install, asks it to stop at its next
   * safe point and roll back (the screen stays until the result); otherwise quits.
   */
  interrupt(signal: NodeJS.Signals): void {
    if (this.state.screen !== 'installing') {
      this.quit();
      return;
    }
    if (this.stopping?.signal.aborted === false) this.stopping.abort(signal);
  }

  private quit(): void {
    this.quitting = true;
    this.onQuit();
  }

  /**
   * The bundle needs the newer Ferry it carries: checks that installer
   * against the signed metadata and copies it to the appliance while the
   * screen shows so (a mismatch ends on the result screen, nothing changed),
   * then closes the screen for runConsole to hand over. The newer Ferry
   * plans the bundle itself: this one may misread it.
   */
  private async handOver(bundle: string): Promise<void> {
    this.dispatch({ type: 'hand-over' });
    try {
      const carried = await carriedInstaller({ bundle, root: this.root });
      if (!carried) throw new FerryError('E_INTERNAL', `${bundle} needs no newer Ferry after all`);
      if (this.quitting) return;
      this.handOverTo = { bundle, carried };
      this.quit();
    } catch (error) {
      this.dispatch({ type: 'failed', error: failureOf(error) });
    }
  }

  private async apply(bundle: string): Promise<void> {
    this.dispatch({ type: 'start', at: Date.now() });
    this.stopping = new AbortController();
    try {
      await install({
        bundle,
        root: this.root,
        onEvent: (event) => this.dispatch(event),
        signal: this.stopping.signal,
        ask: this.askForVolume,
      });
      const after = await openAppliance(this.root);
      this.state = { ...this.state, appliance: applianceView(after) };
      this.dispatch({ type: 'notice', text: '' });
    } catch (error) {
      this.dispatch({ type: 'failed', error: failureOf(error) });
    }
  }

  /** Shows which volume to insert and waits for Enter (or q, which stops with nothing changed). */
  private readonly askForVolume: AskForVolume = (request) =>
    new Promise<void>((resolve, reject) => {
      this.waiting = { resolve, reject: () => reject(request.problem) };
      const { volume, volumes, label, bundle, problem } = request;
      const wrong = problem.code === 'E_WRONG_VOLUME' ? problem.message : null;
      this.dispatch({ type: 'volume', wanted: { volume, volumes, label, bundle, wrong } });
    });
}

function failureOf(error: unknown): { code: string; message: string; hint?: string } {
  return isFerryError(error)
    ? { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
    : { code: 'E_INTERNAL', message: String(error) };
}

/** The screen: renders what the controller holds and hands it the keys. */
export function ConsoleApp({ controller }: { controller: ConsoleController }) {
  const [state, setState] = useState(controller.state);
  useEffect(() => controller.subscribe(setState), [controller]);
  useInput((input, key) => {
    if (key.ctrl && input === 'c') controller.interrupt('SIGINT');
    else controller.key(input, key.return, key.upArrow ? 'up' : key.downArrow ? 'down' : null);
  });
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
  // Ctrl-C comes as a key (raw mode) and must not unmount the screen while an install goes on.
  const instance = render(<ConsoleApp controller={controller} />, { exitOnCtrlC: false });
  controller.onQuit = () => instance.unmount();
  const onSignal = (signal: NodeJS.Signals): void => controller.interrupt(signal);
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    await instance.waitUntilExit();
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
  if (controller.handOverTo) {
    // The console's own arguments: the newer Ferry's console finds the same bundles.
    const argv = [
      'console',
      '--root',
      options.root,
      ...options.media.flatMap((d) => ['--media', d]),
    ];
    const { bundle, carried } = controller.handOverTo;
    // ink has stopped listening, but this process still reads the terminal:
    // every key must go to the console handed over to (and none keep us alive).
    process.stdin.destroy();
    return runCarried(carried, bundle, argv);
  }
  const { result, error } = controller.state;
  if (error) return 1;
  return result ? exitCodeOf(result) : 0;
}

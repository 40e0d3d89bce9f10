import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { render, useInput, useStdout } from 'ink';
import { useEffect, useMemo, useState } from 'react';
import type { AskForVolume } from '../../bundle/media.js';
import {
  FerryError,
  isFerryError,
  printableDeep,
  type ApplianceConfig,
} from '../../manifest-schema/index.js';
import { openAppliance } from '../appliance.js';
import { exitCodeOf, STOP_SIGNALS } from '../engine/events.js';
import { install } from '../engine/install.js';
import { rollback } from '../engine/rollback.js';
import { MAX_REASON_CHARS } from '../engine/transaction.js';
import { carriedInstaller, runCarried, type CarriedInstaller } from '../handover.js';
import { logEvents, logLine } from '../log.js';
import {
  applianceView,
  discover,
  mediaFingerprint,
  searchedFolders,
  USUAL_MOUNT_POINTS,
  windowView,
} from './discover.js';
import {
  blockedBy,
  initialState,
  logOf,
  reduce,
  rollbackOffered,
  type ConsoleEvent,
  type ConsoleState,
} from './model.js';
import { ConsoleView, layout, type Size } from './view.js';

/** The newest lines of a transaction's log the console holds; `ferry log` streams any length. */
const LOG_VIEW_LINES = 5000;
const MINUTE = 60_000;

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
  /** The carried installer's check and copy under way: q stops it (runConsole waits for its cleanup). */
  private checking: { stop: AbortController; done: Promise<void> } | null = null;
  /** The checked installer to hand over to once the screen is gone (runConsole runs it). */
  handOverTo: { bundle: string; carried: CarriedInstaller } | null = null;
  onQuit: () => void = () => undefined;
  /** Where to look again for bundles (r, or media mounted); none: the console never looks again. */
  private readonly search: { media: readonly string[]; mountPoints: readonly string[] } | null;
  private looking = false;

  constructor(
    state: ConsoleState,
    root: string,
    search: { media: readonly string[]; mountPoints?: readonly string[] } | null = null,
  ) {
    this.state = state;
    this.root = root;
    this.search = search && {
      media: search.media,
      mountPoints: search.mountPoints ?? USUAL_MOUNT_POINTS,
    };
  }

  subscribe(listener: (state: ConsoleState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispatch(event: ConsoleEvent): void {
    this.state = reduce(this.state, event);
    for (const listener of this.listeners) listener(this.state);
  }

  /** A key: a character, or the name of a special key (enter, left, right, escape, backspace). */
  key(input: string): void {
    if (this.state.reason !== null) {
      this.answer(input);
      return;
    }
    if (input === 'left' || input === 'right') {
      this.dispatch({ type: 'choose', step: input === 'right' ? 1 : -1 });
      return;
    }
    const enter = input === 'enter';
    if (this.waiting && (enter || input === 'q')) {
      const { resolve, reject } = this.waiting;
      this.waiting = null;
      this.dispatch({ type: 'volume', wanted: null });
      if (enter) resolve();
      else reject();
      return;
    }
    if (this.state.screen === 'done' && this.afterwards(input)) return;
    if (input === 'q' && this.state.screen !== 'installing') {
      this.quit();
      return;
    }
    if (input === 'r' && this.state.screen === 'choose') {
      void this.lookAgain(true);
      return;
    }
    if (!enter || this.state.screen !== 'choose') return;
    const candidate =
      this.state.chosen === null ? undefined : this.state.candidates[this.state.chosen];
    if (candidate?.needs) {
      if (candidate.needs.carried !== null) this.handOver(candidate.file);
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
      this.dispatch({
        type: 'notice',
        text: `Enter does nothing: this bundle cannot be applied here. ${blockedBy(plan)}`,
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
    const { window } = this.state.appliance;
    if (!window.open && window.allowOutside) {
      this.dispatch({ type: 'reason', text: '' });
      return;
    }
    if (!window.open) {
      this.dispatch({
        type: 'notice',
        text: `Enter does nothing now: it is outside this appliance's maintenance windows; ${window.next ? `the next opens ${window.next}` : 'none opens within a week'}.`,
      });
      return;
    }
    void this.apply(candidate.file);
  }

  /** The result screen's own keys: l the log, b a rollback and its y or n. True when taken. */
  private afterwards(input: string): boolean {
    if (this.state.confirm === 'rollback') {
      if (input === 'y') void this.rollBack();
      else if (input === 'n' || input === 'escape') this.dispatch({ type: 'confirm', what: null });
      return input !== 'q';
    }
    if (input === 'l' && logOf(this.state)) {
      if (this.state.logView) this.dispatch({ type: 'log', view: null });
      else void this.showLog();
      return true;
    }
    if (input === 'b' && rollbackOffered(this.state)) {
      this.dispatch({ type: 'confirm', what: 'rollback' });
      return true;
    }
    return false;
  }

  /** The transaction's log in words, as `ferry log` tells it; the newest lines of a very long one. */
  private async showLog(): Promise<void> {
    const log = logOf(this.state);
    if (!log) return;
    const lines: string[] = [];
    let omitted = 0;
    try {
      for await (const event of logEvents(log.file)) {
        const line = logLine(event);
        if (line === null) continue;
        lines.push(line);
        if (lines.length > LOG_VIEW_LINES) {
          lines.shift();
          omitted++;
        }
      }
      this.dispatch({ type: 'log', view: { ...log, lines, omitted } });
    } catch (error) {
      this.dispatch({
        type: 'notice',
        text: `Could not read the log ${log.file}: ${isFerryError(error) ? error.message : String(error)}`,
      });
    }
  }

  /** Back to the release before, with the same engine call as `ferry rollback`; asked first (y). */
  private async rollBack(): Promise<void> {
    const failed =
      this.state.result?.plan.to ?? this.state.candidates[this.state.chosen ?? -1]?.release;
    this.dispatch({ type: 'start', at: Date.now(), operation: 'rollback' });
    this.stopping = new AbortController();
    try {
      const result = await rollback(this.root, {
        signal: this.stopping.signal,
        reason: `from the console, after the install of ${failed ?? 'a bundle'} failed`,
        // What the question on screen named, and nothing else.
        expect: {
          from: this.state.appliance.release,
          to: this.state.appliance.previous?.release ?? null,
        },
        onEvent: (event) => this.dispatch(event),
      });
      this.state = { ...this.state, appliance: applianceView(await openAppliance(this.root)) };
      this.dispatch({ type: 'rolled-back', result });
    } catch (error) {
      await this.failed(error);
    }
  }

  /**
   * The result screen of what did not go ahead, with the appliance read
   * again: another operator may have changed it, and the screen says where
   * it is now.
   */
  private async failed(error: unknown): Promise<void> {
    const now = await openAppliance(this.root).catch(() => null);
    if (now) this.state = { ...this.state, appliance: applianceView(now) };
    // A transaction that began (and is in the history) before the error: where its log is.
    const began = this.state.began;
    const file = began && now ? join(now.paths.logs, `${began}.jsonl`) : null;
    const logged = file !== null && (await stat(file).catch(() => null)) !== null;
    this.dispatch({
      type: 'failed',
      error: failureOf(error),
      ...(began && file && logged ? { log: { transaction: began, file } } : {}),
    });
  }

  /** Text typed while the console asks why an install goes ahead outside the windows. */
  typed(text: string): void {
    if (this.state.reason === null) return;
    // Printable text only: a reason is one line in the history, of at most MAX_REASON_CHARS.
    // Keys typed fast (or a paste) arrive as one chunk: a Backspace (DEL or BS) inside it
    // takes the character before it off, as it would have alone.
    const reason = [...this.state.reason];
    for (const char of text) {
      if (char === '\x7f' || char === '\b') reason.pop();
      else if (!/\p{C}/u.test(char)) reason.push(char);
    }
    this.dispatch({ type: 'reason', text: reason.slice(0, MAX_REASON_CHARS).join('') });
    if (reason.length > MAX_REASON_CHARS)
      this.dispatch({
        type: 'notice',
        text: `A reason is at most ${MAX_REASON_CHARS} characters: the rest was not taken.`,
      });
  }

  /** Enter records the reason and installs; Esc goes back; Backspace takes a character off. */
  private answer(input: string): void {
    const reason = this.state.reason ?? '';
    if (input === 'escape') this.dispatch({ type: 'reason', text: null });
    else if (input === 'backspace')
      this.dispatch({ type: 'reason', text: [...reason].slice(0, -1).join('') });
    else if (input === 'enter') {
      const file =
        this.state.chosen === null ? undefined : this.state.candidates[this.state.chosen];
      if (reason.trim() === '')
        this.dispatch({ type: 'notice', text: 'Type why first: the reason is recorded.' });
      else if (file) void this.apply(file.file, { now: true, reason: reason.trim() });
    } else if (input.length === 1) this.typed(input);
  }

  /**
   * Finds the bundles again, as at start: on r (saying so), or when the
   * media changed. The bundle on screen stays chosen while it is there.
   */
  async lookAgain(asked: boolean): Promise<void> {
    if (!this.search || this.looking || this.state.screen !== 'choose') return;
    this.looking = true;
    try {
      const { media, mountPoints } = this.search;
      const appliance = await openAppliance(this.root);
      const candidates = await discover(appliance, media, mountPoints);
      const searched = await searchedFolders(media, mountPoints);
      this.dispatch({ type: 'found', candidates, searched });
      if (asked)
        this.dispatch({
          type: 'notice',
          text: `Looked again in ${searched.filter((s) => s.present).length} folder(s): ${candidates.length} bundle(s) found.`,
        });
    } catch (error) {
      this.dispatch({
        type: 'notice',
        text: `Could not look again: ${isFerryError(error) ? error.message : String(error)}`,
      });
    } finally {
      this.looking = false;
    }
  }

  /**
   * Looks again whenever the mount table or a searched folder changes,
   * checking every `everyMs`; returns the function that stops watching.
   */
  watchMedia(baseline: string, everyMs = 2000): () => void {
    if (!this.search) return () => undefined;
    const folders = mediaFolders(this.search);
    let last = baseline;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.state.screen !== 'choose') return;
      busy = true;
      void mediaFingerprint(folders)
        .then(async (now) => {
          if (now !== last) await this.lookAgain(false);
          last = now;
        })
        .finally(() => {
          busy = false;
        });
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Reads the maintenance windows again at every turn of the minute (when a
   * window opens or closes), so an operator who waits sees it open; returns
   * the function that stops it.
   */
  watchWindow(config: ApplianceConfig, clock: () => Date = () => new Date()): () => void {
    let timer: NodeJS.Timeout | undefined;
    const nextMinute = (): void => {
      timer = setTimeout(
        () => {
          if (this.state.screen === 'choose')
            this.dispatch({ type: 'window', window: windowView(config, clock()) });
          nextMinute();
        },
        MINUTE - (clock().getTime() % MINUTE),
      );
      timer.unref();
    };
    nextMinute();
    return () => clearTimeout(timer);
  }

  /**
   * Ctrl-C, SIGTERM or SIGHUP: during an install, asks it to stop at its next
   * safe point and roll back (the screen stays until the result), at once where
   * it waits for a volume; otherwise quits.
   */
  interrupt(signal: NodeJS.Signals): void {
    if (this.state.screen !== 'installing') {
      this.quit();
      return;
    }
    if (this.stopping?.signal.aborted === false) this.stopping.abort(signal);
    // Waiting for a volume is a safe point with nothing changed: stop there, as q does.
    // Left waiting, the install would stop only when someone answers, and after SIGHUP
    // (the terminal closed) nobody can: the process ended with the transaction open.
    if (this.waiting) {
      const { reject } = this.waiting;
      this.waiting = null;
      this.dispatch({ type: 'volume', wanted: null });
      reject();
    }
  }

  private quit(): void {
    this.quitting = true;
    this.checking?.stop.abort(new FerryError('E_USAGE', 'the operator quit the console'));
    this.onQuit();
  }

  /** Resolves once nothing the console started is still under way (a stopped copy removed). */
  async settled(): Promise<void> {
    await this.checking?.done;
  }

  /**
   * The bundle needs the newer Ferry it carries: checks that installer
   * against the signed metadata and copies it to the appliance while the
   * screen shows so (a mismatch ends on the result screen, nothing changed),
   * then closes the screen for runConsole to hand over. The newer Ferry
   * plans the bundle itself: this one may misread it.
   */
  private handOver(bundle: string): void {
    this.dispatch({ type: 'hand-over' });
    const stop = new AbortController();
    const done = (async () => {
      try {
        const carried = await carriedInstaller({ bundle, root: this.root, signal: stop.signal });
        if (!carried)
          throw new FerryError('E_INTERNAL', `${bundle} needs no newer Ferry after all`);
        if (this.quitting) return;
        this.checking = null;
        this.handOverTo = { bundle, carried };
        this.quit();
      } catch (error) {
        if (!stop.signal.aborted) this.dispatch({ type: 'failed', error: failureOf(error) });
      }
    })();
    this.checking = { stop, done };
  }

  private async apply(
    bundle: string,
    /** Outside the maintenance windows, where the appliance allows it: recorded with the operator's reason. */
    outside: { now?: true; reason?: string } = {},
  ): Promise<void> {
    this.dispatch({ type: 'start', at: Date.now() });
    this.stopping = new AbortController();
    const shown = this.state.appliance.release;
    // While it waits for a volume nothing but the terminal keeps this process alive: a
    // terminal closed there would end it before SIGHUP could stop the install, its
    // transaction left open. This keeps it until the install has its result.
    const alive = setInterval(() => undefined, 60_000);
    try {
      await install({
        bundle,
        root: this.root,
        ...outside,
        // What runs is what the operator chose from: the release on screen,
        // checked under the lock, as the console's rollback does.
        confirm: (plan) => {
          if (plan.from === shown) return Promise.resolve();
          return Promise.reject(
            new FerryError(
              'E_APPLIANCE_CHANGED',
              `${this.root} is at ${plan.from ?? '(empty)'}, no longer at ${shown ?? '(empty)'} as the screen showed when ${plan.to} was chosen`,
              {
                hint: 'another install or rollback ran meanwhile: quit, open the console again and decide again',
              },
            ),
          );
        },
        onEvent: (event) => this.dispatch(event),
        signal: this.stopping.signal,
        ask: this.askForVolume,
      });
      const after = await openAppliance(this.root);
      this.state = { ...this.state, appliance: applianceView(after) };
      this.dispatch({ type: 'notice', text: '' });
    } catch (error) {
      await this.failed(error);
    } finally {
      clearInterval(alive);
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
  const size = useTerminalSize();
  // Names, notes and messages come from bundles: nothing in them may drive the terminal.
  const shown = useMemo(() => printableDeep(state), [state]);
  const { offset, maxOffset, bodyRows } = layout(shown, size);
  useInput((input, key) => {
    // A line feed is Enter too: what a terminal sends for it before ink turns raw mode on.
    const enter = key.return || input === '\n';
    const page = Math.max(1, bodyRows - 1);
    const scroll = key.upArrow
      ? offset - 1
      : key.downArrow
        ? offset + 1
        : key.pageUp
          ? offset - page
          : key.pageDown
            ? offset + page
            : key.home
              ? 0
              : key.end
                ? maxOffset
                : null;
    if (key.ctrl && input === 'c') controller.interrupt('SIGINT');
    // The controller's state, not this render's: keys typed at once after Enter opened
    // the prompt can arrive before the handler of the render that shows it is in place.
    else if (
      controller.state.reason !== null &&
      !enter &&
      !key.escape &&
      !key.backspace &&
      !key.delete
    )
      controller.typed(input);
    else if (scroll !== null)
      controller.dispatch({
        type: 'scroll',
        to: scroll >= maxOffset ? (state.screen === 'installing' ? 'end' : maxOffset) : scroll,
      });
    else if (enter) controller.key('enter');
    else if (key.escape) controller.key('escape');
    else if (key.backspace || key.delete) controller.key('backspace');
    else if (key.leftArrow) controller.key('left');
    else if (key.rightArrow || key.tab) controller.key('right');
    else controller.key(input);
  });
  return <ConsoleView state={shown} size={size} />;
}

/** The terminal's size, following resizes; unbounded height where there is no terminal (tests). */
function useTerminalSize(): Size {
  const { stdout } = useStdout();
  const [size, setSize] = useState(() => sizeOf(stdout));
  useEffect(() => {
    const resized = () => setSize(sizeOf(stdout));
    stdout.on('resize', resized);
    return () => {
      stdout.off('resize', resized);
    };
  }, [stdout]);
  return size;
}

function sizeOf(stdout: NodeJS.WriteStream): Size {
  return { columns: stdout.columns || 80, rows: stdout.rows || Number.POSITIVE_INFINITY };
}

/** Every folder the console searches: the media given and the usual mount points. */
function mediaFolders(search: {
  media: readonly string[];
  mountPoints?: readonly string[];
}): string[] {
  return [...search.media, ...(search.mountPoints ?? USUAL_MOUNT_POINTS)];
}

export async function runConsole(options: ConsoleOptions): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new FerryError('E_USAGE', 'ferry console needs a terminal', {
      hint: `without one, use: ferry install BUNDLE --root ${options.root} --yes`,
    });
  }
  const appliance = await openAppliance(options.root);
  // Taken before the first look, so that a bundle copied while it runs counts as a change.
  const baseline = await mediaFingerprint(mediaFolders(options));
  const candidates = await discover(appliance, options.media, options.mountPoints);
  const searched = await searchedFolders(options.media, options.mountPoints);
  const controller = new ConsoleController(
    initialState(applianceView(appliance), candidates, searched),
    options.root,
    options,
  );
  const stopWatching = controller.watchMedia(baseline);
  const stopClock = controller.watchWindow(appliance.config);
  // Ctrl-C comes as a key (raw mode) and must not unmount the screen while an install goes on.
  const instance = render(<ConsoleApp controller={controller} />, { exitOnCtrlC: false });
  controller.onQuit = () => instance.unmount();
  const onSignal = (signal: NodeJS.Signals): void => controller.interrupt(signal);
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    await instance.waitUntilExit();
    // q while the carried installer was being copied: its partial copy is removed before we exit.
    await controller.settled();
  } finally {
    stopWatching();
    stopClock();
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
  const { result, rolledBack, error } = controller.state;
  if (error) return 1;
  const last = rolledBack ?? result;
  return last ? exitCodeOf(last) : 0;
}

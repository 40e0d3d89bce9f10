import type { InstallEvent } from '../installer/engine/events.js';
import { printable } from '../manifest-schema/printable.js';
import { bytes } from './format.js';

/** How often a plain (non-terminal) progress line is printed at most apart, when the 10 % steps are slower. */
const PLAIN_EVERY_MS = 5000;
/** How often the live line is redrawn at most. */
const LIVE_EVERY_MS = 100;

export interface Meter {
  update(bytes: number): void;
  /** Ends the line: the last count shown is the total. */
  done(): void;
  /** Erases the live line and draws nothing until `resume`: a question is on the terminal. */
  pause(): void;
  /** Draws the live line again where the question left the cursor. */
  resume(): void;
}

/**
 * Bytes done of a known total, on stderr. On a terminal one line is redrawn
 * in place with the time left; elsewhere (a CI log, a file) a plain line is
 * printed every 10 % or every few seconds, with no carriage returns. Ferry
 * draws no colour, so NO_COLOR changes nothing here: progress stays.
 */
export function meter(
  label: string,
  total: number,
  live = process.stderr.isTTY === true,
  clock: () => number = Date.now,
): Meter {
  const started = clock();
  let shown = -Infinity;
  let shownTenth = -1;
  let last = 0;
  let finished = false;
  let paused = false;
  const line = (done: number): string => {
    const percent = total > 0 ? Math.floor((100 * done) / total) : 100;
    const elapsed = clock() - started;
    const left =
      done > 0 && done < total && elapsed >= 1000
        ? `, ${duration(((total - done) * elapsed) / done)} left`
        : '';
    return `${label} ${bytes(done)} of ${bytes(total)} (${percent}%)${left}`;
  };
  const draw = (done: number, force: boolean) => {
    if (paused) return;
    const now = clock();
    if (live) {
      if (!force && now - shown < LIVE_EVERY_MS) return;
      process.stderr.write(`\r${line(done)}\x1b[K`);
    } else {
      const tenth = total > 0 ? Math.floor((10 * done) / total) : 10;
      if (!force && tenth === shownTenth && now - shown < PLAIN_EVERY_MS) return;
      shownTenth = tenth;
      process.stderr.write(`${line(done)}\n`);
    }
    shown = now;
  };
  return {
    update(done) {
      last = done;
      draw(done, false);
    },
    done() {
      if (finished) return;
      finished = true;
      if (live || last < total) draw(total, true);
      if (live) process.stderr.write('\n');
    },
    pause() {
      if (paused || finished) return;
      paused = true;
      // A redraw starts with a carriage return: it would wipe the question written after the count.
      if (live && shown !== -Infinity) process.stderr.write('\r\x1b[K');
    },
    resume() {
      if (!paused) return;
      paused = false;
      if (!finished && shown !== -Infinity) draw(last, true);
    },
  };
}

/**
 * A meter for a transfer (pull, publish) only when stderr is a terminal: a
 * person waits on a 4 GiB download, while a CI log gains nothing from ten
 * lines of it (the command's own output names what moved).
 */
export function terminalMeter(label: string): ReturnType<typeof meterOf> | undefined {
  return process.stderr.isTTY === true ? meterOf(label) : undefined;
}

/** A progress callback that draws a meter, made when the total is first known. */
export function meterOf(label: string): {
  onProgress: (done: number, total: number) => void;
  done(): void;
} {
  let drawn: Meter | undefined;
  return {
    onProgress(done, total) {
      drawn ??= meter(label, total);
      drawn.update(done);
    },
    done: () => drawn?.done(),
  };
}

function duration(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

export interface ProgressPrinter {
  show(event: InstallEvent): void;
  /**
   * A question goes on the terminal: the staging line is erased and nothing
   * is printed until `resume`, so the question stays the last line, the
   * cursor after it (the engine goes on with what it has while it waits).
   */
  hold(): void;
  /** The answer is in: what came meanwhile is printed, in order. */
  resume(): void;
}

/**
 * What a person sees of the engine's events on stderr: plain lines, and the
 * staging bytes through a meter (redrawn on a terminal, plain lines elsewhere).
 */
export async function progressPrinter(): Promise<ProgressPrinter> {
  // The words are the log's (ferry log, the console): loaded with the installer, never before.
  const { describeEvent } = await import('../installer/log.js');
  let staging: Meter | undefined;
  let total = 0;
  let held: InstallEvent[] | null = null;
  const printer: ProgressPrinter = {
    hold() {
      if (held) return;
      held = [];
      staging?.pause();
    },
    resume() {
      const waiting = held;
      if (!waiting) return;
      held = null;
      staging?.resume();
      for (const event of waiting) printer.show(event);
    },
    show(event) {
      if (held) {
        held.push(event);
        return;
      }
      if (event.type === 'plan') total = event.plan.stageBytes;
      if (event.type === 'progress') {
        staging ??= meter('   staging', total);
        // The engine counts the bytes of every component so far, not of this one.
        staging.update(event.bytes);
        return;
      }
      const line = describeEvent(event);
      if (line === null) return;
      staging?.done();
      staging = undefined;
      process.stderr.write(`${printable(line)}\n`);
    },
  };
  return printer;
}

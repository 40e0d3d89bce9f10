import type { InstallEvent } from '../installer/engine/events.js';
import { bytes } from './format.js';

/**
 * What a person sees of the engine's events on stderr: plain lines (what the
 * log of a CI job shows); on a terminal, staging progress also redraws one
 * line in place (a log file or CI gets no carriage returns).
 */
export function progressPrinter(): { show(event: InstallEvent): void } {
  const live = process.stderr.isTTY === true && process.env.NO_COLOR === undefined;
  let drawn = false;
  return {
    show(event) {
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

/** One plain line per event worth a line. */
function formatEvent(event: InstallEvent): string | null {
  switch (event.type) {
    case 'plan':
    case 'begin':
      return null;
    case 'warning':
      return `warning: ${event.message}`;
    case 'interrupt':
      return `ferry: ${event.message}`;
    case 'pass':
      return event.status === 'start' ? `== ${event.pass}` : null;
    case 'step':
      if (event.status === 'start') return `   ${event.component}: ${event.detail ?? event.pass}…`;
      if (event.status === 'failed') return `   ${event.component}: FAILED ${event.detail ?? ''}`;
      return null;
    case 'output':
      return null;
    case 'progress':
      return null;
    case 'result':
      return null;
  }
}

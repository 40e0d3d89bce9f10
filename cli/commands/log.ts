import { printable } from '../../manifest-schema/printable.js';
import { jsonOption, root, rootOption, usageError, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry log [TRANSACTION] [--root R]',
  summary:
    "a transaction's log in words (the newest when none is named); the JSONL stays for machines",
  options: { ...rootOption, ...jsonOption },
  async run({ values, positionals }) {
    if (positionals.length > 1) throw usageError(`unexpected argument ${positionals[1]}`);
    const { findTransaction, logEvents, logLine } = await import('../../installer/log.js');
    const found = await findTransaction(root(values), positionals[0]);
    const { entry } = found;
    const outcome = entry
      ? `${entry.operation} ${entry.from ?? '(empty)'} → ${entry.to ?? '?'}: ${entry.outcome}${entry.failure ? ` (${entry.failure.component ?? 'the bundle'}, ${entry.failure.pass} pass: ${entry.failure.status})` : ''}`
      : 'no outcome recorded: it is running, or was cut short (ferry recover resolves it)';
    const json = {
      transaction: found.id,
      log: found.file,
      outcome: entry?.outcome ?? null,
      from: entry?.from ?? null,
      to: entry?.to ?? null,
    };
    if (values.json === true) return { json, human: '' };
    // Streamed as read: a log holds every line every artifact printed. The file holds
    // their control characters as JSON escapes; decoded, they are escaped again here.
    process.stdout.write(`Transaction ${found.id} (${printable(found.file)})\n`);
    for await (const event of logEvents(found.file)) {
      // A reader that went away (`ferry log | head`) has read all it wants.
      if (process.stdout.destroyed) break;
      const line = logLine(event);
      if (line !== null && !process.stdout.write(`${printable(line)}\n`))
        await drained(process.stdout);
    }
    return { json, human: `Outcome: ${outcome}` };
  },
};

/**
 * Until the stream can take more, or will take nothing more: events.once(stream,
 * 'drain') rejects with the EPIPE of a reader that closed, which is no error here.
 */
function drained(stream: NodeJS.WritableStream & { destroyed: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done).off('close', done).off('error', done);
      resolve();
    };
    if (stream.destroyed) resolve();
    else stream.on('drain', done).on('close', done).on('error', done);
  });
}

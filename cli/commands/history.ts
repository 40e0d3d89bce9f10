import type { HistoryResult } from '../../repository/model.js';
import { flag, optional, type Command } from '../args.js';
import { REPO_FLAGS, repoOf, repoOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry history --repo REPO [--channel C] [--verify] ${REPO_FLAGS}`,
  summary:
    "a bundle repository's audit timeline, newest first; --verify checks the hash chain and names an edited event",
  options: {
    ...repoOptions,
    verify: {
      type: 'boolean',
      help: 'check the hash chain and every signature; name the first edited event',
    },
    channel: { type: 'string', arg: 'C', help: "only channel C's events" },
  },
  async run({ values }) {
    const { history } = await import('../../repository/model.js');
    const channel = optional(values, 'channel');
    const result = await history({
      ...repoOf(values),
      verify: flag(values, 'verify'),
      ...(channel !== undefined ? { channel } : {}),
    });
    return { json: result, human: formatHistory(result) };
  },
};

function formatHistory(result: HistoryResult): string {
  const lines = result.events.map((event) => {
    const s = event.subject;
    const what =
      event.op === 'promote' || event.op === 'rollback'
        ? `${event.op} ${s.version} ${s.from ? `${s.from} → ` : '→ '}${s.to}${s.reason ? ` (${s.reason})` : ''}`
        : event.op === 'publish'
          ? `publish ${s.version}${s.channel ? ` into ${s.channel}` : ''}`
          : event.op === 'approve'
            ? `${s.by ?? '?'} approved ${s.version} ${s.from} → ${s.to}${event.evidence.length ? ` with ${event.evidence.map((e) => e.name).join(', ')}` : ''}`
            : event.op === 'trust'
              ? `took trust root version ${String(s.root)}`
              : event.op === 'gc'
                ? `gc removed ${(s.removed ?? []).join(', ') || 'nothing'}${s.swept?.length ? `; swept ${s.swept.length} bundle ${s.swept.length === 1 ? 'copy' : 'copies'} no version named` : ''}`
                : event.op;
    return `#${event.seq}  ${event.time}  ${event.actor.padEnd(12)}  ${what}${event.ci ? `  [${event.ci}]` : ''}`;
  });
  if (lines.length === 0) lines.push('no events');
  if (result.verified)
    lines.push(
      '',
      `chain verified: ${result.events.length} event(s), every link and signature holds`,
    );
  return lines.join('\n');
}

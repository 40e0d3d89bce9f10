/**
 * `1h30m`, the form a spec gives an estimate in: how the CLI and the console
 * both say a declared duration, so an operator reads it as it was written.
 */
export function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || seconds === 0 ? `${s}s` : ''}`;
}

import { afterEach, describe, expect, it, vi } from 'vitest';
import { meter, progressPrinter } from '../../cli/progress.js';
import type { InstallEvent } from '../../installer/engine/events.js';

// The meter's rules, on a clock the test moves: what a CI log and a terminal get.

let written: string[] = [];
afterEach(() => vi.restoreAllMocks());

function capture(): void {
  written = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
}

describe('meter', () => {
  it('without a terminal: a plain line per 10 %, or every 5 s while it is slower', () => {
    capture();
    let now = 0;
    const m = meter('verify', 1000, false, () => now);
    for (let done = 10; done <= 1000; done += 10) {
      now += 10;
      m.update(done);
    }
    // 0 % (the first), then each tenth from 10 % to 100 %
    expect(written).toHaveLength(11);
    expect(written.every((line) => line.endsWith('\n') && !line.includes('\r'))).toBe(true);
    expect(written.at(-1)).toBe('verify 1000 B of 1000 B (100%)\n');
    m.done();
    expect(written).toHaveLength(11);

    capture();
    now = 0;
    const slow = meter('stage', 1000, false, () => now);
    slow.update(1);
    now += 4000;
    slow.update(2);
    now += 1500;
    slow.update(3);
    expect(written).toHaveLength(2);
    expect(written[1]).toMatch(/^stage 3 B of 1000 B \(0%\), \d+ min \d+ s left\n$/);
    slow.done();
    expect(written.at(-1)).toBe('stage 1000 B of 1000 B (100%)\n');
  });

  it('on a terminal: one line redrawn in place, with the time left, ended by done', () => {
    capture();
    let now = 0;
    const m = meter('build', 2000, true, () => now);
    m.update(0);
    now += 50;
    m.update(100); // too soon to redraw
    now += 2000;
    m.update(1000);
    m.done();
    expect(written[0]).toMatch(/^\r/);
    expect(written).toHaveLength(4);
    expect(written[1]).toBe('\rbuild 1000 B of 2.0 KiB (50%), 3 s left\x1b[K');
    expect(written[2]).toBe('\rbuild 2.0 KiB of 2.0 KiB (100%)\x1b[K');
    expect(written[3]).toBe('\n');
  });
});

describe('the install progress printer', () => {
  it('shows the bytes staged of all components, never past the total', async () => {
    const printer = await progressPrinter();
    capture();
    printer.show({ type: 'plan', plan: { stageBytes: 6 } } as InstallEvent);
    // As the engine sends them: each event carries the bytes staged so far, all components together.
    printer.show({ type: 'progress', component: 'a', bytes: 3, total: 6 });
    printer.show({ type: 'progress', component: 'b', bytes: 6, total: 6 });
    expect(written.at(-1)).toBe('   staging 6 B of 6 B (100%)\n');
    expect(written.join('')).not.toMatch(/\((1[1-9]\d|[2-9]\d\d)%\)/);
  });
});

describe('a question on the terminal', () => {
  it('the live line is erased for it and drawn again after, its count kept', () => {
    capture();
    let now = 0;
    const m = meter('stage', 1000, true, () => now);
    m.update(10);
    m.pause();
    now += 500;
    m.update(500);
    expect(written).toEqual(['\rstage 10 B of 1000 B (1%)\x1b[K', '\r\x1b[K']);
    m.resume();
    expect(written.at(-1)).toBe('\rstage 500 B of 1000 B (50%)\x1b[K');
  });

  it('the printer prints nothing while it is up, then what came meanwhile, in order', async () => {
    const printer = await progressPrinter();
    capture();
    printer.show({ type: 'plan', plan: { stageBytes: 6 } } as InstallEvent);
    printer.show({ type: 'progress', component: 'a', bytes: 3, total: 6 });
    const before = written.length;
    printer.hold();
    printer.show({ type: 'progress', component: 'b', bytes: 6, total: 6 });
    printer.show({ type: 'warning', message: 'meanwhile' });
    expect(written).toHaveLength(before);
    printer.resume();
    expect(written.slice(before).join('')).toMatch(/staging 6 B of 6 B \(100%\)\n.*meanwhile\n$/s);
  });
});

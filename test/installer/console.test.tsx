import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { windowView } from '../../installer/console/discover.js';
import {
  chooseNewest,
  initialState,
  reduce,
  type Candidate,
  type ConsoleEvent,
  type ConsoleState,
} from '../../installer/console/model.js';
import { ConsoleController } from '../../installer/console/run.js';
import { ConsoleView, layout, wrap } from '../../installer/console/view.js';
import type { InstallResult } from '../../installer/engine/events.js';
import { NO_CONTROLS, plan, type ApplianceFacts, type Plan } from '../../installer/plan.js';
import type { ApplianceConfig, BundleMetadata } from '../../manifest-schema/index.js';

const empty = { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] };
const meta: BundleMetadata = {
  formatVersion: 1,
  kind: 'update',
  product: 'acme-appliance',
  release: {
    version: '1.3.0',
    createdAt: '2026-01-01T00:00:00Z',
    notes: 'Retires the legacy agent.',
  },
  platform: { name: 'acme-os', range: '>=7.2.0 <8.0.0' },
  target: { db: '4.0.0', web: '1.0.1' },
  supportedFrom: [{ version: '1.0.0', components: { db: '3.0.0', web: '1.0.0', agent: '0.9.0' } }],
  changes: [
    {
      id: 'DB-20',
      kind: 'update',
      summary: 'partitioned event tables',
      component: 'db',
      version: '4.0.0',
    },
    { id: 'WEB-7', kind: 'fix', summary: 'readable links', component: 'web', version: '1.0.1' },
  ],
  components: {
    db: {
      version: '4.0.0',
      requires: {},
      artifacts: empty,
      payload: { type: 'included', size: 2048, files: [] },
    },
    web: {
      version: '1.0.1',
      requires: { db: '^4.0.0' },
      artifacts: empty,
      payload: { type: 'included', size: 1024, files: [] },
    },
  },
  removed: { agent: { artifacts: { remove: [] } } },
  verification: [],
};
const facts: ApplianceFacts = {
  product: 'acme-appliance',
  platform: { name: 'acme-os', version: '7.2.1' },
  release: '1.0.0',
  verified: true,
  highestRelease: '1.0.0',
  components: {
    db: { version: '3.0.0', requires: {} },
    web: { version: '1.0.0', requires: { db: '^3.0.0' } },
    agent: { version: '0.9.0', requires: {} },
  },
};
const appliance = {
  product: 'acme-appliance',
  platform: 'acme-os 7.2.1',
  release: '1.0.0',
  verified: true,
  components: { db: '3.0.0', web: '1.0.0', agent: '0.9.0' },
  window: { open: true } as const,
  previous: null,
};
const controls = { force: [], skip: [], delete: [], allowDowngrade: false, partial: false };

function candidate(overrides: Partial<Candidate> = {}): Candidate {
  return {
    file: '/media/usb/acme-appliance-1.3.0-update.tar',
    product: 'acme-appliance',
    release: '1.3.0',
    kind: 'update',
    notes: 'Retires the legacy agent.',
    plan: plan(facts, meta, controls),
    problem: null,
    signature: {
      keys: [{ keyid: '325a2101dc07c22a9f00', name: 'release' }],
      threshold: 1,
      rootVersion: 1,
      walkedFrom: null,
    },
    ...overrides,
  };
}

function frame(state: ConsoleState): string {
  const { lastFrame, unmount } = render(<ConsoleView state={state} />);
  const text = lastFrame() ?? '';
  unmount();
  return text;
}

function after(state: ConsoleState, events: ConsoleEvent[]): ConsoleState {
  return events.reduce(reduce, state);
}

/** A bundle of `count` new components, for an empty appliance: a plan too long for one screen. */
function many(count: number): Candidate {
  const names = Array.from(
    { length: count },
    (_, i) => `component-${String(i + 1).padStart(2, '0')}`,
  );
  const big: BundleMetadata = {
    ...meta,
    kind: 'install',
    target: Object.fromEntries(names.map((n) => [n, '1.0.0'])),
    supportedFrom: [],
    changes: [],
    removed: {},
    components: Object.fromEntries(
      names.map((n) => [
        n,
        {
          version: '1.0.0',
          requires: {},
          artifacts: empty,
          payload: { type: 'included', size: 1, files: [] },
        },
      ]),
    ),
  };
  const empty_: ApplianceFacts = { ...facts, release: null, highestRelease: null, components: {} };
  return candidate({ kind: 'install', plan: plan(empty_, big, controls) });
}

describe('console screens on a terminal of a given size', () => {
  const emptyAppliance = { ...appliance, release: null, components: {} };

  it.each([
    [80, 24],
    [110, 45],
  ])('%i×%i: the top stays, the plan scrolls below it, the footer says where', (columns, rows) => {
    const size = { columns, rows };
    let state = initialState(emptyAppliance, [many(40)]);
    const seen = new Set<string>();
    for (;;) {
      const shown = layout(state, size);
      const lines = [...shown.top, ...shown.body, ...shown.bottom, shown.footer];
      expect(lines.length).toBeLessThanOrEqual(rows);
      for (const line of lines) expect([...line.text].length).toBeLessThanOrEqual(columns);
      expect(shown.top[0]?.text).toBe('Ferry console — acme-appliance on acme-os 7.2.1');
      expect(shown.top[2]?.text).toBe('✔ Update ready: acme-appliance 1.3.0 (install)');
      expect(shown.footer.text).toContain('[↑↓ PgUp/Dn] scroll');
      expect(shown.footer.text).toMatch(shown.offset < shown.maxOffset ? /▼/ : /^[^▼]*$/);
      expect(shown.footer.text).toMatch(shown.offset > 0 ? /▲/ : /^[^▲]*$/);
      for (const line of shown.body) seen.add(line.text);
      if (shown.offset === shown.maxOffset) break;
      state = reduce(state, { type: 'scroll', to: shown.offset + shown.bodyRows - 1 });
    }
    // Every row was on screen at some step, the last one too.
    for (let i = 1; i <= 40; i++)
      expect(
        [...seen].some((text) => text.includes(`component-${String(i).padStart(2, '0')}`)),
      ).toBe(true);
    expect([...seen]).toContain('  Stages 40 B of payload.');
  });

  it('a long line wraps under its column instead of being cut', () => {
    const rows = layout(
      initialState(appliance, [candidate({ notes: 'word '.repeat(40).trim() })]),
      { columns: 80, rows: 24 },
    ).body;
    const notes = rows.filter((row) => row.text.includes('word'));
    expect(notes.length).toBe(3);
    expect(notes.map((row) => row.text.split(' ').filter((w) => w === 'word').length)).toEqual([
      15, 15, 10,
    ]);
    // The notes' rows, wrapped ones too, stay behind their quote.
    for (const row of notes) expect(row.text).toMatch(/^ {2}│ word/);
    // A message's own line breaks are rows too: each row is counted, none is longer.
    expect(wrap({ text: 'first\nsecond line', indent: 2 }, 80).map((row) => row.text)).toEqual([
      'first',
      '  second line',
    ]);
  });
});

describe('console screens', () => {
  it('found bundles: the newest applicable one is chosen, the others listed with why', () => {
    const older = candidate({
      file: '/media/usb/acme-appliance-1.1.0-update.tar',
      release: '1.1.0',
    });
    const untrusted = candidate({
      file: '/media/usb/rogue.tar',
      release: '9.9.9',
      plan: null,
      problem: { code: 'E_SIGNATURE', message: 'not signed by keys this appliance trusts' },
    });
    const text = frame(initialState(appliance, [older, candidate(), untrusted]));
    expect(text).toContain('Installed: 1.0.0');
    expect(text).toContain('Update ready: acme-appliance 1.3.0 (update)');
    expect(text).toContain('acme-appliance-1.1.0-update.tar: 1.1.0, ready, older than 1.3.0');
    expect(text).toContain('rogue.tar: E_SIGNATURE: not signed by keys this appliance trusts');
    expect(text).toContain('[Enter] apply');
  });

  it('a bundle that needs a newer Ferry: Enter hands over to the one it carries, or the screen says why it cannot', () => {
    const needs = (carried: string | null): Candidate =>
      candidate({
        plan: null,
        problem: {
          code: 'E_INSTALLER_TOO_OLD',
          message: '/media/usb/acme-appliance-1.3.0-update.tar needs Ferry 9.0.0 or newer',
        },
        needs: { version: '9.0.0', carried, hint: carried ? '' : 'run Ferry 9.0.0 or newer' },
      });
    const carries = frame(initialState(appliance, [needs('9.1.0')]));
    expect(carries).toContain('it needs Ferry 9.0.0 or newer: acme-appliance 1.3.0');
    expect(carries).toContain('It carries Ferry 9.1.0.');
    expect(carries).toContain('[Enter] hand over to Ferry 9.1.0');
    expect(carries).not.toContain('[Enter] apply');
    const none = frame(initialState(appliance, [needs(null)]));
    expect(none).toContain('E_INSTALLER_TOO_OLD: /media/usb/acme-appliance-1.3.0-update.tar needs');
    expect(none).toContain('What to do: run Ferry 9.0.0 or newer');
    expect(none).not.toContain('[Enter]');
    // Listed among the others: in short, without the message's repeat of the file name.
    const ready = candidate({ file: '/media/usb/acme-appliance-1.2.0-update.tar' });
    const among = (carried: string | null) =>
      layout(initialState(appliance, [ready, needs(carried)]), { columns: 200, rows: 100 })
        .body.map((line) => line.text)
        .filter((text) => text.includes('acme-appliance-1.3.0-update.tar'));
    expect(among('9.1.0')).toEqual([
      expect.stringMatching(
        /^ +\/media\/usb\/acme-appliance-1\.3\.0-update\.tar: 1\.3\.0, needs Ferry 9\.0\.0; carries it: choose it to hand over$/,
      ),
    ]);
    expect(among(null)).toEqual([
      expect.stringMatching(
        /^ +\/media\/usb\/acme-appliance-1\.3\.0-update\.tar: 1\.3\.0, needs Ferry 9\.0\.0 and carries none that runs here$/,
      ),
    ]);
    expect(
      frame(reduce(initialState(appliance, [needs('9.1.0')]), { type: 'hand-over' })),
    ).toContain('this console closes and Ferry 9.1.0');
  });

  it('←/→ and a rescan treat a bundle that needs a newer Ferry as one to choose', () => {
    const ready = candidate();
    const newer = candidate({
      file: '/media/usb/acme-appliance-1.2.0-update.tar',
      release: '1.2.0',
      plan: null,
      problem: { code: 'E_INSTALLER_TOO_OLD', message: 'needs Ferry 9.0.0 or newer' },
      needs: { version: '9.0.0', carried: '9.1.0', hint: '' },
    });
    let state = initialState(appliance, [ready, newer]);
    expect(state.chosen).toBe(0);
    expect(layout(state, { columns: 80, rows: 24 }).footer.text).toContain(
      '[Enter] apply [←→] bundle',
    );
    state = reduce(state, { type: 'choose', step: 1 });
    expect(state.chosen).toBe(1);
    const small = layout(state, { columns: 80, rows: 24 });
    expect(small.top.map((line) => line.text).join('\n')).toContain(
      'Bundle found, but it needs Ferry 9.0.0 or newer: acme-appliance 1.2.0',
    );
    expect(small.footer.text).toContain('[Enter] hand over to Ferry 9.1.0 [←→] bundle');
    // Found again in another order: the bundle on screen stays chosen.
    state = reduce(state, { type: 'found', candidates: [newer, ready], searched: [] });
    expect(state.chosen).toBe(0);
    state = reduce(state, { type: 'hand-over' });
    expect(layout(state, { columns: 80, rows: 24 }).footer.text).toContain('[q] stop here');
    // While it hands over, nothing else is chosen.
    expect(reduce(state, { type: 'choose', step: 1 }).chosen).toBe(0);
  });

  it('plan: release notes, the changes since the installed release by component, and every action with its reason', () => {
    const text = frame(initialState(appliance, [candidate()]));
    expect(text).toContain('Retires the legacy agent.');
    expect(text).toMatch(
      /Changes since 1\.0\.0:\s+db\s+4\.0\.0 update DB-20: partitioned event tables\s+web\s+1\.0\.1 fix\s+WEB-7/,
    );
    // The reason column says what the versions do not, and never repeats them.
    expect(text).toMatch(/db\s+upgrade\s+3\.0\.0 → 4\.0\.0\n/);
    expect(text).toMatch(/agent\s+remove\s+0\.9\.0 → -\s+not in release 1\.3\.0\n/);
    expect(text).toContain('Stages 3.0 KiB of payload.');
  });

  it('blocked: the blocked component and the reason in words; Enter only explains', () => {
    const blocked = candidate({ plan: plan(facts, meta, { ...controls, skip: ['db'] }) });
    let state = initialState(appliance, [blocked]);
    expect(frame(state)).toMatch(
      /web\s+BLOCKED\s+1\.0\.0 → 1\.0\.1\s+web 1\.0\.1 needs db \^4\.0\.0, but db will be 3\.0\.0 \(skipped\)/,
    );
    expect(frame(state)).toContain('Bundle found, but it cannot be applied');
    expect(frame(state)).toContain('What would happen (nothing will: the plan is blocked):');
    // The rows that would act are held back, never drawn as if they would run.
    expect(frame(state)).toMatch(/agent\s+\(remove\)\s+0\.9\.0 → -\s+held back: web blocked/);
    expect(frame(state)).not.toMatch(/agent\s+remove/);
    expect(frame(state)).not.toContain('Stages');
    expect(frame(state)).not.toContain('[Enter] apply');
    state = reduce(state, {
      type: 'notice',
      text: 'Enter does nothing: this bundle cannot be applied here.',
    });
    expect(frame(state)).toContain('Enter does nothing');
  });

  it('progress: passes, a staging bar with bytes and time left, components, and the log', () => {
    const state = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 1000 },
      { type: 'pass', pass: 'pre-validate', status: 'start' },
      {
        type: 'step',
        pass: 'pre-validate',
        component: 'db',
        status: 'start',
        detail: 'check-space.sh',
      },
      {
        type: 'output',
        pass: 'pre-validate',
        component: 'db',
        artifact: 'check-space.sh',
        stream: 'stdout',
        line: 'db: 12 GiB free',
      },
      { type: 'step', pass: 'pre-validate', component: 'db', status: 'done' },
      { type: 'pass', pass: 'pre-validate', status: 'done' },
      { type: 'pass', pass: 'stage', status: 'start' },
      { type: 'step', pass: 'stage', component: 'db', status: 'start' },
      { type: 'progress', component: 'db', bytes: 1536, total: 3072 },
    ]);
    const text = frame(state);
    expect(text).toContain('Installing acme-appliance 1.3.0 (from 1.0.0)');
    expect(text).toMatch(/✔ pre-validate/);
    expect(text).toMatch(/▶ stage\s+█+░+ 1\.5 KiB of 3\.0 KiB/);
    expect(text).toContain('db: 12 GiB free');
  });

  const result = (overrides: Partial<InstallResult>): InstallResult => ({
    verdict: 'ok',
    outcome: 'committed',
    from: '1.0.0',
    to: '1.3.0',
    transaction: 't1',
    log: '/var/lib/ferry/logs/t1.jsonl',
    plan: plan(facts, meta, controls),
    ...overrides,
  });

  it('committed: the new release and where the log is', () => {
    const state = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 0 },
      { type: 'result', result: result({}) },
    ]);
    const text = frame(state);
    expect(text).toContain('✔ COMMITTED: acme-appliance is now at 1.3.0');
    expect(text).toContain('Log: /var/lib/ferry/logs/t1.jsonl');
  });

  it('rolled back: which component and pass failed, the output tail, and that everything was undone', () => {
    const failure = {
      component: 'web',
      pass: 'test' as const,
      artifact: 'check-pages.sh',
      status: 'exited with status 1',
      tail: '! web: test failed on request',
    };
    const state = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 0 },
      { type: 'result', result: result({ outcome: 'rolled-back', failure }) },
    ]);
    const text = frame(state);
    expect(text).toContain(
      '✘ ROLLED BACK: acme-appliance is still at 1.0.0; everything was undone',
    );
    expect(text).toContain('web failed in the test pass (check-pages.sh): exited with status 1');
    expect(text).toContain('web: test failed on request');
  });

  it('rolled back after a remove artifact ran: not that everything was undone', () => {
    const failure = {
      component: null,
      pass: 'test' as const,
      artifact: 'target-state.sh',
      status: 'exited with status 1',
      tail: '',
    };
    const notUndone = [
      { component: 'legacy-agent', artifacts: ['uninstall.sh'], pass: 'remove' as const },
    ];
    const state = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 0 },
      { type: 'result', result: result({ outcome: 'rolled-back', failure, notUndone }) },
    ]);
    // The line wraps at the screen's width.
    const text = frame(state).replace(/\s+/g, ' ');
    expect(text).toContain('remove artifacts of legacy-agent ran and were not undone');
    expect(text).not.toContain('everything was undone');
  });

  it('a rollback stopped before it began says nothing changed, not that the previous record is the one installed', () => {
    const stopped = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 0 },
      {
        type: 'rolled-back',
        result: {
          from: '1.1.0',
          to: '1.0.0',
          forward: false,
          outcome: 'unchanged',
          transaction: null,
          failure: {
            component: null,
            pass: 'rollback',
            artifact: null,
            status: 'interrupted by SIGINT before anything changed',
            tail: '',
          },
        },
      },
    ]);
    const text = frame(stopped);
    expect(text).toContain('= UNCHANGED: still at 1.1.0; nothing was changed');
    expect(text).not.toContain('the previous record is the release installed');
  });

  it('verification failure: the code, what it means and what to do; nothing changed', () => {
    const state = after(initialState(appliance, [candidate()]), [
      { type: 'start', at: 0 },
      {
        type: 'failed',
        error: {
          code: 'E_HASH_MISMATCH',
          message: 'payload/db/bin/dbd does not match its signed sha256',
          hint: 'get the bundle again from its publisher',
        },
      },
    ]);
    const text = frame(state);
    expect(text).toContain('✘ NOT APPLIED: E_HASH_MISMATCH');
    expect(text).toContain('payload/db/bin/dbd does not match its signed sha256');
    expect(text).toContain('What to do: get the bundle again from its publisher');
    expect(text).toContain('The appliance was not changed');
  });

  it('a file name with line feeds (a stick names its files) prints no line of its own and keeps the top its size', () => {
    const fake = '\n✔ COMMITTED: acme-appliance is now at 9.9.9\n';
    const named = (file: string) =>
      initialState(appliance, [
        candidate({ file: `/media/usb/x${file}.tar` }),
        candidate({ file: `/media/usb/y${file}.tar` }),
      ]);
    const plain = layout(named(''), { columns: 100, rows: 40 });
    const hostile = named(fake);
    const shown = layout(hostile, { columns: 100, rows: 40 });
    expect(shown.top.length).toBe(plain.top.length);
    expect(shown.top.filter((line) => line.text.includes('\n'))).toEqual([]);
    const notice = reduce(hostile, {
      type: 'notice',
      text: `Could not look again: /media/usb/z${fake}.tar is gone`,
    });
    for (const state of [hostile, notice]) {
      const rows = frame(state).split('\n');
      expect(rows.filter((row) => /^\s{0,1}✔ COMMITTED/.test(row))).toEqual([]);
    }
    expect(frame(hostile)).toContain(
      'x\\u000a✔ COMMITTED: acme-appliance is now at 9.9.9\\u000a.tar',
    );
  });

  it('the arrow keys move to another readable bundle, skipping unreadable ones', () => {
    const older = candidate({
      file: '/media/usb/acme-appliance-1.1.0-update.tar',
      release: '1.1.0',
    });
    const untrusted = candidate({
      file: '/media/usb/rogue.tar',
      release: '9.9.9',
      plan: null,
      problem: { code: 'E_SIGNATURE', message: 'untrusted' },
    });
    let state = initialState(appliance, [older, candidate(), untrusted]);
    expect(frame(state)).toContain('[←→] bundle');
    expect(frame(state)).toContain('Update ready: acme-appliance 1.3.0');
    state = reduce(state, { type: 'choose', step: 1 });
    expect(frame(state)).toContain('Update ready: acme-appliance 1.1.0');
    state = reduce(state, { type: 'choose', step: 1 });
    expect(frame(state)).toContain('Update ready: acme-appliance 1.3.0');
  });

  it('signature: the keys that signed, and the trust root walked to along the bundle’s chain', () => {
    const walked = candidate({
      signature: {
        keys: [{ keyid: 'aa11bb22cc33dd44ee55' }, { keyid: 'ff66aa77bb88cc99dd00', name: 'ci' }],
        threshold: 2,
        rootVersion: 3,
        walkedFrom: 1,
      },
    });
    expect(frame(initialState(appliance, [walked])).replace(/\s+/g, ' ')).toContain(
      'Signed by keys aa11bb22cc33dd44, ff66aa77bb88cc99 (ci) (2 of 2 needed; trust root version 3, walked from version 1)',
    );
  });

  it('what a bundle declares it costs: duration, restarts and reboot, per row and in total', () => {
    // The planner's own fields, from metadata that declares them.
    const declaring = (web: { estimatedSeconds?: number }): BundleMetadata => ({
      ...meta,
      components: {
        ...meta.components,
        db: {
          ...(meta.components.db as BundleMetadata['components'][string]),
          estimatedSeconds: 45,
          restart: ['dbd'],
          reboot: true,
        },
        web: {
          ...(meta.components.web as BundleMetadata['components'][string]),
          ...web,
          restart: ['nginx'],
        },
      },
    });
    const shown = (metadata: BundleMetadata) =>
      frame(initialState(appliance, [candidate({ plan: plan(facts, metadata, controls) })]));
    const all = shown(declaring({ estimatedSeconds: 555 }));
    expect(all).toMatch(
      /db\s+upgrade\s+3\.0\.0 → 4\.0\.0\s+about 45s; restarts dbd; needs a reboot\n/,
    );
    expect(all).toMatch(/web\s+upgrade\s+1\.0\.0 → 1\.0\.1\s+about 9m15s; restarts nginx\n/);
    expect(all).toContain(
      'Stages 3.0 KiB of payload; about 10m; restarts dbd, nginx; needs a reboot.',
    );
    // An update without an estimate: the total is unknown, never a sum that leaves it out.
    const some = shown(declaring({})).replace(/\s+/g, ' ');
    expect(some).toMatch(/web upgrade 1\.0\.0 → 1\.0\.1 restarts nginx /);
    expect(some).toContain(
      'Stages 3.0 KiB of payload; time unknown: no estimate from web (the rest about 45s); restarts dbd, nginx; needs a reboot.',
    );
    // Nothing declared: the plan reads as it always did.
    expect(shown(meta)).toMatch(/Stages 3\.0 KiB of payload\.\n/);
  });

  it('no bundles: says what to attach', () => {
    expect(frame(initialState(appliance, []))).toContain('No bundle found on the attached media');
  });
});

describe('the maintenance window while the console waits', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('the line saying when the next window opens is read again every minute: it opens on screen', () => {
    // A daily window from 02:00 to 02:05 on the process's clock; the console starts at 01:58:30.
    const config = {
      product: 'acme-appliance',
      platform: { name: 'acme-os', version: '7.2.1' },
      maintenanceWindows: [{ start: '02:00', end: '02:05' }],
    } as ApplianceConfig;
    vi.useFakeTimers({
      now: new Date(2026, 11, 5, 1, 58, 30),
      toFake: ['setTimeout', 'clearTimeout', 'Date'],
    });
    const controller = new ConsoleController(
      initialState({ ...appliance, window: windowView(config) }, [candidate()]),
      '/nowhere',
    );
    const before = vi.getTimerCount();
    const stop = controller.watchWindow(config);
    const top = () =>
      layout(controller.state, { columns: 100, rows: 40 })
        .top.map((line) => line.text)
        .join('\n');
    expect(top()).toMatch(/Outside the maintenance windows: the next opens .*02:00/);
    expect(layout(controller.state, { columns: 100, rows: 40 }).footer.text).not.toContain(
      '[Enter] apply',
    );
    // 01:59: still closed, and the line still says when it opens.
    vi.advanceTimersByTime(60_000);
    expect(controller.state.appliance.window.open).toBe(false);
    // 02:00: open, and Enter applies.
    vi.advanceTimersByTime(60_000);
    expect(controller.state.appliance.window).toEqual({ open: true });
    expect(top()).not.toContain('Outside the maintenance windows');
    expect(layout(controller.state, { columns: 100, rows: 40 }).footer.text).toContain(
      '[Enter] apply',
    );
    // 02:05: closed again, the next opening tomorrow.
    vi.advanceTimersByTime(5 * 60_000);
    expect(top()).toMatch(/Outside the maintenance windows: the next opens .*6 Dec 2026, 02:00/);
    // Once an install runs, the result screen is not redrawn by the clock.
    controller.dispatch({ type: 'start', at: Date.now() });
    const running = controller.state.appliance.window;
    vi.advanceTimersByTime(60 * 60_000);
    expect(controller.state.appliance.window).toBe(running);
    stop();
    expect(vi.getTimerCount()).toBe(before);
  });
});

// chooseNewest is pure: candidates in, the index Enter applies out. A bundle
// is written as `release:state`, where the state is what its plan says.
type State = 'ready' | 'nothing' | 'blocked' | 'untrusted' | 'unreadable' | 'carries' | 'too-old';

function listed(spec: string, at: number): Candidate {
  const [release = '', state] = spec.split(':') as [string, State];
  const planned = (verdict: Plan['verdict'], order: string[]): Plan => ({
    verdict,
    product: 'acme',
    kind: 'update',
    from: '1.0.0',
    to: release,
    reasons: [],
    components: [],
    order,
    changes: [],
    stageBytes: 0,
    estimatedSeconds: 0,
    unestimated: [],
    restart: [],
    reboot: false,
    partial: false,
    reachesTarget: true,
    filesChecked: true,
    controls: NO_CONTROLS,
  });
  const problem = { code: 'E_SIGNATURE', message: 'not signed by keys this appliance trusts' };
  const file = `/media/usb/bundle-${at}.tar`;
  const base = { file, product: 'acme', release, kind: 'update', notes: '', signature: null };
  switch (state) {
    case 'ready':
      return { ...base, plan: planned('ok', ['db']), problem: null };
    case 'nothing':
      return { ...base, plan: planned('ok', []), problem: null };
    case 'blocked':
      return { ...base, plan: planned('blocked', []), problem: null };
    case 'untrusted':
      return { ...base, plan: null, problem };
    case 'unreadable':
      return { ...base, release: '?', kind: '?', plan: null, problem };
    case 'carries':
    case 'too-old':
      return {
        ...base,
        plan: null,
        problem: { code: 'E_INSTALLER_TOO_OLD', message: 'needs Ferry 9.0.0 or newer' },
        needs: { version: '9.0.0', carried: state === 'carries' ? '9.0.0' : null, hint: '' },
      };
  }
}

const cases: Array<[string, string[], number | null]> = [
  ['a release beats its prerelease found first', ['1.3.0-rc.1:ready', '1.3.0:ready'], 1],
  ['a release beats its prerelease found after it', ['1.3.0:ready', '1.3.0-rc.1:ready'], 0],
  ['a prerelease beats the release before it', ['1.2.0:ready', '1.3.0-rc.1:ready'], 1],
  ['prereleases in semver order', ['1.3.0-rc.10:ready', '1.3.0-rc.9:ready'], 0],
  ['versions compare as numbers, not text', ['1.10.0:ready', '1.9.0:ready'], 0],
  ['equal releases: the first found', ['1.3.0:ready', '1.3.0:ready'], 0],
  ['build metadata does not order releases', ['1.3.0+b.2:ready', '1.3.0+b.1:ready'], 0],
  ['a newer blocked bundle gives way to an older ready one', ['1.3.0:blocked', '1.1.0:ready'], 1],
  ['a newer bundle with nothing to do gives way', ['1.3.0:nothing', '1.1.0:ready'], 1],
  ['none ready: the newest readable, to explain itself', ['1.1.0:blocked', '1.3.0:nothing'], 1],
  ['an untrusted bundle is never chosen, however new', ['9.9.9:untrusted', '1.1.0:ready'], 1],
  ['an unreadable bundle is never chosen', ['?:unreadable', '1.1.0:blocked'], 1],
  ['nothing readable: nothing chosen', ['9.9.9:untrusted', '?:unreadable'], null],
  ['one that carries the newer Ferry it needs is ready', ['1.2.0:ready', '1.3.0:carries'], 1],
  ['one that needs a newer Ferry and carries none gives way', ['1.3.0:too-old', '1.2.0:ready'], 1],
  ['none ready: one that needs a newer Ferry, to say why', ['9.9.9:untrusted', '1.3.0:too-old'], 1],
  ['no bundles: nothing chosen', [], null],
];

describe('chooseNewest', () => {
  it.each(cases)('%s', (_name, specs, chosen) => {
    expect(chooseNewest(specs.map(listed))).toBe(chosen);
  });
});

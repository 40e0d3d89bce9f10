import { describe, expect, it } from 'vitest';
import { chooseNewest, type Candidate } from '../../../installer/console/model.js';
import { NO_CONTROLS, type Plan } from '../../../installer/plan.js';

// chooseNewest is pure: candidates in, the index Enter applies out. A bundle
// is written as `release:state`, where the state is what its plan says.
type State = 'ready' | 'nothing' | 'blocked' | 'untrusted' | 'unreadable';

function candidate(spec: string, at: number): Candidate {
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
    partial: false,
    reachesTarget: true,
    controls: NO_CONTROLS,
  });
  const problem = { code: 'E_SIGNATURE', message: 'not signed by keys this appliance trusts' };
  const file = `/media/usb/bundle-${at}.tar`;
  const base = { file, product: 'acme', release, kind: 'update', notes: '' };
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
  ['no bundles: nothing chosen', [], null],
];

describe('chooseNewest', () => {
  it.each(cases)('%s', (_name, specs, chosen) => {
    expect(chooseNewest(specs.map(candidate))).toBe(chosen);
  });
});

import { describe, expect, it } from 'vitest';
import { describeCycle, sequence } from '../../manifest-schema/index.js';

const cases: Array<
  [string, Record<string, string[]>, { order: string[]; cycles: string[][]; blocked: string[] }]
> = [
  ['empty', {}, { order: [], cycles: [], blocked: [] }],
  [
    'independent nodes by name',
    { b: [], a: [], c: [] },
    { order: ['a', 'b', 'c'], cycles: [], blocked: [] },
  ],
  [
    'chain c needs b needs a',
    { c: ['b'], b: ['a'], a: [] },
    { order: ['a', 'b', 'c'], cycles: [], blocked: [] },
  ],
  [
    'diamond',
    { top: ['left', 'right'], left: ['base'], right: ['base'], base: [] },
    { order: ['base', 'left', 'right', 'top'], cycles: [], blocked: [] },
  ],
  ['unknown dependencies ignored', { a: ['ghost'] }, { order: ['a'], cycles: [], blocked: [] }],
  [
    'two-cycle',
    { a: ['b'], b: ['a'], c: [] },
    { order: ['c'], cycles: [['a', 'b']], blocked: ['a', 'b'] },
  ],
  [
    'three-cycle with a dependent behind it',
    { a: ['c'], b: ['a'], c: ['b'], d: ['a'], e: [] },
    { order: ['e'], cycles: [['a', 'c', 'b']], blocked: ['a', 'b', 'c', 'd'] },
  ],
  ['self loop', { a: ['a'], b: [] }, { order: ['b'], cycles: [['a']], blocked: ['a'] }],
  [
    'two separate cycles',
    { a: ['b'], b: ['a'], x: ['y'], y: ['x'] },
    {
      order: [],
      cycles: [
        ['a', 'b'],
        ['x', 'y'],
      ],
      blocked: ['a', 'b', 'x', 'y'],
    },
  ],
];

describe('sequence', () => {
  it.each(cases)('%s', (_name, graph, expected) => {
    const needs = new Map(Object.entries(graph));
    expect(sequence(needs.keys(), needs)).toEqual(expected);
  });

  it('describes a cycle as the chain of needs', () => {
    expect(describeCycle(['a', 'c', 'b'])).toBe('a → c → b → a');
  });
});

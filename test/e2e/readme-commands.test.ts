import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

/**
 * The README's table of commands is where a pipeline author looks up what
 * `--json` gives: every field it names in a `{ … }` must be one the command's
 * published output schema has.
 */

const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
const section = /^## Commands\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
const rows = section
  .split('\n')
  .filter((line) => line.startsWith('| `ferry '))
  .map((line) => {
    const [, usage = '', does = ''] = line.split(/(?<!\\)\|/);
    return { usage: usage.trim(), does: does.trim() };
  });

/** The command a usage names: `ferry trust sign FILE …` → `trust-sign`. */
function commandOf(usage: string): string {
  const words = /^`ferry ([a-z -]+?)(?: [A-Z[(-]|`)/.exec(usage)?.[1] ?? '';
  return words.trim().replace(/ /g, '-');
}

const fieldLists = rows.flatMap(({ usage, does }) => {
  const json = does.indexOf('--json');
  if (json < 0) return [];
  return [...does.slice(json).matchAll(/`\{ ([^`]*) \}`/g)].map(([, list]) => ({
    command: commandOf(usage),
    fields: (list as string).split(', ').filter((field) => field !== '…'),
  }));
});

describe("the README's commands table", () => {
  it('names --json fields of some commands', () => {
    expect(fieldLists.map(({ command }) => command)).toEqual(
      expect.arrayContaining(['build', 'install', 'log', 'pull', 'publish']),
    );
  });

  it.each(fieldLists.map(({ command, fields }) => [command, fields] as const))(
    'ferry %s --json has every field the README names',
    async (command, fields) => {
      const schema = JSON.parse(
        await readFile(join(ROOT, 'manifest-schema', 'schemas', `output-${command}.json`), 'utf8'),
      ) as { properties: Record<string, unknown> };
      for (const field of fields) expect(Object.keys(schema.properties)).toContain(field);
    },
  );
});

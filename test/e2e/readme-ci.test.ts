import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadCommands } from '../../cli/main.js';
import { ROOT } from '../helpers.js';

/**
 * The pipelines in the README's "Publishing from CI" are what release
 * engineers copy: they must be YAML that parses, and every Ferry command in
 * them must be one Ferry has, with options it takes.
 */

const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
const section = /^## Publishing from CI\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
const blocks = [...section.matchAll(/^```(yaml|sh)\n([\s\S]*?)^```/gm)].map(([, lang, text]) => ({
  lang: lang as string,
  text: text as string,
}));
const commands = new Map(await loadCommands());

/** Every string in a parsed YAML value (run:, script:, before_script: …). */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

/** Shell words of one command line, quotes kept whole, up to a redirection, pipe or `&&`. */
function words(line: string): string[] {
  const found: string[] = [];
  for (const [word] of line.matchAll(/"(?:[^"\\]|\\.)*"|'[^']*'|\$\([^)]*\)|[^\s"']+/g)) {
    if (['>', '|', '&&', ';', '||'].includes(word)) break;
    found.push(word);
  }
  return found;
}

/** Each Ferry invocation in a script: the words after `ferry` or `node ferry.mjs`. */
function invocations(script: string): string[][] {
  return script
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .flatMap((line) => {
      const at = /(?:^|[\s;&|(])(?:node \S*ferry\.mjs|\S*\bferry)\s+(.*)$/.exec(line);
      return at?.[1] ? [words(at[1])] : [];
    });
}

describe("the README's CI pipelines", () => {
  it('are there: a GitHub Actions and a GitLab CI example', () => {
    const yaml = blocks.filter((block) => block.lang === 'yaml').map((block) => block.text);
    expect(yaml.some((text) => text.includes('workflow_dispatch'))).toBe(true);
    expect(yaml.some((text) => text.includes('resource_group'))).toBe(true);
  });

  it.each(blocks.map((block, i) => [i + 1, block] as const))(
    'block %i parses, and calls Ferry only with commands and options it has',
    (_n, block) => {
      let scripts = [block.text];
      if (block.lang === 'yaml') {
        const documents = parseAllDocuments(block.text);
        for (const document of documents) expect(document.errors).toEqual([]);
        scripts = documents.flatMap((document) => strings(document.toJS()));
      }
      for (const args of scripts.flatMap(invocations)) {
        const name = [args.slice(0, 2).join(' '), args[0] ?? ''].find((n) => commands.has(n));
        expect(name, `no command in: ferry ${args.join(' ')}`).toBeDefined();
        const command = commands.get(name as string);
        const rest = args.slice((name as string).split(' ').length);
        for (let i = 0; i < rest.length; i++) {
          const word = rest[i] as string;
          if (!word.startsWith('--')) continue;
          const option = command?.options[word.slice(2).split('=')[0] as string];
          expect(option, `ferry ${name as string} has no ${word}`).toBeDefined();
          if (option?.type === 'string' && !word.includes('=')) i++;
        }
      }
    },
  );
});

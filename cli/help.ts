import type { Command, OptionSpec } from './args.js';

/**
 * Help text, made from each command's option table so that a new command
 * gets complete help without writing any: every option is listed, and every
 * line fits an 80-column terminal.
 */
export const WIDTH = 80;

/** The option every command takes without declaring it. */
export const helpOption = {
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} as const satisfies Record<string, OptionSpec>;

/**
 * Words wrapped to the width, later lines indented by `hang`. A word is never
 * broken; in a usage line (`groups`), `[--kind update|install]` stays one word
 * because brackets and parentheses keep their spaces.
 */
export function wrap(text: string, indent: string, hang = indent, groups = false): string {
  const width = WIDTH;
  const lines: string[] = [];
  let line = indent;
  let fresh = true;
  for (const word of groups ? groupedWords(text) : text.split(/\s+/).filter(Boolean)) {
    if (!fresh && line.length + 1 + word.length > width) {
      lines.push(line);
      line = hang;
      fresh = true;
    }
    line += fresh ? word : ` ${word}`;
    fresh = false;
  }
  lines.push(line);
  return lines.join('\n');
}

function groupedWords(text: string): string[] {
  const result: string[] = [];
  let depth = 0;
  let word = '';
  for (const char of text) {
    if (char === '[' || char === '(') depth++;
    if (char === ']' || char === ')') depth = Math.max(0, depth - 1);
    if (/\s/.test(char) && depth === 0) {
      if (word !== '') result.push(word);
      word = '';
    } else word += char;
  }
  if (word !== '') result.push(word);
  return result;
}

/** `--name ARG`, as an option is written in help and usage. */
export function optionLabel(name: string, option: OptionSpec): string {
  const value = option.type === 'string' ? ` ${option.arg ?? name.toUpperCase()}` : '';
  return `${option.short ? `-${option.short}, ` : ''}--${name}${value}`;
}

export function commandHelp(name: string, command: Command): string {
  const options = Object.entries<OptionSpec>({ ...command.options, ...helpOption });
  const labels = options.map(([option, spec]) => optionLabel(option, spec));
  const column = Math.min(Math.max(...labels.map((l) => l.length)) + 4, 28);
  const rows = options.map(([, spec], i) => {
    const label = `  ${labels[i]}`;
    const text = `${spec.help ?? ''}${spec.multiple ? ' (repeatable)' : ''}`;
    const hang = ' '.repeat(column);
    if (label.length + 2 > column) return `${label}\n${wrap(text, hang)}`;
    return wrap(text, label.padEnd(column), hang);
  });
  return [
    wrap(command.usage.replace(/^ferry /, ''), `Usage: ferry `, '         ', true),
    '',
    wrap(capitalise(command.summary), ''),
    '',
    'Options:',
    ...rows,
    '',
    wrap(`Exit codes: ${EXITS}`, '', '  '),
  ]
    .map((line) => line.trimEnd())
    .join('\n');
}

export const EXITS =
  '0 ok · 1 failed, nothing changed · 2 usage or input · 3 trust · 4 plan blocked · 5 busy';

/** A list of commands by name and summary: `ferry --help`, and `ferry trust` for its group. */
export function commandList(commands: ReadonlyArray<readonly [string, Command]>): string {
  const width = Math.max(...commands.map(([name]) => name.length)) + 4;
  return commands
    .map(([name, command]) => wrap(command.summary, `  ${name}`.padEnd(width), ' '.repeat(width)))
    .join('\n');
}

function capitalise(text: string): string {
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

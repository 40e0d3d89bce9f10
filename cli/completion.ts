import type { Command, OptionSpec } from './args.js';
import { helpOption } from './help.js';
import { shellQuoted } from '../manifest-schema/printable.js';

/**
 * Shell completion made from the command registry and each command's option
 * table, so a new command completes without a line here: command words,
 * options (with their help in zsh and fish), an option's choices when its
 * value is written `a|b|c`, and file names elsewhere.
 */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

type Registry = ReadonlyArray<readonly [name: string, command: Command]>;

export function completionScript(shell: Shell, commands: Registry): string {
  const table = commands.map(([name, command]) => ({
    words: name.split(' '),
    summary: command.summary,
    options: Object.entries<OptionSpec>({ ...command.options, ...helpOption }),
  }));
  return { bash, zsh, fish }[shell](table);
}

interface Entry {
  words: string[];
  summary: string;
  options: Array<[string, OptionSpec]>;
}

const choices = (spec: OptionSpec): string[] =>
  spec.type === 'string' && spec.arg?.includes('|') ? spec.arg.split('|') : [];

/** The words that may follow `prefix` (the top level: `[]`), without duplicates. */
function nextWords(table: Entry[], prefix: string[]): string[] {
  const words = table
    .filter((e) => e.words.length > prefix.length && prefix.every((w, i) => e.words[i] === w))
    .map((e) => e.words[prefix.length] as string);
  return [...new Set(words)];
}

function bash(table: Entry[]): string {
  const groups = [...new Set(table.filter((e) => e.words.length > 1).map((e) => e.words[0]))];
  // Longer command names first, so `trust init` is matched before a `trust` of its own.
  const cases = [...table]
    .sort((a, b) => b.words.length - a.words.length)
    .map((e) => {
      const values = e.options
        .filter(([, spec]) => choices(spec).length > 0)
        .map(([name, spec]) => `--${name}) words=${shellQuoted(choices(spec).join(' '))} ;;`)
        .join(' ');
      const opts = e.options.map(([name]) => `--${name}`).join(' ');
      const prev = values === '' ? '' : ` case "$prev" in ${values} esac;`;
      return `    "${e.words.join(' ')} "*) opts=${shellQuoted(opts)};${prev} ;;`;
    });
  return `# ferry completion for bash: eval "$(ferry completion bash)", or save it in
# /etc/bash_completion.d/ferry
_ferry() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local line="\${COMP_WORDS[*]:1:COMP_CWORD-1} " opts='' words=''
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W ${shellQuoted(nextWords(table, []).join(' '))} -- "$cur")); return
  fi
  case "\${COMP_WORDS[1]}" in
${groups.map((g) => `    ${g}) if [[ $COMP_CWORD -eq 2 ]]; then COMPREPLY=($(compgen -W ${shellQuoted(nextWords(table, [g as string]).join(' '))} -- "$cur")); return; fi ;;`).join('\n')}
  esac
  case "$line" in
${cases.join('\n')}
  esac
  if [[ -n $words ]]; then COMPREPLY=($(compgen -W "$words" -- "$cur"))
  elif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -o filenames -F _ferry ferry
`;
}

/** Text inside an _arguments or _describe spec: its brackets and colons escaped. */
const zshText = (text: string) => text.replace(/([[\]:\\])/g, '\\$1').replaceAll("'", "'\\''");

function zsh(table: Entry[]): string {
  const describe = (prefix: string[]) =>
    nextWords(table, prefix)
      .map((word) => {
        const entry = table.find((e) => e.words.join(' ') === [...prefix, word].join(' '));
        return `'${word}:${zshText(entry?.summary ?? `${word} commands`)}'`;
      })
      .join(' ');
  const args = (e: Entry) =>
    e.options
      .map(([name, spec]) => {
        const help = `[${zshText(spec.help ?? '')}]`;
        const value =
          spec.type === 'boolean'
            ? ''
            : choices(spec).length > 0
              ? `:${spec.arg}:(${choices(spec).join(' ')})`
              : `:${zshText(spec.arg ?? name)}:_files`;
        return `'${spec.multiple ? '*' : ''}--${name}${help}${value}'`;
      })
      .join(' ');
  const groups = [...new Set(table.filter((e) => e.words.length > 1).map((e) => e.words[0]))];
  const cases = table.map(
    (e) =>
      `    '${e.words.join(' ')}') shift ${e.words.length} words; (( CURRENT -= ${e.words.length} ))
      _arguments -s ${args(e)} '*:file:_files' ;;`,
  );
  return `#compdef ferry
# ferry completion for zsh: save as _ferry in a folder of $fpath, or
# source <(ferry completion zsh) after compinit
_ferry() {
  if (( CURRENT == 2 )); then
    local -a commands=(${describe([])}); _describe command commands; return
  fi
  local name=$words[2]
  case $name in
${groups.map((g) => `    ${g}) if (( CURRENT == 3 )); then local -a subs=(${describe([g as string])}); _describe command subs; return; fi; name="$name $words[3]" ;;`).join('\n')}
  esac
  case $name in
${cases.join('\n')}
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then _ferry "$@"; else compdef _ferry ferry; fi
`;
}

function fish(table: Entry[]): string {
  const lines = [
    '# ferry completion for fish: ferry completion fish > ~/.config/fish/completions/ferry.fish',
    '# Whether the words after `ferry` start with the arguments (`trust init` is not `init`).',
    'function __ferry_is',
    '    set -l words (commandline -opc)[2..-1]',
    '    set -l n (count $argv)',
    '    test (count $words) -ge $n; and test "$words[1..$n]" = "$argv"',
    'end',
  ];
  for (const word of nextWords(table, [])) {
    const entry = table.find((e) => e.words.join(' ') === word);
    lines.push(
      `complete -c ferry -f -n __fish_use_subcommand -a ${word} -d ${shellQuoted(entry?.summary ?? `${word} commands`)}`,
    );
  }
  const groups = [...new Set(table.filter((e) => e.words.length > 1).map((e) => e.words[0]))];
  for (const group of groups) {
    const when = `__ferry_is ${group}; and test (count (commandline -opc)) -eq 2`;
    for (const sub of nextWords(table, [group as string])) {
      const entry = table.find((e) => e.words.join(' ') === `${group} ${sub}`);
      lines.push(
        `complete -c ferry -f -n ${shellQuoted(when)} -a ${sub} -d ${shellQuoted(entry?.summary ?? '')}`,
      );
    }
  }
  for (const e of table) {
    const when = shellQuoted(`__ferry_is ${e.words.join(' ')}`);
    for (const [name, spec] of e.options) {
      const value =
        spec.type === 'boolean'
          ? ''
          : choices(spec).length > 0
            ? ` -x -a ${shellQuoted(choices(spec).join(' '))}`
            : ' -r -F';
      lines.push(
        `complete -c ferry -n ${when} -l ${name}${spec.short ? ` -s ${spec.short}` : ''}${value} -d ${shellQuoted(spec.help ?? '')}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

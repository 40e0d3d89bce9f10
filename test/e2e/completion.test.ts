import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCommands } from '../../cli/main.js';
import { ferry, tempDir } from '../helpers.js';

// Each script is loaded into the real shell (bash, fish and zsh come from
// scripts/setup-system.sh) and asked to complete as a person would type.

const commands = await loadCommands();
let dir: string;
const script: Record<string, string> = {};

beforeAll(async () => {
  dir = await tempDir();
  for (const shell of ['bash', 'zsh', 'fish']) {
    const result = await ferry(['completion', shell]);
    expect(result.code, result.stderr).toBe(0);
    script[shell] = join(dir, `ferry.${shell}`);
    await writeFile(script[shell], result.stdout);
  }
});

const shell = (program: string, ...args: string[]) =>
  execFileSync(program, args, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', TERM: 'xterm', HOME: dir },
  });

describe('ferry completion', () => {
  it('an unknown shell is a usage error that names the argument, not an option', async () => {
    const result = await ferry(['completion', 'tcsh']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_USAGE: SHELL must be one of bash, zsh, fish, not "tcsh"');
  });

  it('bash completes every command, and every option of each from its table', () => {
    const lines = [`source ${script.bash}`];
    lines.push(
      't() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _ferry; echo "${COMPREPLY[*]}"; }',
    );
    lines.push("t ferry ''");
    for (const [name, command] of commands)
      for (const option of Object.keys(command.options))
        lines.push(`t ferry ${name} ARG --${option}`);
    const out = shell('bash', '-c', lines.join('\n')).split('\n');
    expect((out[0] ?? '').split(' ').sort()).toEqual(
      [...new Set(commands.map(([name]) => name.split(' ')[0]))].sort(),
    );
    let i = 1;
    for (const [name, command] of commands)
      for (const option of Object.keys(command.options))
        expect(out[i++]?.split(' '), `ferry ${name} --${option}`).toContain(`--${option}`);
  });

  it("bash completes a group's subcommands and an option's choices", () => {
    const out = shell(
      'bash',
      '-c',
      `source ${script.bash}
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _ferry; echo "\${COMPREPLY[*]}"; }
t ferry trust ''
t ferry build spec.yaml --format ''`,
    ).split('\n');
    expect(out[0]?.split(' ')).toContain('init');
    expect(out[1]).toBe('tar tar.gz zip');
  });

  it('fish completes commands with their summary, and only the options of the command typed', () => {
    const out = shell(
      'fish',
      '-c',
      `source ${script.fish}; complete -C "ferry bu"; echo ---; complete -C "ferry trust init --"; echo ---; complete -C "ferry init --"`,
    );
    const [top, trustInit, init] = out.split('---\n');
    expect(top).toMatch(/^build\tbuild and sign a bundle/);
    expect(trustInit).toContain('--threshold');
    expect(trustInit).not.toContain('--product');
    expect(init).toContain('--product');
    expect(init).not.toContain('--threshold');
  });

  it('zsh completes an option and a subcommand in an interactive shell', async () => {
    const driver = join(dir, 'drive.zsh');
    await writeFile(
      driver,
      `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'autoload -U compinit; compinit -u -d ${dir}/zcompdump; source ${script.zsh}; PS1="> "; print RE""ADY'
zpty -r z line '*READY*'
# Reads until the screen shows $1, for 30 seconds at most (the machine may be busy).
wait_for() { for i in {1..300}; do zpty -r -t z chunk && out+=$chunk; [[ $out == *$1* ]] && return; sleep 0.1; done }
out=''
zpty -w -n z $'ferry build x --fo\\t'
wait_for 'x --format'
zpty -w -n z $'\\C-u'
zpty -w -n z $'ferry trust in\\t'
wait_for 'trust init'
print -r -- "$out"
zpty -d z
`,
    );
    const out = shell('zsh', '-f', driver);
    expect(out).toContain('ferry build x --format');
    expect(out).toContain('ferry trust init');
  });

  it('refuses a shell it does not know', async () => {
    const result = await ferry(['completion', 'powershell']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_USAGE');
  });
});

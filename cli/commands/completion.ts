import { choice, positional, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry completion bash|zsh|fish',
  summary: 'print shell completion for every command and option',
  options: {},
  async run({ positionals }) {
    const { completionScript, SHELLS } = await import('../completion.js');
    const { loadCommands } = await import('../main.js');
    const shell = choice(positional(positionals, 'SHELL'), SHELLS, 'SHELL');
    return { json: null, human: completionScript(shell, await loadCommands()).trimEnd() };
  },
};

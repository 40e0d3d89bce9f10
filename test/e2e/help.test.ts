import { describe, expect, it } from 'vitest';
import { loadCommands } from '../../cli/main.js';
import { ferry } from '../helpers.js';

const commands = await loadCommands();

describe('help', () => {
  it.each(commands)(
    'ferry %s --help prints its usage, naming every option',
    async (name, command) => {
      const result = await ferry([...name.split(' '), '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout.split('\n')[0]).toBe(command.usage);
      for (const option of Object.keys(command.options).filter((o) => o !== 'json'))
        expect(command.usage).toContain(`--${option}`);
    },
  );

  it('ferry --help lists every command', async () => {
    const result = await ferry(['--help']);
    expect(result.code).toBe(0);
    for (const [, command] of commands) expect(result.stdout).toContain(command.usage);
  });
});

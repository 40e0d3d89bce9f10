// bin/ferry's form of Ferry (scripts/package.mjs) is CommonJS, and the console's
// screen cannot be (ink's layout engine awaits at its top level): it is an ES
// module of its own beside it, which cli/commands/console.ts's import of
// installer/console/run.js resolves to through this module.
import type { runConsole as RunConsole } from '../installer/console/run.js';
import { importModule } from './import-module.js';

export async function runConsole(
  ...args: Parameters<typeof RunConsole>
): ReturnType<typeof RunConsole> {
  const loaded = (await importModule(new URL('ferry-console.mjs', import.meta.url).href)) as {
    runConsole: typeof RunConsole;
  };
  return loaded.runConsole(...args);
}

import { constants, Script } from 'node:vm';

/**
 * import(), from a script of its own: the single executable's entry and
 * bin/ferry's script are compiled from V8's code cache, and Node 20 gives such
 * a script no loader for import().
 */
export function importModule(url: string): Promise<unknown> {
  // Node calls that loader experimental, and says so on the operator's screen.
  const original: typeof process.emitWarning = Reflect.get(process, 'emitWarning');
  const emitWarning = original.bind(process);
  process.emitWarning = (warning: string | Error, ...rest: never[]): void => {
    if (!String(warning).includes('USE_MAIN_CONTEXT_DEFAULT_LOADER')) emitWarning(warning, ...rest);
  };
  try {
    return new Script(`import(${JSON.stringify(url)})`, {
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    }).runInThisContext() as Promise<unknown>;
  } finally {
    process.emitWarning = original;
  }
}

import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * The installer for volume 1: the one `npm run package` built beside this
 * Ferry. In the executable there is nothing beside it to look for (and
 * CommonJS has no import.meta): its build resolves this module to
 * scripts/sea-boot.ts, where the installer is the executable itself.
 */
export async function defaultInstaller(): Promise<string | null> {
  // From dist/builder/ (bin/ferry) or dist/package/ (the bundled ferry.mjs) alike.
  const file = fileURLToPath(new URL('../package/ferry-installer', import.meta.url));
  return access(file).then(
    () => file,
    () => null,
  );
}

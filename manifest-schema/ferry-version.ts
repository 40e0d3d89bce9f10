import { readFileSync } from 'node:fs';

/** Set by `npm run package` (esbuild's define): a packaged Ferry has no package.json beside it. */
declare const FERRY_PACKAGE_VERSION: string | undefined;

/**
 * This Ferry's version, from package.json: what `--version` prints and what a
 * bundle's `minInstaller` is compared with, so it must never be typed twice.
 * Compiled (dist/manifest-schema/) or run from source (manifest-schema/), the
 * project's package.json is one or two folders up.
 */
export const FERRY_VERSION: string =
  typeof FERRY_PACKAGE_VERSION === 'string' ? FERRY_PACKAGE_VERSION : packageVersion();

function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const found = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (found.name === 'ferry' && typeof found.version === 'string') return found.version;
    } catch {
      // not this folder
    }
  }
  throw new Error('ferry: no package.json of Ferry above manifest-schema/');
}

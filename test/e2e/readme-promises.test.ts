import { lstat, mkdir, readlink, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { init } from './appliance.js';
import { tempDir, workspace, type Workspace } from '../helpers.js';

// Promises of the README's "What Ferry promises" and "What Ferry refuses" that
// no other test tries the way a hostile operator would.

let dir: string;
let ws: Workspace;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
});

describe('ferry init refuses a root that has any of its files', () => {
  // A link whose target is missing (a data partition not mounted yet) is
  // still the appliance's file: init must not write a fresh one over it.
  for (const file of [
    'var/lib/ferry/state.json',
    'etc/ferry/appliance.yaml',
    'etc/ferry/trust.json',
  ])
    it(`even as a link to nothing: ${file}`, async () => {
      const root = join(dir, file.replaceAll('/', '_'));
      await mkdir(dirname(join(root, file)), { recursive: true });
      await symlink('/nonexistent/ferry-data', join(root, file));
      const result = await init(ws, root);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('E_EXISTS');
      expect(result.stderr).toContain(file);
      expect((await lstat(join(root, file))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(root, file))).toBe('/nonexistent/ferry-data');
    });
});

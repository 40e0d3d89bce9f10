import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runArtifact } from '../../../installer/engine/run.js';

// A Ferry whose pid a dead one had finds that one's empty cgroup under the
// very name its first artifact's would take. In its own process (this test
// file's worker, which has run no artifact yet), so the sweep before the
// first artifact is the one under test.

const mount = readFileSync('/proc/self/mountinfo', 'utf8')
  .split('\n')
  .map((line) => line.split(' '))
  .find((fields) => fields[fields.indexOf('-') + 1] === 'cgroup2')?.[4];
/** This process's cgroup, if one can be made in it. */
const parent = ((): string | null => {
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (!mount || own === undefined) return null;
  const probe = join(mount, own, `ferry-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return join(mount, own);
  } catch {
    return null;
  }
})();

const stale = parent ? join(parent, `ferry-${process.pid}-1`) : '';
let dir = '';

afterAll(async () => {
  if (stale && existsSync(stale)) rmdirSync(stale);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the sweep before the first artifact', () => {
  it.skipIf(!parent)(
    "removes a dead ferry's empty cgroup named with this ferry's own pid, and the artifact runs in its own",
    async () => {
      mkdirSync(stale);
      dir = await mkdtemp(join(tmpdir(), 'ferry-sweep-'));
      const script = join(dir, 'where.sh');
      await writeFile(script, '#!/bin/sh\ncat /proc/self/cgroup > "$1"\n');
      await chmod(script, 0o755);
      const wrapper = join(dir, 'run.sh');
      await writeFile(wrapper, `#!/bin/sh\nexec '${script}' '${join(dir, 'cgroup.txt')}'\n`);
      await chmod(wrapper, 0o755);
      const result = await runArtifact({ path: wrapper, env: {}, cwd: dir, timeoutSeconds: 30 });
      expect(result.exitCode, result.output).toBe(0);
      // It ran in the cgroup of that name, made anew, and removed after it.
      expect(await readFile(join(dir, 'cgroup.txt'), 'utf8')).toMatch(
        new RegExp(`/ferry-${process.pid}-1$`, 'm'),
      );
      expect(existsSync(stale)).toBe(false);
    },
  );
});

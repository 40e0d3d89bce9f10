import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every temp folder of the run (the tests' own and those of the ferry
 * processes they start) goes under one folder removed at the end: a test
 * that fails or is stopped before its afterAll, or a folder made inside a
 * test, otherwise stays behind, and a full run makes gigabytes of them.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const run = await mkdtemp(join(tmpdir(), 'ferry-run-'));
  process.env.TMPDIR = run;
  // What ferry pull records of the channels it pulled (repository/pulled.ts) goes there
  // too, for every ferry a test starts, not into the HOME of whoever runs the tests.
  process.env.FERRY_STATE_DIR = join(run, 'ferry-state');
  return async () => {
    await rm(run, { recursive: true, force: true }).catch((error: unknown) => {
      console.warn(`could not remove ${run}: ${String(error)}`);
    });
  };
}

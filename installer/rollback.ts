import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FerryError, sequence } from '../manifest-schema/index.js';
import { DEFAULT_ARTIFACT_TIMEOUT_SECONDS, DEFAULT_RETENTION, writeState } from './appliance.js';
import { exclusive } from './engine/recover.js';
import { undoAll } from './engine/transaction.js';
import { verifyInstalled } from './engine/installed-files.js';
import { restoredState } from './engine/next-state.js';
import { cleanUp } from './engine/retention.js';
import type { Failure, InstallEvent, RollbackResult } from './engine/events.js';
import { appendLine, Journal, pathExists, pointLink, type JournalStep } from './engine/journal.js';
import { describeFailure, runArtifact } from './engine/run.js';

/**
 * Back to the previous committed release, from the versions kept beside the
 * active ones: each component's rollback artifacts (kept from its install)
 * run, then `current` switches back, dependents first. Journaled like an
 * install; a failure switches everything forward again.
 */
export async function rollback(
  root: string,
  options: { reason?: string; onEvent?: (event: InstallEvent) => void } = {},
): Promise<RollbackResult> {
  const emit = options.onEvent ?? (() => undefined);
  return exclusive(root, 'rollback', emit, async (appliance) => {
    const { paths, state } = appliance;
    const previous = state.previous;
    if (!previous) {
      throw new FerryError('E_USAGE', `${paths.root} has no previous release to go back to`, {
        file: paths.state,
        hint: 'a rollback needs an earlier committed install on this appliance',
      });
    }
    const names = [
      ...new Set([...Object.keys(state.components), ...Object.keys(previous.components)]),
    ];
    const changing = names.filter(
      (name) => state.components[name]?.version !== previous.components[name]?.version,
    );
    for (const name of changing) {
      const version = previous.components[name]?.version;
      if (version === undefined) continue;
      const kept = await pathExists(join(paths.opt, name, version));
      if (!kept) {
        throw new FerryError(
          'E_NOT_FOUND',
          `${name} ${version} is no longer kept on this appliance, so release ${previous.release ?? '(empty)'} cannot be restored`,
          {
            component: name,
            hint: 'install a bundle of that release instead (with --allow-downgrade)',
          },
        );
      }
    }
    if (changing.length === 0)
      return { outcome: 'unchanged', from: state.release, to: previous.release, transaction: null };

    // Dependents first: the reverse of the active release's dependency order.
    const needs = new Map(
      changing.map((name) => [name, Object.keys(state.components[name]?.requires ?? {})]),
    );
    const sequenced = sequence(changing, needs);
    const order = [...sequenced.order, ...sequenced.blocked].reverse();

    const id = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
    const journal = await Journal.begin(paths.journal, {
      id,
      operation: 'rollback',
      from: state.release,
      to: previous.release,
      bundle: null,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      undo: {},
    });
    const steps: JournalStep[] = [];
    const record = async (step: JournalStep): Promise<void> => {
      await journal.record(step);
      steps.push(step);
    };
    const history = async (
      outcome: RollbackResult['outcome'],
      failure?: Failure,
    ): Promise<void> => {
      await appendLine(paths.history, {
        id,
        at: new Date().toISOString(),
        operation: 'rollback',
        from: state.release,
        to: previous.release,
        outcome,
        ...(options.reason !== undefined ? { reason: options.reason } : {}),
        ...(failure ? { failure } : {}),
      });
    };
    try {
      emit({ type: 'pass', pass: 'rollback', status: 'start' });
      for (const name of order) {
        const current = state.components[name];
        const back = previous.components[name]?.version ?? null;
        emit({
          type: 'step',
          pass: 'rollback',
          component: name,
          status: 'start',
          detail: `${current?.version ?? 'none'} → ${back ?? 'removed'}`,
        });
        for (const file of current?.artifacts.rollback ?? []) {
          const artifact = join(
            paths.lib,
            'artifacts',
            name,
            current?.version as string,
            'rollback',
            file,
          );
          await record({ op: 'run', component: name, pass: 'rollback', artifact });
          const timeoutSeconds =
            current?.timeoutSeconds ??
            appliance.config.artifactTimeoutSeconds ??
            DEFAULT_ARTIFACT_TIMEOUT_SECONDS;
          const result = await runArtifact({
            path: artifact,
            cwd: paths.root,
            timeoutSeconds,
            env: {
              FERRY_ROOT: paths.root,
              FERRY_COMPONENT: name,
              FERRY_PASS: 'rollback',
              FERRY_FROM_VERSION: back ?? '',
              FERRY_TO_VERSION: current?.version ?? '',
              FERRY_PAYLOAD_DIR: '',
              FERRY_INSTALL_DIR: join(paths.opt, name, current?.version as string),
            },
            onOutput: (stream, line) =>
              emit({
                type: 'output',
                pass: 'rollback',
                component: name,
                artifact: file,
                stream,
                line,
              }),
          });
          if (result.exitCode !== 0 || result.timedOut) {
            throw Object.assign(new Error('rollback artifact failed'), {
              failure: {
                component: name,
                pass: 'rollback',
                artifact: file,
                status: describeFailure(result, timeoutSeconds),
                tail: result.tail,
              } satisfies Failure,
            });
          }
        }
        const link = join(paths.opt, name, 'current');
        await record({
          op: 'switch',
          component: name,
          link,
          from: current?.version ?? null,
          to: back,
        });
        await pointLink(link, back);
        emit({ type: 'step', pass: 'rollback', component: name, status: 'done' });
      }
      const restored = restoredState(state, previous, id);
      const problems = await verifyInstalled(paths, restored, new Set(changing));
      const first = problems[0];
      if (first) {
        throw Object.assign(new Error('restored files differ'), {
          failure: {
            component: first.component,
            pass: 'test',
            artifact: null,
            status: `${first.path} ${first.problem}`,
            tail: '',
          } satisfies Failure,
        });
      }
      await record({ op: 'commit' });
      await writeState(paths, restored);
      await record({ op: 'committed' });
      await history('committed');
      await cleanUp(paths, restored, appliance.config.retention ?? DEFAULT_RETENTION);
      await journal.close();
      emit({ type: 'pass', pass: 'rollback', status: 'done' });
      return { outcome: 'committed', from: state.release, to: previous.release, transaction: id };
    } catch (error) {
      const failure = (error as { failure?: Failure }).failure ?? {
        component: null,
        pass: 'rollback' as const,
        artifact: null,
        status: (error as Error).message,
        tail: '',
      };
      await undoAll(steps, journal.header, emit);
      await journal.close();
      await history('rolled-back', failure);
      return {
        outcome: 'rolled-back',
        from: state.release,
        to: previous.release,
        transaction: id,
        failure,
      };
    }
  });
}

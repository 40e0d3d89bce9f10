import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, normalize, relative } from 'node:path';
import { readRegularBytes } from '../../manifest-schema/atomic.js';
import { FerryError, ioError } from '../../manifest-schema/errors.js';

/** Output kept and logged per artifact; the tail is what a person sees on failure. */
export const OUTPUT_CAP = 1024 * 1024;
/** A line longer than this is cut: an artifact that never prints a newline cannot grow Ferry. */
const LINE_CAP = 64 * 1024;
/** What the log adds around each line it keeps (time, pass, component, artifact), counted against the cap. */
const LINE_COST = 160;
const TAIL_LINES = 20;
const KILL_GRACE_MS = 2000;
/** How long the pipes may stay open after the artifact ended, held by something it left behind. */
const PIPE_GRACE_MS = 500;

export interface ArtifactRun {
  /** The artifact file, already extracted and checked against its sha256. */
  path: string;
  env: Record<string, string>;
  cwd: string;
  timeoutSeconds: number;
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
  /**
   * Where the running artifact is named (pid, start time, cgroup) while it
   * runs: a Ferry killed outright leaves its artifact running in its own
   * group, and recovery must end it before undoing what it is still doing.
   */
  trackFile?: string;
}

export interface ArtifactResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Captured output, stdout and stderr interleaved by line, capped at OUTPUT_CAP. */
  output: string;
  truncated: boolean;
  tail: string;
  seconds: number;
  /** What the artifact left running and Ferry ended ("pid (name)"). */
  killed: string[];
}

let runs = 0;

/** Where cgroup v2 is mounted, or null where it is not. */
function cgroupMount(): string | null {
  try {
    return (
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((line) => line.split(' '))
        .find((fields) => fields[fields.indexOf('-') + 1] === 'cgroup2')?.[4] ?? null
    );
  } catch {
    return null;
  }
}

/** The cgroup v2 folder of this process, or null where there is none to use. */
function ownCgroup(): string | null {
  try {
    const mount = cgroupMount();
    const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
    return mount && own !== undefined ? join(mount, own) : null;
  } catch {
    return null;
  }
}

/** The name makeCgroup gives an artifact's cgroup. */
const CGROUP_NAME = /^ferry-\d+-\d+$/;

let swept = false;

/**
 * Removes the cgroups Ferries that died left beside this one's: a Ferry
 * killed mid-artifact and never recovered, or whose artifact outlived its
 * removeCgroup, leaves one, each kernel memory, and its name may collide
 * with one this Ferry makes once its pid is reused. Only a dead pid's
 * (a live one may be a Ferry still using it), and rmdir removes only an
 * empty cgroup: one with something still running in it is kept.
 */
function sweepCgroups(parent: string): void {
  if (swept) return;
  swept = true;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!CGROUP_NAME.test(name)) continue;
    const pid = Number(name.split('-')[1]);
    // This Ferry's own pid names only a dead one's before its first artifact (the sweep
    // runs then): left, it would make that artifact's mkdir fail and run it without one.
    if (pid !== process.pid && procStat(pid) !== null) continue;
    try {
      rmdirSync(join(parent, name));
    } catch {
      // something still runs in it (or it went meanwhile): left as it is
    }
  }
}

/** A cgroup of its own for one artifact run, when one can be made. */
function makeCgroup(): string | null {
  const parent = ownCgroup();
  if (!parent) return null;
  sweepCgroups(parent);
  const dir = join(parent, `ferry-${process.pid}-${++runs}`);
  try {
    mkdirSync(dir);
    return dir;
  } catch {
    return null;
  }
}

function describeProcess(pid: number): string {
  try {
    return `${pid} (${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`;
  } catch {
    return String(pid);
  }
}

/**
 * The processes an artifact started: the members of its cgroup, and (where
 * there is no cgroup, or something escaped it) those in its process group or
 * session, or descending from it while it still runs (`running`: once it
 * has exited, its pid may name another process's children).
 */
function startedBy(pid: number, cgroup: string | null, running = true): number[] {
  const found = new Set<number>();
  if (cgroup) {
    try {
      for (const line of readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n'))
        if (line) found.add(Number(line));
    } catch {
      // removed meanwhile: nothing is left in it
    }
  }
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    // gone meanwhile
    if (!stat) continue;
    const [, ppid, pgrp, session] = stat;
    if (Number(pgrp) === pid || Number(session) === pid) found.add(Number(entry));
    parents.set(Number(entry), Number(ppid));
  }
  if (running)
    for (const candidate of parents.keys()) {
      for (let up = parents.get(candidate); up !== undefined && up > 1; up = parents.get(up))
        if (up === pid) found.add(candidate);
    }
  found.delete(pid);
  found.delete(process.pid);
  return [...found];
}

/** A process's start time (clock ticks since boot): with its pid and the boot, names it across pid reuse. */
function startTime(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** The fields of /proc/PID/stat after the name (state first), or null when there is no such process. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name may hold spaces and parentheses: count after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Whether a process can still do anything: a zombie has ended, only its parent has not reaped it. */
function living(pid: number): boolean {
  const state = procStat(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

interface Tracked {
  pid: number;
  start: string;
  /** A pid and start time name a process only within one boot. */
  boot: string;
  cgroup: string | null;
}

/** How long endLeftover waits for what it killed to be gone. */
const LEFTOVER_WAIT_MS = 5000;

/**
 * The cgroup a record names, if it is one Ferry made: the record is a file
 * on disk, and writing cgroup.kill in (or removing) any other folder would
 * act on whatever it names.
 */
function ownedCgroup(cgroup: unknown): string | null {
  const mount = cgroupMount();
  if (typeof cgroup !== 'string' || !mount) return null;
  if (!isAbsolute(cgroup) || normalize(cgroup) !== cgroup) return null;
  const inside = relative(mount, cgroup);
  if (!inside || inside.startsWith('..') || isAbsolute(inside)) return null;
  return CGROUP_NAME.test(basename(cgroup)) ? cgroup : null;
}

/**
 * Ends what an artifact run by a killed Ferry left running, named in
 * `trackFile`; returns what was ended ("pid (name)"). A record from another
 * boot, or a pid reused since (another start time), is left alone. What does
 * not end (a process stuck in the kernel on a dead disk or NFS) is an error,
 * the record kept: undoing under it would race its writes.
 */
export async function endLeftover(
  trackFile: string,
  // For the tests: a process that no SIGKILL ends (D state) cannot be made at will.
  { waitMs = LEFTOVER_WAIT_MS, kill = signalAll } = {},
): Promise<string[]> {
  let text: string;
  try {
    text = (
      await readRegularBytes(trackFile, 'E_JOURNAL_CORRUPT', {
        max: 4096,
        hint: 'something took its place (a FIFO, a device, a folder): make sure no artifact of the interrupted transaction still runs, remove it, and run ferry recover again',
      })
    ).toString('utf8');
  } catch (error) {
    if ((error as FerryError).code === 'E_NOT_FOUND') return [];
    throw error;
  }
  let tracked: Partial<Tracked> | null = null;
  try {
    tracked = JSON.parse(text) as Partial<Tracked>;
  } catch {
    // torn by a power cut (it is not fsynced), and a power cut ended the artifact too
  }
  const boot = bootId();
  let named: string[] = [];
  if (tracked && typeof tracked === 'object' && boot !== null && tracked.boot === boot) {
    const { pid } = tracked;
    const cgroup = ownedCgroup(tracked.cgroup);
    const valid = typeof pid === 'number' && Number.isInteger(pid) && pid > 1;
    const now = valid ? startTime(pid) : null;
    const leader = valid && now !== null && now === tracked.start;
    // A pid in use as a group or session id is not given to a new process: while
    // the leader's is not reused, its group and session are the artifact's.
    const group = valid && (leader || now === null) ? pid : -1;
    const pids = startedBy(group, cgroup, leader).concat(leader ? [pid] : []);
    named = pids.map(describeProcess);
    if (cgroup) {
      try {
        writeFileSync(join(cgroup, 'cgroup.kill'), '1');
      } catch {
        // gone already, or a kernel before 5.14: the signals below do it
      }
    }
    kill(pids, 'SIGKILL');
    // Undoing begins only once they are gone: nothing of theirs may write after it.
    for (let waited = 0; waited < waitMs && pids.some(living); waited += 20)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const left = pids.filter(living);
    if (left.length > 0)
      throw new FerryError(
        'E_IO',
        `what the interrupted transaction's artifact left running did not end when killed: ${left.map(describeProcess).join(', ')}`,
        {
          file: trackFile,
          hint: 'a process stuck on a disk or NFS server that does not answer ends once it answers: wait for it, then run ferry recover again (nothing was undone yet)',
        },
      );
    if (cgroup) await removeCgroup(cgroup);
  }
  try {
    rmSync(trackFile, { force: true });
  } catch (error) {
    throw ioError(error, trackFile, 'remove');
  }
  return named;
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Removes an artifact's cgroup once what was killed in it has gone. */
async function removeCgroup(cgroup: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      rmdirSync(cgroup);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Runs one artifact as a child process in its own process group (and cgroup
 * where one can be made), with the documented environment and nothing else
 * but PATH. Its run ends when it exits or times out, whatever it left
 * behind holds: everything it started is killed and named in the result,
 * and pipes something kept open are closed.
 */
export function runArtifact(run: ArtifactRun): Promise<ArtifactResult> {
  const started = Date.now();
  const cgroup = makeCgroup();
  // The shell joins the cgroup before it becomes the artifact: nothing it starts is outside.
  const [command, args] = cgroup
    ? ['/bin/sh', ['-c', 'echo $$ 2>/dev/null >"$0/cgroup.procs"; exec "$1"', cgroup, run.path]]
    : [run.path, []];
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: run.cwd,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...run.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const track = run.trackFile;
    if (track && child.pid !== undefined) {
      const start = startTime(child.pid);
      const boot = bootId();
      // Not fsynced: a power cut ends the artifact too; this is for a Ferry killed alone.
      try {
        if (start !== null && boot !== null)
          writeFileSync(
            track,
            JSON.stringify({ pid: child.pid, start, boot, cgroup } satisfies Tracked),
          );
      } catch {
        // the run goes on: only recovery after a kill would have used it
      }
    }
    let output = '';
    let logged = 0;
    let truncated = false;
    let timedOut = false;
    let ended = false;
    const killed: string[] = [];
    const partial = { stdout: '', stderr: '' };
    const emit = (stream: 'stdout' | 'stderr', line: string): void => {
      if (truncated) return;
      logged += line.length + LINE_COST;
      if (logged > OUTPUT_CAP) {
        truncated = true;
        run.onOutput?.('stderr', `(output beyond ${OUTPUT_CAP / 1024 / 1024} MiB not kept)`);
        return;
      }
      run.onOutput?.(stream, line);
      output += `${stream === 'stderr' ? '! ' : ''}${line}\n`;
    };
    const take = (stream: 'stdout' | 'stderr', text: string): void => {
      const lines = (partial[stream] + text).split('\n');
      let rest = lines.pop() ?? '';
      for (const line of lines) emit(stream, line.slice(0, LINE_CAP));
      while (rest.length > LINE_CAP) {
        emit(stream, rest.slice(0, LINE_CAP));
        rest = rest.slice(LINE_CAP);
      }
      partial[stream] = rest;
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream].setEncoding('utf8');
      child[stream].on('data', (text: string) => take(stream, text));
    }
    const endAll = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      const pids = startedBy(child.pid, cgroup);
      if (signal === 'SIGKILL')
        for (const pid of pids)
          if (!killed.includes(describeProcess(pid))) killed.push(describeProcess(pid));
      if (cgroup && signal === 'SIGKILL') {
        try {
          writeFileSync(join(cgroup, 'cgroup.kill'), '1');
        } catch {
          // a kernel before 5.14: the signals below do it
        }
      }
      signalAll(pids, signal);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // the group is already gone
      }
      endAll('SIGTERM');
      setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        endAll('SIGKILL');
      }, KILL_GRACE_MS).unref();
    }, run.timeoutSeconds * 1000);
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const finish = (): void => {
      if (ended || !exit) return;
      ended = true;
      clearTimeout(timer);
      for (const stream of ['stdout', 'stderr'] as const) {
        if (partial[stream]) emit(stream, partial[stream]);
        child[stream].destroy();
      }
      if (killed.length > 0)
        run.onOutput?.('stderr', `(ended what it left running: ${killed.join(', ')})`);
      try {
        if (track) rmSync(track, { force: true });
      } catch {
        // a filesystem gone read-only: what it names has ended, which recovery checks by its start time
      }
      const tail = output.trimEnd().split('\n').slice(-TAIL_LINES).join('\n');
      const result: ArtifactResult = {
        exitCode: exit.code,
        signal: exit.signal,
        timedOut,
        output,
        truncated,
        tail,
        seconds: (Date.now() - started) / 1000,
        killed,
      };
      if (cgroup) void removeCgroup(cgroup).then(() => resolve(result));
      else resolve(result);
    };
    child.on('error', (error) => {
      output += `! could not start ${run.path}: ${error.message}\n`;
      exit = { code: 127, signal: null };
      finish();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Whatever it started goes with it; then its pipes get a moment to drain.
      endAll('SIGKILL');
      setTimeout(finish, PIPE_GRACE_MS);
    });
    child.on('close', finish);
  });
}

export function describeFailure(result: ArtifactResult, timeoutSeconds: number): string {
  if (result.timedOut) return `timed out after ${timeoutSeconds} s (its process group was killed)`;
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with status ${result.exitCode}`;
}

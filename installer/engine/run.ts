import { spawn } from 'node:child_process';

/** Output kept per artifact in the transaction log; the tail is what a person sees on failure. */
export const OUTPUT_CAP = 1024 * 1024;
const TAIL_LINES = 20;
const KILL_GRACE_MS = 2000;

export interface ArtifactRun {
  /** The artifact file, already extracted and checked against its sha256. */
  path: string;
  env: Record<string, string>;
  cwd: string;
  timeoutSeconds: number;
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
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
}

/**
 * Runs one artifact as a child process in its own process group, with the
 * documented environment and nothing else but PATH. On timeout the whole
 * group gets SIGTERM, then SIGKILL: scripts that start daemons or pipelines
 * cannot outlive their pass.
 */
export function runArtifact(run: ArtifactRun): Promise<ArtifactResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(run.path, [], {
      cwd: run.cwd,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...run.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let truncated = false;
    let timedOut = false;
    const partial = { stdout: '', stderr: '' };
    const take = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
      const text = partial[stream] + chunk.toString('utf8');
      const lines = text.split('\n');
      partial[stream] = lines.pop() ?? '';
      for (const line of lines) emit(stream, line);
    };
    const emit = (stream: 'stdout' | 'stderr', line: string): void => {
      run.onOutput?.(stream, line);
      if (output.length + line.length + 1 > OUTPUT_CAP) {
        truncated = true;
        return;
      }
      output += `${stream === 'stderr' ? '! ' : ''}${line}\n`;
    };
    child.stdout.on('data', (chunk: Buffer) => take('stdout', chunk));
    child.stderr.on('data', (chunk: Buffer) => take('stderr', chunk));
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
    }, run.timeoutSeconds * 1000);
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      // Whatever the artifact left running in its group goes with it.
      killGroup('SIGKILL');
      for (const stream of ['stdout', 'stderr'] as const)
        if (partial[stream]) emit(stream, partial[stream]);
      const tail = output.trimEnd().split('\n').slice(-TAIL_LINES).join('\n');
      resolve({
        exitCode,
        signal,
        timedOut,
        output,
        truncated,
        tail,
        seconds: (Date.now() - started) / 1000,
      });
    };
    child.on('error', (error) => {
      output += `! could not start ${run.path}: ${error.message}\n`;
      finish(127, null);
    });
    // A background process the artifact started would hold the pipes open: end the group on exit.
    child.on('exit', () => killGroup('SIGKILL'));
    child.on('close', finish);
  });
}

export function describeFailure(result: ArtifactResult, timeoutSeconds: number): string {
  if (result.timedOut) return `timed out after ${timeoutSeconds} s (its process group was killed)`;
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with status ${result.exitCode}`;
}

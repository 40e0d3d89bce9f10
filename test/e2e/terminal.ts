import { execFileSync } from 'node:child_process';
import { afterAll } from 'vitest';
import { FERRY } from '../helpers.js';

let terminals = 0;

interface TerminalOptions {
  width?: number;
  height?: number;
  env?: Record<string, string>;
}

/**
 * A real terminal of a given size: tmux on a private socket (killed after the
 * file's tests) runs a command; the test reads the screen and types keys.
 * When the command ends its exit code is printed as `exit=N`.
 */
export class Terminal {
  private readonly socket = `ferry-term-${process.pid}-${terminals++}`;

  constructor() {
    afterAll(() => this.close());
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
  }

  /** Runs `ferry ARGS` in a new session of width × height, with these environment variables. */
  ferry(session: string, args: readonly string[], options: TerminalOptions = {}): void {
    this.run(session, [process.execPath, FERRY, ...args], options);
  }

  /**
   * Runs any command (a ferry-installer) the same way; `clean` starts it with
   * only the given variables and TERM, as from a bare login on an appliance.
   */
  run(
    session: string,
    command: readonly string[],
    options: TerminalOptions & { clean?: boolean } = {},
  ): void {
    const env = Object.entries({
      ...(options.clean ? { TERM: process.env.TERM ?? 'xterm' } : {}),
      ...options.env,
    }).map(([k, v]) => `${k}=${v}`);
    const line = ['env', ...(options.clean ? ['-i'] : []), ...env, ...command].map(quote).join(' ');
    this.tmux(
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      String(options.width ?? 80),
      '-y',
      String(options.height ?? 24),
      `${line}; echo "exit=$?"; sleep 600`,
    );
  }

  /**
   * What the session shows, with what scrolled off the top; `visible`: only
   * the rows on screen now (a full-screen program's frame).
   */
  screen(session: string, { visible = false } = {}): string {
    return this.tmux('capture-pane', '-t', session, '-p', ...(visible ? [] : ['-S', '-500']));
  }

  async waitFor(
    session: string,
    text: string | RegExp,
    { timeoutMs = 30_000, visible = false } = {},
  ): Promise<string> {
    const until = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < until) {
      screen = this.screen(session, { visible });
      if (typeof text === 'string' ? screen.includes(text) : text.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`the screen never showed ${String(text)}:\n${screen}`);
  }

  /** Resizes the session's window, as an operator resizing the terminal would. */
  resize(session: string, width: number, height: number): void {
    this.tmux('resize-window', '-t', session, '-x', String(width), '-y', String(height));
  }

  keys(session: string, ...keys: string[]): void {
    this.tmux('send-keys', '-t', session, ...keys);
  }

  /** Closes the session's terminal, as an operator closing its window would: its programs get SIGHUP and a hung-up tty. */
  kill(session: string): void {
    this.tmux('kill-session', '-t', session);
  }

  close(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // no server left
    }
  }
}

/** A word for sh -c: bare when it is safe, else single-quoted. */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MAX_TIMER_SECONDS, secondsFromEnv } from '../../manifest-schema/durations.js';
import { FerryError } from '../../manifest-schema/errors.js';

/**
 * A user name and password (or token) for one registry. The secret sits in a
 * private field so that logging, inspecting or JSON-encoding the object (or an
 * error that holds it) never shows it; only the transport reads it.
 */
export class RegistryCredentials {
  readonly username: string;
  /** Where they came from, for messages: an environment variable pair, a config file, a helper. */
  readonly source: string;
  readonly #secret: string;

  constructor(username: string, secret: string, source: string) {
    this.username = username;
    this.source = source;
    this.#secret = secret;
  }

  /** The `Authorization: Basic` value. */
  basic(): string {
    return `Basic ${Buffer.from(`${this.username}:${this.#secret}`).toString('base64')}`;
  }

  toJSON(): Record<string, string> {
    return { username: this.username, source: this.source };
  }

  toString(): string {
    return `user ${this.username} (from ${this.source})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RegistryCredentials(${this.toString()})`;
  }
}

const HELPER_SECONDS = 'FERRY_CREDENTIAL_HELPER_SECONDS';
const HELPER_ANSWER_LIMIT = 64 * 1024;
const USER = 'FERRY_REGISTRY_USER';
const PASSWORD = 'FERRY_REGISTRY_PASSWORD';

/**
 * The credentials for `registry` (`host[:port]`), or undefined when none are
 * configured (anonymous access). In order: `FERRY_REGISTRY_USER` and
 * `FERRY_REGISTRY_PASSWORD`; then the Docker config (`$DOCKER_CONFIG/config.json`,
 * else `~/.docker/config.json`) as `docker login` writes it: its `credHelpers`
 * entry for the registry, else its `credsStore`, else `auths[registry]`
 * (`auth`: base64 of `user:password`). Never from a command-line flag.
 */
export async function loadRegistryCredentials(
  registry: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RegistryCredentials | undefined> {
  // Read whether a helper is configured or not: a bad value is refused, not ignored until one is.
  const helperSeconds = secondsFromEnv(env, HELPER_SECONDS, 60, { atMost: MAX_TIMER_SECONDS });
  const user = env[USER];
  const password = env[PASSWORD];
  if (user || password) {
    if (!user || !password) {
      throw new FerryError('E_REGISTRY_AUTH', `${USER} and ${PASSWORD} must be set together`, {
        registry,
        hint: `set both, or neither to use the Docker config`,
      });
    }
    return new RegistryCredentials(user, password, `${USER}/${PASSWORD}`);
  }
  const file = join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker'), 'config.json');
  const config = await readDockerConfig(file, registry);
  if (!config) return undefined;
  const helper = config.credHelpers?.[registry] ?? config.credsStore;
  if (helper) return fromHelper(helper, registry, file, env, helperSeconds);
  const entry = Object.entries(config.auths ?? {}).find(([key]) => authKey(key) === registry)?.[1];
  if (!entry) return undefined;
  return fromAuthEntry(entry, registry, file);
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

async function readDockerConfig(file: string, registry: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FerryError('E_REGISTRY_AUTH', `cannot read the Docker config ${file}`, {
      file,
      registry,
      hint: 'check its permissions, or set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD',
      cause: error,
    });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed;
  } catch {
    // JSON.parse quotes the text around the fault, which may be a secret: say only where.
  }
  throw new FerryError('E_REGISTRY_AUTH', `the Docker config ${file} is not a JSON object`, {
    file,
    registry,
    hint: 'repair it (docker login rewrites it), or set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD',
  });
}

/** `https://host:port/v1/` and `host:port` both name `host:port`. */
function authKey(key: string): string {
  return (key.replace(/^[a-z]+:\/\//i, '').split('/')[0] ?? '').toLowerCase();
}

function fromAuthEntry(entry: AuthEntry, registry: string, file: string): RegistryCredentials {
  const source = `${file} (auths)`;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0)
      return new RegistryCredentials(decoded.slice(0, colon), decoded.slice(colon + 1), source);
  } else if (entry.username && entry.password) {
    return new RegistryCredentials(entry.username, entry.password, source);
  }
  throw new FerryError(
    'E_REGISTRY_AUTH',
    `the Docker config ${file} has an entry for ${registry} without a user name and password`,
    {
      file,
      registry,
      hint: entry.identitytoken
        ? 'identity tokens are not supported: set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD'
        : `run docker login ${registry} again, or set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD`,
    },
  );
}

/** Asks `docker-credential-<helper> get`, the protocol Docker's credential helpers speak. */
async function fromHelper(
  helper: string,
  registry: string,
  file: string,
  env: NodeJS.ProcessEnv,
  /**
   * How long it may take (FERRY_CREDENTIAL_HELPER_SECONDS): a helper waiting on a locked
   * keychain or a passphrase nobody will type (a CI runner, a headless burning station)
   * would hold Ferry for ever, silently.
   */
  seconds: number,
): Promise<RegistryCredentials | undefined> {
  const program = `docker-credential-${helper}`;
  // Looked up on PATH, as Docker does: a name with a slash would run a file by its path.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(helper))
    throw new FerryError(
      'E_REGISTRY_AUTH',
      `${file} names the credential helper ${JSON.stringify(helper.slice(0, 100))}, which is not a helper's name`,
      {
        file,
        registry,
        hint: 'name a helper as docker login does ("pass", "secretservice"), or set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD',
      },
    );
  const result = await new Promise<{
    code: number | null;
    stdout: string;
    failed?: Error;
    late?: boolean;
  }>((resolve) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      child.kill('SIGKILL');
      // Not waiting for 'close': a process the helper started may still hold its stdout.
      child.stdout.destroy();
      resolve({ code: null, stdout, late });
    }, seconds * 1000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // An answer is a few hundred bytes: one that goes on is not an answer.
      if (stdout.length > HELPER_ANSWER_LIMIT) child.kill('SIGKILL');
    });
    child.on('error', (failed) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, failed });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, late });
    });
    child.stdin.on('error', () => undefined); // a helper that exits before reading
    child.stdin.end(registry);
  });
  const fail = (why: string): never => {
    throw new FerryError(
      'E_REGISTRY_AUTH',
      `the credential helper ${program} (named in ${file}) ${why}`,
      {
        file,
        registry,
        hint: `install it or fix it, or set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD`,
        cause: result.failed,
      },
    );
  };
  if (result.failed) return fail('cannot be run');
  if (result.late)
    return fail(
      `did not answer within ${seconds} s (${HELPER_SECONDS}); is it waiting for a keychain or a passphrase?`,
    );
  if (result.stdout.length > HELPER_ANSWER_LIMIT) return fail('answered more than 64 KiB');
  // Helpers answer "credentials not found" with a failing exit: anonymous access.
  if (result.code !== 0) return undefined;
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(result.stdout) as typeof answer;
  } catch {
    return fail('did not answer with JSON');
  }
  if (typeof answer.Username !== 'string' || typeof answer.Secret !== 'string' || !answer.Secret)
    return fail('answered without Username and Secret');
  return new RegistryCredentials(answer.Username, answer.Secret, program);
}

import { closeSync, openSync } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import {
  canonicalJson,
  envelopeBytes,
  FerryError,
  FORMAT_VERSION,
  generateEd25519,
  ioError,
  keyIdOf,
  MAX_SIGNATURES,
  MAX_TIMER_SECONDS,
  NAME_PATTERN,
  parsePrivateKey,
  parsePublicKey,
  PAYLOAD_TYPE,
  secondsFromEnv,
  signDocument,
  withSignatures,
  writeFileAtomic,
  type BundleMetadata,
  type Envelope,
  type Signer,
  type TrustRoot,
} from '../manifest-schema/index.js';

// Keys: made by `keygen`, trusted by `trust init`, read once (or run, as a signer) to sign bundle.json in `build`.

export interface KeygenResult {
  keyid: string;
  privateKey: string;
  publicKey: string;
}

/** Writes NAME.key (0600) and NAME.pub; refuses to overwrite a key. */
export async function keygen(outDir: string, name = 'ferry'): Promise<KeygenResult> {
  if (!new RegExp(NAME_PATTERN).test(name)) {
    throw new FerryError('E_USAGE', `key name "${name}" is not a valid name`, {
      hint: 'use lower-case letters, digits, . _ -',
    });
  }
  await mkdir(outDir, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, outDir, 'create');
  });
  const privateKey = join(outDir, `${name}.key`);
  const publicKey = join(outDir, `${name}.pub`);
  for (const file of [privateKey, publicKey])
    await refuseExisting(file, 'a key is never overwritten: choose another --name or folder');
  const pair = generateEd25519();
  try {
    await writeFile(privateKey, pair.privatePem, { mode: 0o600, flag: 'wx' });
    await writeFile(publicKey, pair.publicPem, { mode: 0o644, flag: 'wx' });
  } catch (error) {
    throw ioError(error, outDir, 'write keys into');
  }
  return { keyid: pair.keyid, privateKey, publicKey };
}

/** A trust root of the given public keys, needing `threshold` of them to sign. */
export async function trustInit(
  publicKeys: readonly string[],
  threshold: number,
  out: string,
): Promise<TrustRoot> {
  if (publicKeys.length === 0) {
    throw new FerryError('E_USAGE', 'a trust root needs at least one key', {
      hint: 'pass --key KEY.pub (repeat it for several keys)',
    });
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > publicKeys.length) {
    throw new FerryError(
      'E_USAGE',
      `threshold ${threshold} must be a whole number from 1 to ${publicKeys.length}`,
      {
        hint: 'the threshold is how many of the keys must sign a bundle',
      },
    );
  }
  const keys: TrustRoot['keys'] = [];
  for (const file of publicKeys) {
    const { keyid, name, pem } = await readPublicKey(file);
    if (keys.some((k) => k.keyid === keyid)) throw sameKeyTwice(file);
    keys.push({ keyid, name, publicKey: pem });
  }
  const root: TrustRoot = { formatVersion: FORMAT_VERSION, threshold, keys };
  await makeParent(out);
  await writeFileAtomic(out, `${JSON.stringify(root, null, 2)}\n`);
  return root;
}

export interface SigningOptions {
  /** Private keys by where to find them: a file, `env:VAR` or `-` (stdin). */
  keys: readonly string[];
  /** Shell commands, each reading the bytes to sign on stdin and printing the signature. */
  signers?: readonly string[];
  /**
   * The signers' public keys (a file or `env:VAR`), in the order of `signers`;
   * when absent, each signer is asked for its own.
   */
  signerKeys?: readonly string[];
  /** The option the keys were given with, for messages: `--key` unless told. */
  keyOption?: string;
}

/** Everything a document is signed with, each key once. */
export async function readSigners(options: SigningOptions): Promise<Signer[]> {
  const commands = options.signers ?? [];
  const publicKeys = options.signerKeys ?? [];
  const option = options.keyOption ?? '--key';
  if (options.keys.length === 0 && commands.length === 0) {
    throw new FerryError('E_USAGE', 'signing needs at least one key', {
      hint: 'pass --key KEY (a file, env:VAR or -; repeat it for several keys) or --signer COMMAND',
    });
  }
  // Every reader refuses a document with more signatures, before checking any.
  if (options.keys.length + commands.length > MAX_SIGNATURES)
    throw new FerryError(
      'E_USAGE',
      `${options.keys.length + commands.length} keys sign, and a signed document carries at most ${MAX_SIGNATURES} signatures`,
      { hint: `sign with at most ${MAX_SIGNATURES} keys: a threshold never needs more` },
    );
  if (options.keys.filter((source) => source === '-').length > 1)
    throw new FerryError('E_USAGE', `${option} - is given twice: stdin holds one key`, {
      hint: 'pass the other keys as files or env:VAR',
    });
  // Paired in order, so the count must match: a key that names the wrong signer is refused when it signs, a missing one would be guessed.
  if (publicKeys.length > 0 && publicKeys.length !== commands.length)
    throw new FerryError(
      'E_USAGE',
      `${publicKeys.length} --signer-key for ${commands.length} --signer: give one per signer, in the same order, or none`,
      {
        hint:
          commands.length === 0
            ? 'pass --signer COMMAND with it, or sign with --key'
            : 'without --signer-key each signer is asked for its public key',
      },
    );
  const signers: Signer[] = [];
  const add = (signer: Signer, source: string) => {
    if (signers.some((earlier) => earlier.keyid === signer.keyid)) throw sameKeyTwice(source);
    signers.push(signer);
  };
  for (const source of options.keys) {
    const key = await readPrivateKeySource(source, option);
    add(keySigner(key), source);
  }
  for (const [index, command] of commands.entries())
    add(await externalSigner(command, publicKeys[index]), `--signer ${command}`);
  return signers;
}

/** A private key Ferry holds, as a signer. */
export function keySigner(key: KeyObject): Signer {
  return {
    keyid: keyIdOf(key),
    publicKey: createPublicKey(key),
    sign: (bytes) => Promise.resolve(sign(null, bytes, key)),
  };
}

/**
 * A private key from a file, an environment variable (`env:VAR`) or stdin
 * (`-`), so that CI can hand over a secret without writing it to disk. Its
 * contents never appear in a message.
 */
export async function readPrivateKeySource(source: string, option = '--key'): Promise<KeyObject> {
  if (source === '-') {
    const pem = await readStdin();
    if (pem.trim() === '')
      throw new FerryError('E_KEY_SOURCE', `${option} - found nothing on stdin`, {
        hint: 'pipe the PEM private key in, e.g. from the CI secret store',
      });
    return parsePrivateKey(pem, 'the key on stdin');
  }
  if (source.startsWith('env:')) {
    const name = envName(source, option);
    const pem = process.env[name];
    if (pem === undefined || pem.trim() === '')
      throw new FerryError('E_KEY_SOURCE', `environment variable ${name} is not set or empty`, {
        hint: `put the PEM private key in ${name} (a CI secret), or pass ${option} FILE`,
      });
    return parsePrivateKey(pem, `environment variable ${name}`);
  }
  if (isPastedKey(source))
    throw new FerryError('E_KEY_SOURCE', `${option} was given a key itself, not where to find it`, {
      hint: `put the key in an environment variable and pass ${option} env:VAR, or pipe it to ${option} -`,
    });
  return readPrivateKey(source);
}

/** The variable `env:VAR` names; `env:` alone names none, and a message about it would name nothing. */
function envName(source: string, option: string): string {
  const name = source.slice('env:'.length);
  if (name === '')
    throw new FerryError('E_KEY_SOURCE', `${option} env: names no environment variable`, {
      hint: `write ${option} env:VAR, VAR being the variable that holds the PEM key`,
    });
  return name;
}

/** Keys are small: more than this on stdin or from a signer is not a key or a signature. */
const MAX_KEY_BYTES = 64 * 1024;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_KEY_BYTES)
      throw new FerryError('E_KEY_SOURCE', `stdin holds more than ${MAX_KEY_BYTES} bytes`, {
        hint: 'pipe one PEM private key to --key -',
      });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A signer that is a program (a KMS or HSM client): it reads the bytes to
 * sign on stdin and prints the Ed25519 signature, raw, hex or base64. Its
 * public key names the key id in the bundle; with no --signer-key the program
 * is asked for it, run with FERRY_SIGNER=public-key. Every signature it
 * prints is checked against that public key before it goes into a bundle.
 */
async function externalSigner(command: string, publicKeySource?: string): Promise<Signer> {
  // Read before the signer first runs: a bad value stops the command before it writes.
  // setTimeout takes at most 2^31-1 ms (24.8 days): "a month" is taken as that.
  const seconds = secondsFromEnv(process.env, SIGNER_SECONDS_VARIABLE, SIGNER_SECONDS, {
    atMost: MAX_TIMER_SECONDS,
  });
  const publicKey =
    publicKeySource !== undefined
      ? await readPublicKeySource(publicKeySource)
      : parseSignerPublicKey(
          command,
          await runSigner(command, 'public-key', Buffer.alloc(0), seconds),
        );
  const keyid = keyIdOf(publicKey);
  return {
    keyid,
    publicKey,
    async sign(message) {
      const signature = decodeSignature(
        command,
        await runSigner(command, 'sign', message, seconds),
      );
      if (!verify(null, message, publicKey, signature))
        throw new FerryError(
          'E_SIGNER',
          `the signature from --signer ${command} does not verify with key ${keyid.slice(0, 16)}…`,
          { hint: 'check that --signer-key is the public half of the key the signer uses' },
        );
      return signature;
    },
  };
}

async function readPublicKeySource(source: string): Promise<KeyObject> {
  if (!source.startsWith('env:')) return (await readPublicKey(source)).key;
  const name = envName(source, '--signer-key');
  const pem = process.env[name];
  if (pem === undefined || pem.trim() === '')
    throw new FerryError('E_KEY_SOURCE', `environment variable ${name} is not set or empty`, {
      hint: `put the signer's PEM public key in ${name}, or pass --signer-key FILE`,
    });
  return parsePublicKey(pem, `environment variable ${name}`);
}

function parseSignerPublicKey(command: string, output: Buffer): KeyObject {
  try {
    return parsePublicKey(output.toString('utf8'), `the output of --signer ${command}`);
  } catch (cause) {
    throw new FerryError(
      'E_SIGNER',
      `--signer ${command} printed no public key when run with FERRY_SIGNER=public-key`,
      { hint: "pass the signer's public key with --signer-key FILE", cause },
    );
  }
}

const SIGNATURE_BYTES = 64;

function decodeSignature(command: string, output: Buffer): Buffer {
  if (output.length === SIGNATURE_BYTES) return output;
  const text = output.toString('latin1').trim();
  const decoded = /^[0-9a-f]+$/i.test(text)
    ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9+/=\s]+$/.test(text)
      ? Buffer.from(text, 'base64')
      : Buffer.alloc(0);
  if (decoded.length === SIGNATURE_BYTES) return decoded;
  throw new FerryError(
    'E_SIGNER',
    `--signer ${command} printed ${output.length} bytes, not an Ed25519 signature (64 bytes raw, hex or base64)`,
    { hint: 'make the command print only the signature on stdout' },
  );
}

/** How long a signer may take by default: an HSM may wait for a touch or a PIN. */
const SIGNER_SECONDS = 300;
const SIGNER_SECONDS_VARIABLE = 'FERRY_SIGNER_SECONDS';

/** After the timeout's SIGTERM, how long what the signer started has to end before SIGKILL. */
const KILL_GRACE_MS = 2000;

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * After the signer exits, how long its output may take to arrive: a process
 * it left running (an agent, a daemon) can hold stdout open for ever, and
 * what the signer printed is in the pipe by the time it has exited.
 */
const AFTER_EXIT_MS = 200;

/**
 * Whether Ferry has a controlling terminal, on which a signer may ask for a PIN.
 * There the signer stays in Ferry's process group: in a group of its own it would be
 * a background job, stopped (SIGTTIN) as soon as it read the PIN, so its timeout
 * ends the shell alone. Without one (CI) nothing can prompt, and the signer gets a
 * group of its own, which the timeout ends whole: what it started (an HSM or KMS
 * client, an agent) would otherwise run on, holding its pipes.
 */
function hasTerminal(): boolean {
  try {
    closeSync(openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}

/** Runs the signer through the shell; its stderr passes through, for prompts and its own errors. */
function runSigner(
  command: string,
  purpose: string,
  input: Buffer,
  seconds: number,
): Promise<Buffer> {
  const ownGroup = !hasTerminal();
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...process.env, FERRY_SIGNER: purpose },
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: ownGroup,
    });
    const stop = (signal: NodeJS.Signals): void => {
      try {
        if (!ownGroup) child.kill(signal);
        else if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    // Out of Ferry's group, the signer no longer gets what a CI runner cancelling the job
    // sends that group: pass it on, then let it end Ferry as it would have.
    const passOn = (signal: NodeJS.Signals): void => {
      for (const one of STOP_SIGNALS) process.removeListener(one, passOn);
      stop('SIGTERM');
      // As the timeout does: what ignores SIGTERM gets SIGKILL, since the runner's own
      // SIGKILL of the job's group no longer reaches a group of its own.
      const killed = setTimeout(() => {
        stop('SIGKILL');
        process.kill(process.pid, signal);
      }, KILL_GRACE_MS);
      child.once('close', () => {
        clearTimeout(killed);
        stop('SIGKILL');
        process.kill(process.pid, signal);
      });
    };
    // Ferry ending any other way (an uncaught error, exit) takes the signer's group along.
    const onExit = (): void => stop('SIGKILL');
    if (ownGroup) process.once('exit', onExit);
    if (ownGroup) for (const one of STOP_SIGNALS) process.on(one, passOn);
    // Settled once the group had its SIGKILL: Ferry may exit as soon as the build is refused.
    let ended: Promise<void> | undefined;
    const timer = setTimeout(() => {
      stop('SIGTERM');
      if (ownGroup)
        ended = new Promise((done) =>
          setTimeout(() => {
            stop('SIGKILL');
            done();
          }, KILL_GRACE_MS),
        );
      else ended = Promise.resolve();
    }, seconds * 1000);
    const chunks: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_KEY_BYTES) chunks.push(chunk);
    });
    // A signer that exits without reading its input is judged by its exit and output.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    // The timer, then one more turn of the loop to read what is left in the pipe, then stop waiting.
    child.on('exit', () =>
      setTimeout(() => setImmediate(() => child.stdout.destroy()), AFTER_EXIT_MS).unref(),
    );
    const done = (): void => {
      clearTimeout(timer);
      for (const one of STOP_SIGNALS) process.removeListener(one, passOn);
      process.removeListener('exit', onExit);
    };
    child.on('error', (cause) => {
      done();
      reject(
        new FerryError('E_SIGNER', `could not start --signer ${command}: ${cause.message}`, {
          hint: 'check the command',
          cause,
        }),
      );
    });
    child.on('close', (code, signal) => {
      done();
      if (ended === undefined && code === 0 && size <= MAX_KEY_BYTES)
        return resolvePromise(Buffer.concat(chunks));
      const how =
        ended !== undefined
          ? `did not finish within ${seconds} s (${SIGNER_SECONDS_VARIABLE}${ownGroup ? '; it and what it started were stopped' : ''})`
          : signal !== null
            ? `was stopped by ${signal}`
            : code === 0
              ? `printed more than ${MAX_KEY_BYTES} bytes`
              : `exited with ${code}`;
      const refused = new FerryError(
        'E_SIGNER',
        `--signer ${command} ${how} while asked for ${purpose}`,
        {
          hint:
            ended !== undefined
              ? `is it waiting for a PIN or a touch? Run the command by hand to check it, or give it longer with ${SIGNER_SECONDS_VARIABLE}`
              : 'its own message is above; run the command by hand to check it',
        },
      );
      void (ended ?? Promise.resolve()).then(() => reject(refused));
    });
  });
}

/** bundle.json's bytes: the metadata's canonical JSON in an envelope signed by every signer. */
export async function signMetadata(
  metadata: BundleMetadata,
  signers: readonly Signer[],
): Promise<Buffer> {
  return envelopeBytes(await signDocument(Buffer.from(canonicalJson(metadata)), signers));
}

/** bundle.json's size before anything is signed: Ed25519 signatures are all one length. */
export function signedMetadataSize(metadata: BundleMetadata, signers: readonly Signer[]): number {
  const payload = Buffer.from(canonicalJson(metadata));
  const sig = Buffer.alloc(SIGNATURE_BYTES).toString('base64');
  const signatures = signers.map(({ keyid }) => ({ keyid, sig }));
  return envelopeBytes(withSignatures(unsigned(payload), signatures)).length;
}

function unsigned(payload: Buffer, payloadType = PAYLOAD_TYPE): Envelope {
  return { payloadType, payload: payload.toString('base64'), signatures: [] };
}

/** The same key twice is a mistake, not a second signature. */
function sameKeyTwice(source: string): FerryError {
  return new FerryError('E_USAGE', `${source} is the same key as an earlier one`, {
    file: source,
    hint: 'pass each key once',
  });
}

/**
 * A new chain's folder (`--out trust/root-1.json`) is made as `keygen --out` makes its own:
 * a missing folder would otherwise be reported as the root file that does not exist.
 */
export async function makeParent(file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true }).catch((error: unknown) => {
    throw ioError(error, dirname(file), 'create');
  });
}

/** Throws E_EXISTS when `file` exists: keys and trust roots are never overwritten. */
export async function refuseExisting(file: string, hint: string): Promise<void> {
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (exists) throw new FerryError('E_EXISTS', `${file} already exists`, { file, hint });
}

export interface PublicKeyFile {
  key: KeyObject;
  keyid: string;
  /** The file's name without `.pub`: what messages and `ferry trust show` call the key. */
  name: string;
  pem: string;
}

/** Reads a public key that `ferry keygen` wrote. */
export async function readPublicKey(file: string): Promise<PublicKeyFile> {
  const pem = await readKeyFile(file);
  const key = parsePublicKey(pem, file);
  return { key, keyid: keyIdOf(key), name: basename(file).replace(/\.pub$/, ''), pem };
}

/** Reads a private key that `ferry keygen` wrote. */
export async function readPrivateKey(file: string): Promise<KeyObject> {
  return parsePrivateKey(await readKeyFile(file), file);
}

/** PEM text, or anything with a line break, given where a key's file name belongs. */
function isPastedKey(source: string): boolean {
  return /-----BEGIN|KEY-----|\n/.test(source);
}

/**
 * A key file's text. A key pasted in place of its file name is refused
 * without being echoed: no message shows a key, private or public.
 */
export async function readKeyFile(file: string): Promise<string> {
  if (isPastedKey(file))
    throw new FerryError(
      'E_KEY_SOURCE',
      'a key was given itself, in place of the name of its file',
      {
        hint: 'pass the path of the .pub (or .key) file that `ferry keygen` wrote; for a secret, env:VAR or - where the option takes them',
      },
    );
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw ioError(error, file, 'read');
  }
}

import { isIP } from 'node:net';
import { FerryError } from '../../manifest-schema/errors.js';

/**
 * Where a bundle repository lives in an OCI registry: `oci://host[:port]/name`.
 * Parsed once at the edge; everything after works with this value.
 */
export interface RegistryReference {
  /** `host[:port]` as written (host lower-cased, IPv6 in brackets): the key for credentials. */
  readonly registry: string;
  /** The repository name inside the registry, e.g. `acme/appliance`. */
  readonly repository: string;
  /** `http:` only for loopback or when `insecure` was asked for; `https:` otherwise. */
  readonly origin: string;
  /** True when the host is 127.0.0.0/8, ::1 or localhost. */
  readonly loopback: boolean;
  /**
   * True when `insecure` was given: plain HTTP to a host that is not loopback, the
   * registry's or one it leads to (a storage backend on plain HTTP behind a loopback tunnel).
   */
  readonly insecure: boolean;
}

export interface ReferenceOptions {
  /** Allow plain HTTP to a host that is not loopback (`--insecure`). */
  insecure?: boolean;
}

// The distribution spec's grammars, verbatim.
const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
// Many clients cap host, "/" and name together at 255 characters (distribution spec).
const MAX_REFERENCE = 255;

/**
 * Parses `oci://host[:port]/name`. Refuses a tag or digest in it (versions are
 * chosen separately), credentials in it (they come from the environment or the
 * Docker config, never from a command line), and plain HTTP to anything but
 * loopback unless `insecure` is given.
 */
export function parseRegistryReference(
  text: string,
  options: ReferenceOptions = {},
): RegistryReference {
  const fail = (why: string, hint: string): never => {
    throw new FerryError('E_REPO_REFERENCE', `${shown(text)} is not a usable repository: ${why}`, {
      field: 'repo',
      hint,
    });
  };
  const match = /^oci:\/\/([^/?#]*)\/([^?#]*)$/.exec(text);
  if (!match) {
    return fail(
      'it must read oci://host[:port]/name',
      'for example oci://registry.example.com/acme/appliance',
    );
  }
  const [, authority = '', path = ''] = match;
  if (authority.includes('@')) {
    return fail(
      'it carries credentials',
      'remove them: Ferry reads FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD, or the Docker config (docker login)',
    );
  }
  const host = parseAuthority(authority);
  if (!host) {
    return fail(
      `"${authority}" is not a host name or address with an optional port`,
      'write host, host:port, an IPv4 address or [IPv6]:port',
    );
  }
  if (/[@:]/.test(path.split('/').at(-1) ?? '')) {
    return fail(
      'it names a tag or digest',
      'name the repository only; a version is chosen with --version or --channel',
    );
  }
  if (!NAME.test(path)) {
    return fail(
      `"${path}" breaks the repository name grammar`,
      'lower-case letters and digits, separated by ".", "_", "__", "-" or "/" (no leading, trailing or doubled "/")',
    );
  }
  if (host.registry.length + 1 + path.length > MAX_REFERENCE) {
    return fail(
      `host and name together are longer than ${MAX_REFERENCE} characters`,
      'use a shorter name',
    );
  }
  const insecure = options.insecure === true;
  return {
    registry: host.registry,
    repository: path,
    // As URLs spell it (`[::1]`, no `:443`): credentials and the redirect check go by origin,
    // so `registry.example.com:443` written out would otherwise never be sent them.
    origin: new URL(`${host.loopback || insecure ? 'http' : 'https'}://${host.registry}`).origin,
    loopback: host.loopback,
    insecure,
  };
}

/** `oci://host[:port]/name`, for messages. */
export function formatReference(reference: RegistryReference): string {
  return `oci://${reference.registry}/${reference.repository}`;
}

export function isTag(value: string): boolean {
  return TAG.test(value);
}

export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** Throws E_REPO_REFERENCE unless `value` is a tag or a sha256 digest. */
export function assertTagOrDigest(value: string, what = 'tag or digest'): void {
  if (isTag(value) || isDigest(value)) return;
  throw new FerryError(
    'E_REPO_REFERENCE',
    `${shown(value)} is not a valid ${what}: a tag is up to 128 of [A-Za-z0-9_.-] not starting with "." or "-"; a digest is sha256:<64 hex>`,
    {
      field: what,
      hint: 'a semver build suffix ("+build") is not allowed in a tag: replace "+" with "_"',
    },
  );
}

/** Throws E_REPO_REFERENCE unless `value` is a sha256 digest. */
export function assertDigest(value: string): void {
  if (isDigest(value)) return;
  throw new FerryError(
    'E_REPO_REFERENCE',
    `${shown(value)} is not a sha256 digest (sha256:<64 lower-case hex>)`,
    { field: 'digest', hint: 'Ferry addresses blobs and manifests by sha256 only' },
  );
}

/** True for 127.0.0.0/8, ::1 and localhost: the only hosts plain HTTP may reach by default. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.split('.')[0] === '127';
  if (isIP(bare) === 6) return new URL(`http://[${bare}]`).hostname === '[::1]';
  return false;
}

function parseAuthority(authority: string): { registry: string; loopback: boolean } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority);
  if (!match) return undefined;
  const [, rawHost = '', port] = match;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535 || port.startsWith('0')))
    return undefined;
  const host = rawHost.toLowerCase();
  const valid = host.startsWith('[')
    ? isIP(host.slice(1, -1)) === 6
    : isIP(host) === 4 || HOSTNAME.test(host);
  if (!valid) return undefined;
  return {
    registry: port === undefined ? host : `${host}:${port}`,
    loopback: isLoopbackHost(host),
  };
}

/** A value quoted for a message, cut short so a pasted secret or a huge argument is not echoed whole. */
function shown(value: string): string {
  const safe = value.replace(/\/\/[^/@]*@/, '//***@');
  return JSON.stringify(safe.length > 300 ? `${safe.slice(0, 300)}…` : safe);
}

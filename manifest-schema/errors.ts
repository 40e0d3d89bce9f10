/**
 * The one list of Ferry's error codes. Each code is stable (tests and scripts
 * match on it, never on wording) and maps to exactly one exit code, so the CLI
 * entry is the only place that turns an error into a process exit.
 *
 * Exit codes: 1 failed (rolled back, or nothing changed); 2 usage or input;
 * 3 trust (signature, hashes, tampering); 4 plan blocked; 5 busy or outside a
 * maintenance window.
 */
export const ERROR_CODES = {
  // usage and input (2)
  E_USAGE: { exit: 2, summary: 'the command line is wrong' },
  E_NOT_FOUND: {
    exit: 2,
    summary: 'a file or folder named on the command line or in a spec does not exist',
  },
  E_YAML: { exit: 2, summary: 'a YAML file does not parse' },
  E_JSON: { exit: 2, summary: 'a JSON file does not parse' },
  E_SPEC_INVALID: { exit: 2, summary: 'the release spec breaks its schema or a rule' },
  E_SPEC_PATH: {
    exit: 2,
    summary: 'a payload or artifact path in the spec is missing or unusable',
  },
  E_HISTORY_INVALID: { exit: 2, summary: 'a release record in the history is invalid' },
  E_HISTORY_MISSING: {
    exit: 2,
    summary:
      'the spec names a history folder that is missing or empty, and --first-release does not say this is the first release',
  },
  E_RELEASE_NOT_NEWER: {
    exit: 2,
    summary: 'the release is not newer than every release in its history',
  },
  E_RELEASE_EXISTS: {
    exit: 2,
    summary: 'the history already holds a different release of that version',
  },
  E_VERSION_REUSED: {
    exit: 2,
    summary: 'a component version the history records is built again with other files',
  },
  E_UNKNOWN_COMPONENT: { exit: 2, summary: 'a name refers to a component that does not exist' },
  E_CYCLE: {
    exit: 2,
    summary: 'components depend on each other in a cycle (in a plan: blocks it)',
  },
  E_UNSATISFIABLE: { exit: 2, summary: 'a requires range is not met by any version on offer' },
  E_KEY_INVALID: { exit: 2, summary: 'a key file is not a usable Ed25519 key' },
  E_KEY_SOURCE: {
    exit: 2,
    summary:
      'a --key source gives no key: an unset or empty environment variable, empty stdin, or the key itself in place of where to find it',
  },
  E_SIGNER: {
    exit: 2,
    summary:
      'the external signer failed, gave no public key, or printed a signature that does not verify with its public key',
  },
  E_TRUST_INVALID: { exit: 2, summary: 'a trust root file is invalid' },
  E_ROOT_KEY_UNKNOWN: {
    exit: 2,
    summary:
      'a key that is not a root key of this trust root or the one before was asked to sign it',
  },
  E_CONTROL_INVALID: { exit: 2, summary: 'a control table is invalid' },
  E_FORMAT_VERSION: { exit: 2, summary: 'the bundle format version is not one this Ferry knows' },
  E_INSTALLER_TOO_OLD: {
    exit: 2,
    summary:
      'the bundle needs a newer Ferry (minInstaller) and carries no installer this one can hand over to',
  },
  E_BUNDLE_FORMAT: { exit: 2, summary: 'the file is not a Ferry bundle (tar, tar.gz or zip)' },
  E_EXISTS: { exit: 2, summary: 'an output would overwrite an existing file' },
  E_NOT_INITIALIZED: { exit: 2, summary: 'the root holds no Ferry appliance (run ferry init)' },
  E_UNSAFE_ENVIRONMENT: {
    exit: 2,
    summary: 'the environment loads code into the installer (NODE_OPTIONS, LD_PRELOAD, …)',
  },
  E_STATE_INVALID: {
    exit: 2,
    summary:
      'an appliance file (state, config, facts), or the record of what a machine pulled, is corrupt or of an unknown version',
  },
  E_REPO_REFERENCE: {
    exit: 2,
    summary:
      'a repository reference (oci://host[:port]/name), tag or digest is malformed or refused',
  },
  E_REGISTRY_AUTH: {
    exit: 2,
    summary: 'the registry or its token service refused the credentials, or needs some',
  },
  E_MANIFEST_UNKNOWN: {
    exit: 2,
    summary: 'the registry holds no manifest under that tag or digest',
  },
  E_REPO_NOT_FOUND: {
    exit: 2,
    summary: 'no bundle repository there (the first publish creates one, given --trust)',
  },
  E_REPO_PRODUCT: { exit: 2, summary: 'the bundle is for another product than the repository' },
  E_UNKNOWN_VERSION: { exit: 2, summary: 'the repository holds no such version' },
  E_UNKNOWN_CHANNEL: { exit: 2, summary: 'the repository policy declares no such channel' },
  E_POLICY_INVALID: { exit: 2, summary: 'a repository policy file is invalid' },
  // trust and integrity (3)
  E_SIGNATURE: { exit: 3, summary: 'the metadata signature is invalid or untrusted' },
  E_THRESHOLD: { exit: 3, summary: 'too few trusted keys signed the metadata' },
  E_METADATA_INVALID: {
    exit: 3,
    summary: 'bundle.json is missing, malformed or breaks the schema',
  },
  E_METADATA_TOO_LARGE: {
    exit: 3,
    summary: 'bundle.json is larger or deeper than any real bundle needs',
  },
  E_METADATA_NOT_CANONICAL: {
    exit: 3,
    summary:
      'bundle.json is not the canonical JSON Ferry writes (duplicate keys, key order, white space)',
  },
  E_KEY_REVOKED: {
    exit: 3,
    summary: 'the metadata is signed by a targets key that a later trust root revoked',
  },
  E_ROOT_INVALID: {
    exit: 3,
    summary: 'a trust root in a chain is malformed, breaks the schema or contradicts itself',
  },
  E_ROOT_TOO_LARGE: { exit: 3, summary: 'a trust root in a chain is larger than 64 KiB' },
  E_ROOT_CHAIN_TOO_LONG: {
    exit: 3,
    summary: 'a chain of trust roots has more than 1024 steps past the trusted one',
  },
  E_ROOT_VERSION: {
    exit: 3,
    summary: 'a trust root in a chain is not the version after the one before it',
  },
  E_ROOT_THRESHOLD_OLD: {
    exit: 3,
    summary: 'too few root keys of the trusted root signed the next one',
  },
  E_ROOT_THRESHOLD_NEW: {
    exit: 3,
    summary: "too few of a new trust root's own root keys signed it",
  },
  E_ROOT_EXPIRED: { exit: 3, summary: 'the newest trust root of the chain has expired' },
  E_BUNDLE_EXPIRED: {
    exit: 3,
    summary: 'the bundle expired: its publisher set a time after which it is not installed',
  },
  E_HASH_MISMATCH: { exit: 3, summary: 'bytes do not match the sha256 in the signed metadata' },
  E_SIZE_MISMATCH: { exit: 3, summary: 'an entry is not the size the signed metadata declares' },
  E_UNSAFE_ENTRY: {
    exit: 3,
    summary: 'an archive entry could write outside its place or is of a refused type',
  },
  E_DUPLICATE_ENTRY: { exit: 3, summary: 'an archive holds the same entry name twice' },
  E_UNLISTED_ENTRY: { exit: 3, summary: 'an archive entry is not listed in the signed metadata' },
  E_MISSING_ENTRY: {
    exit: 3,
    summary: 'an entry listed in the signed metadata is not in the archive',
  },
  E_BUNDLE_CORRUPT: {
    exit: 3,
    summary: 'the archive is truncated or its structure is inconsistent',
  },
  E_DIGEST_MISMATCH: {
    exit: 3,
    summary: 'bytes sent to or read from a registry do not match their digest or size',
  },
  E_MANIFEST_INVALID: {
    exit: 3,
    summary: 'a manifest read from a registry is not a valid OCI manifest of the expected kind',
  },
  E_REPO_INVALID: {
    exit: 3,
    summary:
      'a repository document (channel, approval, event, policy) is malformed, unsigned or does not match its record',
  },
  E_REPO_TRUST: {
    exit: 3,
    summary:
      'the trust root given with --trust is not on the repository’s chain: older than the one it was made with, another product’s, or one it has not taken yet',
  },
  E_AUDIT_BROKEN: {
    exit: 3,
    summary: 'the audit chain is broken: an event was edited, removed or inserted',
  },
  E_CHANNEL_SET_BACK: {
    exit: 3,
    summary:
      'a channel holds an older document than this machine pulled from it before, or than the last move the audit log records (set back), the repository follows an older trust root than then, or it is not the one it pulled from',
  },
  E_MEDIA_INDEX_INVALID: {
    exit: 3,
    summary:
      "a volume's parts index (FERRY/PARTS.JSON) is oversized, malformed, or its parts do not add up",
  },
  E_PART_MISMATCH: {
    exit: 3,
    summary: 'a bundle part on a volume is not the size or sha256 its signed parts index gives',
  },
  // plan (4): these are reasons inside a plan; a blocked plan exits 4
  E_PLAN_BLOCKED: { exit: 4, summary: 'the plan has errors; nothing was changed' },
  E_PRODUCT: { exit: 4, summary: 'the bundle is for another product' },
  E_PLATFORM: { exit: 4, summary: 'the appliance platform is outside a required range' },
  E_UNSUPPORTED_FROM: { exit: 4, summary: 'the bundle cannot update from the installed release' },
  E_DRIFT: { exit: 4, summary: 'installed components differ from the record of their release' },
  E_DOWNGRADE: { exit: 4, summary: 'a version would go down' },
  E_DEPENDENCY: { exit: 4, summary: 'a requires range would not hold' },
  E_NO_PAYLOAD: {
    exit: 4,
    summary: 'a component must change but the bundle does not carry its payload',
  },
  E_PROMOTION_BLOCKED: {
    exit: 4,
    summary: "a promotion does not meet the target channel's policy; nothing was changed",
  },
  E_PROMOTE_EDGE: {
    exit: 4,
    summary: 'the policy has no edge from the source to the target channel',
  },
  E_NOT_IN_CHANNEL: { exit: 4, summary: 'the version is not in the source channel' },
  E_APPROVALS: {
    exit: 4,
    summary: 'too few approvals by someone other than the publisher',
  },
  E_EVIDENCE: { exit: 4, summary: 'the policy wants evidence that no approval carries' },
  E_SOAK: { exit: 4, summary: 'the version has not been in the source channel long enough' },
  E_NOT_PREVIOUS: {
    exit: 4,
    summary: 'a rollback names a version that was never in that channel, or is in it now',
  },
  // busy (5)
  E_LOCKED: { exit: 5, summary: 'another installer holds the lock' },
  E_MAINTENANCE_WINDOW: { exit: 5, summary: 'outside the maintenance windows' },
  E_APPLIANCE_CHANGED: {
    exit: 5,
    summary:
      'the appliance is no longer at the releases the rollback was asked from and to; nothing was changed',
  },
  E_REPO_LOCKED: { exit: 5, summary: 'another writer holds the repository lock' },
  E_REPO_CONFLICT: {
    exit: 5,
    summary:
      'another writer changed the repository while this one was writing; nothing was overwritten',
  },
  E_PROMOTION_WINDOW: { exit: 5, summary: "outside the target channel's promotion windows" },
  // failed (1)
  E_IO: { exit: 1, summary: 'reading or writing a file failed' },
  E_NO_SPACE: {
    exit: 1,
    summary: 'a filesystem has too little free space for what is to be written',
  },
  E_JOURNAL_CORRUPT: {
    exit: 1,
    summary: 'a record in the middle of the journal is damaged: recovery changes nothing',
  },
  E_REGISTRY_UNREACHABLE: {
    exit: 1,
    summary: 'the registry could not be reached, or the connection kept failing',
  },
  E_REGISTRY: {
    exit: 1,
    summary: 'the registry refused a request or answered in a way the OCI API does not allow',
  },
  E_BLOB_UNKNOWN: { exit: 1, summary: 'the registry does not hold a blob a manifest refers to' },
  E_VERSION_EXISTS: {
    exit: 1,
    summary: 'other bytes are already published under that version; versions are immutable',
  },
  E_PART_MISSING: {
    exit: 1,
    summary:
      'a bundle part is on a volume that is not attached (or not under the folder given), or its volume went away while it was read',
  },
  E_WRONG_VOLUME: {
    exit: 1,
    summary: 'a volume belongs to another bundle, or to another build of the same release',
  },
  E_TOOL_MISSING: { exit: 1, summary: 'a program Ferry drives (xorriso) is not installed' },
  E_INTERRUPTED: {
    exit: 1,
    summary:
      'Ctrl-C, SIGTERM or SIGHUP stopped a command where it had no result to give yet (the hand-over check): nothing was changed',
  },
  E_INTERNAL: { exit: 1, summary: 'a bug in Ferry' },
} as const satisfies Record<string, { exit: 1 | 2 | 3 | 4 | 5; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  /** The file the problem is in (spec, bundle, key, state file). */
  file?: string;
  /** The archive entry name (on removable media: the part's name on its volume). */
  entry?: string;
  /** On removable media: the volume number (1-based). */
  volume?: number;
  component?: string;
  /** A JSON path or spec field such as `/components/db/version`. */
  field?: string;
  /** 1-based line in `file`, when known. */
  line?: number;
  /** 1-based column in `line`, when known. */
  column?: number;
  /** Every problem found in `file`, when there are several (the message lists them too). */
  problems?: Array<{ path: string; message: string; line?: number }>;
  /** A registry as `host[:port]`. */
  registry?: string;
  /** A repository name inside `registry`, such as `acme/appliance`. */
  repository?: string;
  /** A tag or a `sha256:` digest inside `repository`. */
  reference?: string;
  /** What the person can do about it. */
  hint?: string;
  cause?: unknown;
}

/**
 * Marks a FerryError whichever copy of this module made it: the packaged
 * installer loads its console from a bundle of its own, whose errors must
 * still be reported with their code.
 */
const BRAND = Symbol.for('ferry.FerryError');

export class FerryError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FerryError';
    this.code = code;
    this.details = details;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get hint(): string | undefined {
    return this.details.hint;
  }

  toJSON(): Record<string, unknown> {
    const { cause: _cause, ...rest } = this.details;
    return { code: this.code, message: this.message, ...rest };
  }
}

export function isFerryError(error: unknown): error is FerryError {
  return (
    error instanceof FerryError ||
    (typeof error === 'object' &&
      error !== null &&
      BRAND in error &&
      String((error as { code?: unknown }).code) in ERROR_CODES)
  );
}

/** Wraps an fs error into E_NOT_FOUND, E_NO_SPACE (no room, or a file too large) or E_IO, naming the file. */
export function ioError(error: unknown, file: string, doing: string): FerryError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EISDIR') {
    return new FerryError('E_USAGE', `${file} is a folder, not a file`, {
      file,
      hint: 'name the file itself',
      cause: error,
    });
  }
  if (code === 'ENOENT') {
    return new FerryError('E_NOT_FOUND', `${file} does not exist`, {
      file,
      hint: 'check the path',
      cause: error,
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  if (code === 'ENOSPC') {
    return new FerryError('E_NO_SPACE', `could not ${doing} ${file}: ${reason}`, {
      file,
      hint: 'free some disk space and try again',
      cause: error,
    });
  }
  // The filesystem holds no file this large (FAT32: 4 GiB − 1 byte), or the process may not write one (ulimit -f).
  if (code === 'EFBIG') {
    return new FerryError(
      'E_NO_SPACE',
      `could not ${doing} ${file}: the filesystem holds no file this large (${reason})`,
      {
        file,
        hint: 'FAT32 (most USB sticks) holds files under 4 GiB: write to another filesystem, and let `ferry media` split a bundle across FAT32 volumes',
        cause: error,
      },
    );
  }
  return new FerryError('E_IO', `could not ${doing} ${file}: ${reason}`, {
    file,
    hint:
      code === 'EROFS' || code === 'EIO'
        ? 'the filesystem failed or went read-only: check it (fsck, remount), then run ferry recover'
        : 'check the permissions and the disk',
    cause: error,
  });
}

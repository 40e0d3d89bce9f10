/**
 * The JSON Schemas of every document Ferry reads or writes, declared once
 * with TypeBox: each schema and its TypeScript type come from the same
 * declaration, so they cannot drift. `npm run schemas` writes them to
 * `schemas/*.json`, which is what runs (TypeBox itself costs a third of a
 * second to load), and a test holds the files equal to these declarations.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { FORMAT_VERSION, MAX_ESTIMATED_SECONDS, NAME_PATTERN } from './constants.js';
const SHA256_PATTERN = '^[0-9a-f]{64}$';

const Name = Type.String({ pattern: NAME_PATTERN, description: 'lower-case name: a-z 0-9 . _ -' });
/** Strict semver; checked again in code (semver.valid(v) === v). */
const Version = Type.String({
  minLength: 5,
  maxLength: 256,
  description: 'a semver version such as "1.2.0" (quoted in YAML)',
});
const Range = Type.String({ minLength: 1, maxLength: 1024, description: 'a semver range' });
const Sha256 = Type.String({ pattern: SHA256_PATTERN });
const Size = Type.Integer({ minimum: 0 });
const RelativePath = Type.String({ minLength: 1, maxLength: 4096 });
/**
 * A service as systemd names a unit; no spaces, so FERRY_RESTART lists them
 * separated by spaces, and no leading '-', so an artifact's
 * `systemctl restart $FERRY_RESTART` cannot be handed an option (`-H host`).
 */
const Service = Type.String({
  pattern: '^[A-Za-z0-9:_.@][A-Za-z0-9:_.@\\-]{0,254}$',
  description: 'service name such as "nginx" or "api.service" (no spaces, not starting with -)',
});
/** What an update does to the running system, for the operator and the artifacts. */
const Effects = {
  /** Services the component's update restarts. */
  restart: Type.Optional(Type.Array(Service, { maxItems: 256, uniqueItems: true })),
  /** Whether the appliance must reboot for the update to take effect. */
  reboot: Type.Optional(Type.Boolean()),
};

function stringEnum<const T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
}

/** An object keyed by names; a key that is not a valid name is an error, never ignored. */
function nameRecord<T extends TSchema>(value: T) {
  return Type.Record(Type.String(), value, { propertyNames: { pattern: NAME_PATTERN } });
}

function strict<T extends Parameters<typeof Type.Object>[0]>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}

const ChangeKind = stringEnum(['update', 'fix'] as const);
const SpecChange = strict({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  kind: ChangeKind,
  summary: Type.String({ minLength: 1, maxLength: 2000 }),
});

const PassLists = strict({
  'pre-validate': Type.Optional(Type.Array(RelativePath)),
  update: Type.Optional(Type.Array(RelativePath)),
  test: Type.Optional(Type.Array(RelativePath)),
  rollback: Type.Optional(Type.Array(RelativePath)),
  remove: Type.Optional(Type.Array(RelativePath)),
});

const SpecPayload = Type.Union([
  RelativePath,
  strict({
    location: Type.Literal('default'),
    path: Type.Optional(RelativePath),
  }),
  strict({
    url: Type.String({ minLength: 1, maxLength: 4096 }),
    sha256: Sha256,
    size: Size,
    saveAs: Type.String({ minLength: 1, maxLength: 255 }),
  }),
]);

// ---------------------------------------------------------------- release spec

export const ReleaseSpecSchema = strict({
  product: Name,
  release: Version,
  notes: Type.Optional(Type.String({ maxLength: 20000 })),
  platform: strict({ name: Name, range: Range }),
  history: Type.Optional(RelativePath),
  supportedFrom: Type.Optional(Range),
  components: nameRecord(
    strict({
      version: Version,
      owner: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
      requires: Type.Optional(nameRecord(Range)),
      platform: Type.Optional(Range),
      timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
      /** How long the update takes, as `90s`, `5m` or `1h30m`; checked in code, which names the line and column. */
      estimatedDuration: Type.Optional(
        Type.Union([Type.String({ maxLength: 32 }), Type.Number()], {
          description: 'a duration such as "90s", "5m" or "1h30m"',
        }),
      ),
      ...Effects,
      payload: SpecPayload,
      artifacts: Type.Optional(PassLists),
      changes: Type.Optional(Type.Array(SpecChange)),
    }),
  ),
  removed: Type.Optional(
    nameRecord(
      strict({
        artifacts: Type.Optional(strict({ remove: Type.Optional(Type.Array(RelativePath)) })),
      }),
    ),
  ),
  verification: Type.Optional(Type.Array(RelativePath)),
  /** The installer executable (`npm run package`) the bundle carries; `ferry build --installer` overrides it. */
  installer: Type.Optional(RelativePath),
  /** The oldest Ferry that may install this bundle; an older one hands over to the carried installer. */
  minInstaller: Type.Optional(Version),
});
export type ReleaseSpec = Static<typeof ReleaseSpecSchema>;
export type SpecComponent = ReleaseSpec['components'][string];

// ---------------------------------------------------------------- bundle metadata

const ArtifactRef = strict({
  /** Archive entry name, e.g. `artifacts/db/update/migrate.sh`. */
  path: RelativePath,
  size: Size,
  sha256: Sha256,
});
export type ArtifactRef = Static<typeof ArtifactRef>;

const PayloadEntry = strict({
  /** Path inside the component, `/`-separated. */
  path: RelativePath,
  type: stringEnum(['file', 'dir', 'symlink'] as const),
  mode: Type.Integer({ minimum: 0, maximum: 0o777 }),
  size: Type.Optional(Size),
  sha256: Type.Optional(Sha256),
  target: Type.Optional(RelativePath),
});
export type PayloadEntry = Static<typeof PayloadEntry>;

const PayloadRef = Type.Union([
  strict({ type: Type.Literal('included'), size: Size, files: Type.Array(PayloadEntry) }),
  strict({ type: Type.Literal('default'), size: Size, files: Type.Array(PayloadEntry) }),
  strict({
    type: Type.Literal('url'),
    url: Type.String({ minLength: 1, maxLength: 4096 }),
    sha256: Sha256,
    size: Size,
    saveAs: Type.String({ minLength: 1, maxLength: 255 }),
  }),
  /** Equal in every supported release and the target: nothing to carry. */
  strict({ type: Type.Literal('unchanged') }),
]);
export type PayloadRef = Static<typeof PayloadRef>;

const Change = strict({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  kind: ChangeKind,
  summary: Type.String({ minLength: 1, maxLength: 2000 }),
  component: Name,
  version: Version,
});
export type Change = Static<typeof Change>;

const ReleaseInfo = strict({
  version: Version,
  createdAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' }),
  notes: Type.String({ maxLength: 20000 }),
});

const Platform = strict({ name: Name, range: Range });

export const BundleMetadataSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  kind: stringEnum(['update', 'install'] as const),
  product: Name,
  release: ReleaseInfo,
  platform: Platform,
  target: nameRecord(Version),
  supportedFrom: Type.Array(strict({ version: Version, components: nameRecord(Version) })),
  changes: Type.Array(Change),
  components: nameRecord(
    strict({
      version: Version,
      owner: Type.Optional(Type.String({ maxLength: 128 })),
      requires: nameRecord(Range),
      platform: Type.Optional(Range),
      timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
      /** Optional, like every field added after format 1 was first written: older bundles lack them. */
      estimatedSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ESTIMATED_SECONDS })),
      ...Effects,
      artifacts: strict({
        'pre-validate': Type.Array(ArtifactRef),
        update: Type.Array(ArtifactRef),
        test: Type.Array(ArtifactRef),
        rollback: Type.Array(ArtifactRef),
        remove: Type.Array(ArtifactRef),
      }),
      payload: PayloadRef,
    }),
  ),
  removed: nameRecord(strict({ artifacts: strict({ remove: Type.Array(ArtifactRef) }) })),
  verification: Type.Array(ArtifactRef),
  /**
   * The trust roots the bundle carries (`trust/root-N.json`, version 1 on):
   * an appliance walks them from the version it trusts before it checks the
   * signature, so keys rotate without anyone touching it.
   */
  trustChain: Type.Optional(Type.Array(ArtifactRef, { maxItems: 1024 })),
  /** After this time (`YYYY-MM-DDTHH:MM:SSZ`) appliances refuse the bundle: a frozen one cannot be replayed for ever. */
  expires: Type.Optional(
    Type.String({
      minLength: 20,
      maxLength: 20,
      pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$',
    }),
  ),
  /** Older installers refuse the bundle, or hand over to `installer` when it is carried. */
  minInstaller: Type.Optional(Version),
  /** The installer executable the bundle carries, as an entry `installer/<file>`. */
  installer: Type.Optional(
    strict({
      path: RelativePath,
      size: Size,
      sha256: Sha256,
      version: Version,
      /** What it runs on, as Node names it: `linux-x64`, `linux-arm64`. */
      platform: Type.String({ pattern: '^[a-z0-9]+-[a-z0-9]+$', maxLength: 64 }),
    }),
  ),
});
export type BundleMetadata = Static<typeof BundleMetadataSchema>;
export type BundleComponent = BundleMetadata['components'][string];
export type BundleKind = BundleMetadata['kind'];
export type CarriedInstaller = NonNullable<BundleMetadata['installer']>;

// ---------------------------------------------------------------- DSSE envelope

export const EnvelopeSchema = strict({
  payloadType: Type.String({ minLength: 1, maxLength: 256 }),
  payload: Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
  signatures: Type.Array(
    strict({ keyid: Type.String({ maxLength: 256 }), sig: Type.String({ maxLength: 1024 }) }),
    {
      maxItems: 64,
    },
  ),
});
export type Envelope = Static<typeof EnvelopeSchema>;

// ---------------------------------------------------------------- parts index (removable media)

/** A bundle cut into parts across volumes (FERRY/PARTS.JSON, in an envelope signed like bundle.json). */
export const PartsIndexSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  bundle: strict({
    /** product@release: what the operator is told the volumes carry. */
    id: Type.String({ minLength: 3, maxLength: 512 }),
    format: stringEnum(['tar', 'tar.gz'] as const),
    /** Ties the parts to one build: two builds of a release differ here. */
    metadataSha256: Sha256,
    size: Type.Integer({ minimum: 1 }),
  }),
  /** Volume N is labelled `${label}${N}`. */
  label: Type.String({ pattern: '^[A-Z0-9_]{1,27}$' }),
  volumes: Type.Integer({ minimum: 1, maximum: 999 }),
  parts: Type.Array(
    strict({
      name: Type.String({ pattern: '^FERRY/BUNDLE\\.[0-9]{3}$' }),
      volume: Type.Integer({ minimum: 1, maximum: 999 }),
      offset: Size,
      size: Type.Integer({ minimum: 1 }),
      sha256: Sha256,
    }),
    { minItems: 1, maxItems: 999 },
  ),
});
export type PartsIndex = Static<typeof PartsIndexSchema>;

// ---------------------------------------------------------------- release record (history)

export const ReleaseRecordSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  product: Name,
  release: ReleaseInfo,
  platform: Platform,
  components: nameRecord(
    strict({
      version: Version,
      requires: nameRecord(Range),
      /** The payload's files, when this or an earlier build hashed them. */
      files: Type.Optional(Type.Array(PayloadEntry)),
    }),
  ),
  changes: Type.Array(Change),
});
export type ReleaseRecord = Static<typeof ReleaseRecordSchema>;

// ---------------------------------------------------------------- trust root

export const TrustRootSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  threshold: Type.Integer({ minimum: 1 }),
  keys: Type.Array(
    strict({
      keyid: Sha256,
      name: Type.Optional(Type.String({ maxLength: 128 })),
      publicKey: Type.String({ minLength: 1, maxLength: 4096 }),
    }),
    { minItems: 1 },
  ),
});
export type TrustRoot = Static<typeof TrustRootSchema>;

/** An object keyed by key ids (hex sha256 of the key's SPKI DER). */
function keyidRecord<T extends TSchema>(value: T) {
  return Type.Record(Type.String(), value, { propertyNames: { pattern: SHA256_PATTERN } });
}

const RootRole = strict({
  keyids: Type.Array(Sha256, { minItems: 1, maxItems: 64, uniqueItems: true }),
  threshold: Type.Integer({ minimum: 1, maximum: 64 }),
});

/**
 * A TUF `root` document (the TUF specification's root metadata, the `signed`
 * part), carried in a DSSE envelope of type `application/vnd.tuf+json`. Its
 * `root` role signs the next root, its `targets` role signs bundles; Ferry
 * has no use for `snapshot` and `timestamp` but TUF requires them.
 */
export const RootDocumentSchema = strict({
  _type: Type.Literal('root'),
  spec_version: Type.String({
    pattern: '^1\\.[0-9]+(\\.[0-9]+)?$',
    description: 'TUF specification version 1.x',
  }),
  version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  expires: Type.String({
    pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$',
    description: 'UTC time as YYYY-MM-DDTHH:MM:SSZ',
  }),
  consistent_snapshot: Type.Boolean(),
  keys: keyidRecord(
    strict({
      keytype: Type.Literal('ed25519'),
      scheme: Type.Literal('ed25519'),
      keyval: strict({ public: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
    }),
  ),
  roles: strict({
    root: RootRole,
    targets: RootRole,
    snapshot: RootRole,
    timestamp: RootRole,
  }),
  'x-ferry': Type.Optional(
    strict({
      /** What the key holders call each key, for messages and `ferry trust show`. */
      names: Type.Optional(
        keyidRecord(
          // No control characters or lone surrogates: TUF's canonical JSON writes them raw
          // where Ferry's escapes them, and both must sign the same bytes.
          Type.String({
            minLength: 1,
            maxLength: 128,
            pattern: '^[^\\u0000-\\u001f\\ud800-\\udfff]*$',
            description: 'name without control characters',
          }),
        ),
      ),
      /**
       * The root key holders lower the highest release appliances committed
       * to this one (a recall): the only way past rollback protection that
       * needs no operator's --allow-downgrade on every install.
       */
      resetHighestRelease: Type.Optional(Version),
    }),
  ),
});
export type RootDocument = Static<typeof RootDocumentSchema>;

// ---------------------------------------------------------------- control table

export const ControlTableSchema = strict({
  force: Type.Optional(Type.Array(Name)),
  skip: Type.Optional(Type.Array(Name)),
  delete: Type.Optional(Type.Array(Name)),
});
export type ControlTable = Static<typeof ControlTableSchema>;

// ---------------------------------------------------------------- the appliance

const Clock = Type.String({
  pattern: '^([01]\\d|2[0-3]):[0-5]\\d$',
  description: 'time of day as HH:MM',
});

export const ApplianceConfigSchema = strict({
  product: Name,
  platform: strict({ name: Name, version: Version }),
  /** Where `default` payloads are found: <location>/<component>/<version>/… */
  defaultPayloadLocation: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** When installs may run; none means any time. */
  maintenanceWindows: Type.Optional(
    Type.Array(
      strict({
        days: Type.Optional(
          Type.Array(stringEnum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const)),
        ),
        start: Clock,
        end: Clock,
      }),
    ),
  ),
  /** Installed versions kept per component, the active one included (for rollback). */
  retention: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  artifactTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
  /** What `ferry console` may do on this appliance. */
  console: Type.Optional(
    strict({
      /** Offer an install outside the maintenance windows, with a typed reason that is recorded (default false). */
      allowOutsideWindow: Type.Optional(Type.Boolean()),
    }),
  ),
});
export type ApplianceConfig = Static<typeof ApplianceConfigSchema>;

const KeptDigest = strict({ size: Size, sha256: Sha256 });
export type KeptDigest = Static<typeof KeptDigest>;

const InstalledComponent = strict({
  version: Version,
  requires: nameRecord(Range),
  /** What was installed, as hashed at install time: `ferry status --verify` checks against it. */
  files: Type.Array(PayloadEntry),
  /** Undo and uninstall artifacts kept under var/lib/ferry/artifacts/<component>/<version>/<pass>/, in run order. */
  artifacts: strict({
    rollback: Type.Array(Type.String({ maxLength: 255 })),
    remove: Type.Array(Type.String({ maxLength: 255 })),
    /**
     * Kept to undo a `ferry rollback` that fails or is cut after this version's
     * rollback artifacts ran. Absent for versions an older Ferry installed,
     * which kept none: state.json files they wrote stay valid.
     */
    update: Type.Optional(Type.Array(Type.String({ maxLength: 255 }))),
    /**
     * Each kept file's size and sha256 as the bundle signed them, in the order
     * of the lists above: a kept file changed on disk is not run as root.
     * Absent for versions an older Ferry installed, whose kept files run unchecked.
     */
    digests: Type.Optional(
      strict({
        rollback: Type.Array(KeptDigest),
        remove: Type.Array(KeptDigest),
        update: Type.Array(KeptDigest),
      }),
    ),
  }),
  /** The timeout its artifacts run with. */
  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
});

/** What an appliance remembers of trust beyond its trust root file. */
const TrustFacts = {
  /**
   * The newest `createdAt` of a bundle it installed: a clock set back to
   * before it is not believed, so an expired bundle or root stays expired.
   */
  timeFloor: Type.Optional(
    Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' }),
  ),
  /** Targets keys a walked chain revoked: their bundles are refused as revoked, not just unknown. */
  revokedKeys: Type.Optional(
    keyidRecord(
      strict({
        public: Type.String({ pattern: '^[0-9a-f]{64}$' }),
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        revokedIn: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
      }),
    ),
  ),
};

/** What a partial install left: the release it started from, and the components not at the target, at their versions. */
const Partial = strict({
  base: Type.Union([Version, Type.Null()]),
  leftOut: nameRecord(Type.Union([Version, Type.Null()])),
});

export const ApplianceStateSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  product: Name,
  release: Type.Union([Version, Type.Null()]),
  /** False after a --partial install: the components are not a verified release. */
  verified: Type.Boolean(),
  highestRelease: Type.Union([Version, Type.Null()]),
  components: nameRecord(InstalledComponent),
  /** Present after a partial install: `release` is the one it aimed at, not reached. */
  partial: Type.Optional(Partial),
  /** The committed state before the last transaction, for `ferry rollback`. */
  previous: Type.Union([
    Type.Null(),
    strict({
      release: Type.Union([Version, Type.Null()]),
      verified: Type.Boolean(),
      components: nameRecord(InstalledComponent),
      partial: Type.Optional(Partial),
    }),
  ]),
  /**
   * Whether `previous` is the record a rollback left (true: rolling back
   * again goes forward, redoing its install) rather than the one an install
   * started from (false: it goes back, undoing that install). Release numbers
   * cannot tell: a partial and a complete install record the same release.
   * Absent in state.json files an older Ferry wrote: the releases decide.
   */
  previousIsNewer: Type.Optional(Type.Boolean()),
  /** The id of the transaction that wrote this state: recovery's proof of a commit. */
  transaction: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()]),
  ...TrustFacts,
});
export type ApplianceState = Static<typeof ApplianceStateSchema>;

export const ApplianceFactsSchema = strict({
  formatVersion: Type.Literal(FORMAT_VERSION),
  product: Name,
  platform: strict({ name: Name, version: Version }),
  release: Type.Union([Version, Type.Null()]),
  verified: Type.Boolean(),
  highestRelease: Type.Union([Version, Type.Null()]),
  components: nameRecord(
    strict({
      version: Version,
      requires: nameRecord(Range),
      /** Files that differed from their recorded hashes when exported; absent when not checked. */
      changedFiles: Type.Optional(
        Type.Array(
          strict({ path: RelativePath, problem: Type.String({ minLength: 1, maxLength: 4096 }) }),
        ),
      ),
    }),
  ),
  partial: Type.Optional(Partial),
  /** The trust root file as it is: the first format, or a TUF root's envelope. */
  trust: Type.Union([TrustRootSchema, EnvelopeSchema]),
  ...TrustFacts,
  exportedAt: Type.String({ minLength: 1, maxLength: 64 }),
});
export type ApplianceFactsExport = Static<typeof ApplianceFactsSchema>;

/** Every published schema, by the file name it is written to. */
export const SCHEMAS = {
  'release-spec': ReleaseSpecSchema,
  'bundle-metadata': BundleMetadataSchema,
  envelope: EnvelopeSchema,
  'release-record': ReleaseRecordSchema,
  'trust-root': TrustRootSchema,
  'root-document': RootDocumentSchema,
  'control-table': ControlTableSchema,
  'appliance-config': ApplianceConfigSchema,
  'appliance-state': ApplianceStateSchema,
  'appliance-facts': ApplianceFactsSchema,
  'parts-index': PartsIndexSchema,
} as const;

/**
 * The JSON Schemas of what each command prints with --json: one shape per
 * idea, the same names everywhere (`bundle` is a bundle's path, `keyids` the
 * keys that signed, `changes` always a list), and a `schemaVersion` on every
 * result. `npm run schemas` writes them to `schemas/output-<command>.json`;
 * test/e2e/json.test.ts checks each against the real output. The top level
 * of each is closed, so a field added to a command is added here too.
 */
import Type, { type TProperties } from 'typebox';
import { OUTPUT_SCHEMA_VERSION } from './constants.js';

const Release = Type.String();
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const Keyids = Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }));
/** An OCI digest: `sha256:` and 64 hex digits. */
const Digest = Type.String({ pattern: '^sha256:[0-9a-f]{64}$' });
const Evidence = Type.Object({ name: Type.String(), digest: Type.String(), size: Type.Integer() });
const Change = Type.Object({
  component: Type.String(),
  version: Release,
  kind: Type.String(),
  id: Type.String(),
  summary: Type.String(),
});
const Changes = Type.Array(Change);
const Kind = Type.Union([Type.Literal('install'), Type.Literal('update')]);
const Outcome = Type.Union([
  Type.Literal('committed'),
  Type.Literal('rolled-back'),
  Type.Literal('unchanged'),
]);
const Failure = Type.Object({
  component: Nullable(Type.String()),
  pass: Type.String(),
  artifact: Nullable(Type.String()),
  status: Type.String(),
  tail: Type.String(),
});
/**
 * Components whose rollback artifacts ran in a rollback that was then undone,
 * and those artifacts, when their update artifacts could not run again to undo
 * them (none kept, or one failed); and those whose remove artifacts ran in an
 * install or a rollback that was undone.
 */
const NotUndone = Type.Array(
  Type.Object({
    component: Type.String(),
    artifacts: Type.Array(Type.String()),
    /** "update": update artifacts a rollback going forward ran, whose kept rollback artifacts differed from what their bundle signed; "remove": remove artifacts, which nothing undoes. */
    pass: Type.Optional(Type.Union([Type.Literal('update'), Type.Literal('remove')])),
  }),
);
const Plan = {
  verdict: Type.Union([Type.Literal('ok'), Type.Literal('blocked')]),
  product: Type.String(),
  kind: Kind,
  from: Nullable(Release),
  to: Release,
  reasons: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
  components: Type.Array(
    Type.Object({
      name: Type.String(),
      action: Type.String(),
      from: Nullable(Release),
      to: Nullable(Release),
      reasons: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
      estimatedSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
      restart: Type.Optional(Type.Array(Type.String())),
      reboot: Type.Optional(Type.Boolean()),
    }),
  ),
  order: Type.Array(Type.String()),
  changes: Changes,
  stageBytes: Type.Integer({ minimum: 0 }),
  estimatedSeconds: Type.Integer({ minimum: 0 }),
  unestimated: Type.Array(Type.String()),
  restart: Type.Array(Type.String()),
  reboot: Type.Boolean(),
  partial: Type.Boolean(),
  reachesTarget: Type.Boolean(),
  filesChecked: Type.Boolean(),
  controls: Type.Object({}),
};

/** A result: `schemaVersion` first, then the command's fields, nothing else. */
function result<T extends TProperties>(properties: T, optional: ReadonlyArray<keyof T> = []) {
  const props: TProperties = { schemaVersion: Type.Literal(OUTPUT_SCHEMA_VERSION) };
  for (const [key, schema] of Object.entries(properties))
    props[key] = optional.includes(key) ? Type.Optional(schema) : schema;
  return Type.Object(props, { additionalProperties: false });
}

const Check = {
  spec: Type.String(),
  product: Type.String(),
  release: Release,
  kind: Kind,
  supportedFrom: Type.Array(Release),
  included: Type.Array(Type.String()),
  removed: Type.Array(Type.String()),
  changes: Changes,
  minInstaller: Release,
  installer: Type.Object({ version: Release, platform: Type.String() }),
};
const KeySummary = Type.Object({ keyid: Type.String(), name: Type.Optional(Type.String()) });
const Role = Type.Object({ threshold: Type.Integer({ minimum: 1 }), keys: Type.Array(KeySummary) });
/** A trust root as `trust init`, `sign-next`, `sign` and `show` describe it. */
const TrustRoot = {
  trust: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  expires: Nullable(Type.String()),
  format: Type.Union([Type.Literal('tuf'), Type.Literal('first')]),
  roles: Type.Object({ root: Role, targets: Role }),
  resetHighestRelease: Release,
  signatures: Type.Array(
    Type.Object({
      version: Type.Integer({ minimum: 1 }),
      threshold: Type.Integer({ minimum: 1 }),
      signed: Type.Array(KeySummary),
      missing: Type.Array(KeySummary),
      met: Type.Boolean(),
    }),
  ),
};
/** What a bundle may say of the Ferry that installs it. */
const CHECK_OPTIONAL = ['minInstaller', 'installer'] as const;

export const OUTPUT_SCHEMAS = {
  error: Type.Object(
    {
      schemaVersion: Type.Literal(OUTPUT_SCHEMA_VERSION),
      error: Type.Object(
        { code: Type.String({ pattern: '^E_[A-Z0-9_]+$' }), message: Type.String() },
        { additionalProperties: true },
      ),
    },
    { additionalProperties: false },
  ),
  // ferry-installer says which file it is, so that a copy can be checked against the release's .sha256.
  version: result(
    {
      name: Type.Literal('ferry'),
      version: Release,
      executable: Type.String(),
      sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
      node: Type.String(),
      platform: Type.String(),
    },
    ['executable', 'sha256', 'node', 'platform'],
  ),
  keygen: result({ keyid: Type.String(), privateKey: Type.String(), publicKey: Type.String() }),
  'trust-init': Type.Union([
    result({ trust: Type.String(), threshold: Type.Integer(), keyids: Keyids }),
    result(TrustRoot, ['resetHighestRelease']),
  ]),
  'trust-sign-next': result(TrustRoot, ['resetHighestRelease']),
  'trust-sign': result(TrustRoot, ['resetHighestRelease']),
  'trust-show': result(TrustRoot, ['resetHighestRelease']),
  'trust-verify-chain': result(
    {
      verdict: Type.Union([Type.Literal('accepted'), Type.Literal('refused')]),
      version: Type.Integer({ minimum: 1 }),
      versions: Type.Array(Type.Integer({ minimum: 1 })),
      revoked: Keyids,
      error: Type.Object(
        { code: Type.String({ pattern: '^E_[A-Z0-9_]+$' }), message: Type.String() },
        { additionalProperties: true },
      ),
    },
    ['error'],
  ),
  lint: result(Check, CHECK_OPTIONAL),
  build: result(
    {
      ...Check,
      bundle: Type.String(),
      record: Type.String(),
      sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
      size: Type.Integer({ minimum: 0 }),
      format: Type.String(),
      keyids: Keyids,
    },
    CHECK_OPTIONAL,
  ),
  inspect: result(
    {
      bundle: Type.String(),
      format: Type.String(),
      size: Type.Integer(),
      product: Type.String(),
      kind: Kind,
      release: Release,
      createdAt: Type.String(),
      expires: Type.String(),
      expired: Type.Boolean(),
      notes: Type.String(),
      platform: Type.Object({ name: Type.String(), range: Type.String() }),
      target: Type.Record(Type.String(), Release),
      supportedFrom: Type.Array(Release),
      changes: Changes,
      components: Type.Array(
        Type.Object({
          name: Type.String(),
          version: Release,
          estimatedSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
          restart: Type.Optional(Type.Array(Type.String())),
          reboot: Type.Optional(Type.Boolean()),
        }),
      ),
      removed: Type.Array(Type.String()),
      payloadBytes: Type.Integer(),
      signature: Type.Object({ valid: Type.Union([Type.Boolean(), Type.Null()]), keyids: Keyids }),
      bytesRead: Type.Integer(),
      minInstaller: Release,
      installer: Type.Object({
        version: Release,
        platform: Type.String(),
        size: Type.Integer({ minimum: 0 }),
      }),
    },
    ['expires', 'minInstaller', 'installer'],
  ),
  verify: result({
    bundle: Type.String(),
    format: Type.String(),
    product: Type.String(),
    release: Release,
    kind: Kind,
    signature: Type.Object({ keyids: Keyids, threshold: Type.Integer() }),
    entries: Type.Integer(),
    bytes: Type.Integer(),
    valid: Type.Literal(true),
  }),
  init: result({
    root: Type.String(),
    product: Type.String(),
    platform: Type.Object({ name: Type.String(), version: Release }),
    trustVersion: Type.Integer({ minimum: 1 }),
    keyids: Keyids,
  }),
  status: result(
    {
      product: Type.String(),
      platform: Type.Object({ name: Type.String(), version: Release }),
      release: Nullable(Release),
      verified: Type.Boolean(),
      highestRelease: Nullable(Release),
      components: Type.Record(Type.String(), Release),
      exported: Type.String(),
      problems: Type.Array(Type.Object({ component: Type.String(), path: Type.String() })),
      open: Type.Object({
        id: Type.String(),
        operation: Type.Union([Type.Literal('install'), Type.Literal('rollback')]),
        from: Nullable(Release),
        to: Nullable(Release),
        startedAt: Type.String(),
        pid: Type.Integer(),
        running: Type.Boolean(),
        steps: Type.Integer({ minimum: 0 }),
        recovery: Type.Union([Type.Literal('roll-forward'), Type.Literal('roll-back')]),
      }),
      transactions: Type.Array(Type.Object({ id: Type.String(), outcome: Type.String() })),
      tornHistoryLines: Type.Array(Type.Integer()),
      trust: Type.Object({
        version: Type.Integer({ minimum: 1 }),
        expires: Nullable(Type.String()),
        revoked: Keyids,
      }),
    },
    ['exported', 'problems', 'open', 'tornHistoryLines'],
  ),
  plan: result(Plan),
  install: result(
    {
      type: Type.Literal('result'),
      ...Plan,
      outcome: Outcome,
      transaction: Nullable(Type.String()),
      failure: Failure,
      log: Type.String(),
      bytesRead: Type.Integer(),
      notUndone: NotUndone,
    },
    ['failure', 'log', 'bytesRead', 'notUndone'],
  ),
  rollback: result(
    {
      outcome: Outcome,
      from: Nullable(Release),
      to: Nullable(Release),
      /** True: it redoes the install of the record it goes to; false: it undoes the install of the one it leaves. */
      forward: Type.Boolean(),
      transaction: Nullable(Type.String()),
      failure: Failure,
      log: Type.String(),
      notUndone: NotUndone,
    },
    ['failure', 'log', 'notUndone'],
  ),
  recover: result({ recovered: Type.Boolean(), release: Nullable(Release), notUndone: NotUndone }, [
    'notUndone',
  ]),
  log: result({
    transaction: Type.String(),
    log: Type.String(),
    outcome: Nullable(Type.String()),
    from: Nullable(Release),
    to: Nullable(Release),
  }),
  publish: result({
    repo: Type.String(),
    version: Release,
    digest: Digest,
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 0 }),
    bundle: Type.String(),
    channel: Nullable(Type.String()),
    changed: Type.Boolean(),
    root: Type.Object({ version: Type.Integer({ minimum: 1 }), taken: Type.Boolean() }),
  }),
  pull: result({
    bundle: Type.String(),
    version: Release,
    digest: Digest,
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 0 }),
    channel: Nullable(Type.String()),
    changed: Type.Boolean(),
  }),
  approve: result({
    repo: Type.String(),
    version: Release,
    digest: Digest,
    from: Type.String(),
    to: Type.String(),
    by: Type.String(),
    approval: Type.String(),
    evidence: Type.Array(Evidence),
  }),
  promote: result(
    {
      repo: Type.String(),
      version: Release,
      digest: Digest,
      from: Nullable(Type.String()),
      to: Type.String(),
      verdict: Type.Union(
        ['promoted', 'rolled-back', 'unchanged', 'blocked', 'closed'].map((v) => Type.Literal(v)),
      ),
      code: Type.String({ pattern: '^E_[A-Z0-9_]+$' }),
      excuses: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
      opens: Type.String(),
      event: Type.Integer(),
    },
    ['code', 'opens', 'event'],
  ),
  channels: result({
    repo: Type.String(),
    root: Type.Integer({ minimum: 1 }),
    channels: Type.Array(
      Type.Object({
        name: Type.String(),
        version: Nullable(Release),
        digest: Nullable(Digest),
        sequence: Type.Integer(),
        since: Nullable(Type.String()),
        to: Type.Array(Type.String()),
        pulled: Type.Union([
          Type.Object({
            sequence: Type.Integer(),
            version: Release,
            digest: Digest,
            standing: Type.Union([
              Type.Literal('current'),
              Type.Literal('moved'),
              Type.Literal('set-back'),
              Type.Literal('replaced'),
            ]),
          }),
          Type.Null(),
        ]),
      }),
    ),
  }),
  history: result({
    repo: Type.String(),
    events: Type.Array(
      Type.Object({
        seq: Type.Integer(),
        prev: Nullable(Type.String()),
        time: Type.String(),
        actor: Type.String(),
        ci: Nullable(Type.String()),
        op: Type.String(),
        /** The newest policy event and each channel's newest move as of this event (older events: none). */
        last: Type.Optional(
          Type.Object({
            policy: Type.Integer({ minimum: 0 }),
            moves: Type.Record(Type.String(), Type.Integer({ minimum: 1 })),
          }),
        ),
        subject: Type.Object({}),
        evidence: Type.Array(Evidence),
        digest: Type.String(),
      }),
    ),
    verified: Type.Boolean(),
  }),
  policy: result({
    repo: Type.String(),
    policy: Type.Object({}),
    digest: Nullable(Type.String()),
  }),
  gc: result({
    repo: Type.String(),
    keep: Type.Array(Release),
    remove: Type.Array(Release),
    strays: Type.Array(Type.Object({ digest: Type.String(), size: Type.Integer({ minimum: 0 }) })),
    removed: Type.Boolean(),
  }),
  media: result({
    bundle: Type.String(),
    id: Type.String(),
    size: Type.Integer({ minimum: 0 }),
    volumes: Type.Array(
      Type.Object({
        volume: Type.Integer({ minimum: 1 }),
        label: Type.String(),
        folder: Type.String(),
        part: Type.String(),
        size: Type.Integer({ minimum: 0 }),
        sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
        iso: Type.Optional(Type.String()),
      }),
    ),
    installer: Nullable(Type.String()),
    index: Type.Object({}),
  }),
  'media-verify': result({
    bundle: Type.String(),
    volumes: Type.Integer({ minimum: 1 }),
    checked: Type.Array(
      Type.Object({ part: Type.String(), volume: Type.Integer(), path: Type.String() }),
    ),
    missing: Type.Array(Type.Integer()),
    metadata: Type.Boolean(),
    valid: Type.Literal(true),
  }),
} as const;

import type { Stats } from 'node:fs';
import { access, lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  ApplianceConfigSchema,
  ApplianceFactsSchema,
  ApplianceStateSchema,
  FerryError,
  FORMAT_VERSION,
  ioError,
  readRegularBytes,
  readRegularFile,
  unsafePathReason,
  isStrictVersion,
  isValidRange,
  mkdirDurable,
  NAME_PATTERN,
  parseJsonValidated,
  parseValidated,
  parseTrustedRoot,
  rootFileValue,
  touchDurable,
  writeFileAtomic,
  type ApplianceConfig,
  type ApplianceFactsExport,
  type ApplianceState,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import type { Static, TSchema } from 'typebox';
import type { TrustContext } from '../bundle/open.js';
import type { ApplianceFacts } from './plan.js';
import { CURRENT_LINK } from './engine/installed-files.js';
import { shellQuoted } from '../manifest-schema/printable.js';

/** Where everything lives under an appliance's root (`--root`, `/` on a real one). */
export function appliancePaths(root: string) {
  const base = resolve(root);
  return {
    root: base,
    etc: join(base, 'etc/ferry'),
    trust: join(base, 'etc/ferry/trust.json'),
    config: join(base, 'etc/ferry/appliance.yaml'),
    lib: join(base, 'var/lib/ferry'),
    state: join(base, 'var/lib/ferry/state.json'),
    journal: join(base, 'var/lib/ferry/journal'),
    history: join(base, 'var/lib/ferry/history.jsonl'),
    logs: join(base, 'var/lib/ferry/logs'),
    lock: join(base, 'var/lib/ferry/lock'),
    // On the filesystem of the installed versions, so a version moves in by a rename
    // however /opt and /var are mounted.
    staging: join(base, 'opt/ferry/.staging'),
    opt: join(base, 'opt/ferry'),
  };
}

export type AppliancePaths = ReturnType<typeof appliancePaths>;

export const DEFAULT_RETENTION = 2;
export const DEFAULT_ARTIFACT_TIMEOUT_SECONDS = 600;

export interface InitOptions {
  root: string;
  product: string;
  /** NAME@VERSION, e.g. acme-os@7.2.1 */
  platform: string;
  trust: string;
  defaultPayloadLocation?: string;
}

export interface Appliance {
  paths: AppliancePaths;
  config: ApplianceConfig;
  /** The trust root file, with the keys its chain revoked (kept in the state). */
  trust: TrustedRoot;
  state: ApplianceState;
}

export function parsePlatform(value: string): { name: string; version: string } {
  const at = value.lastIndexOf('@');
  const name = value.slice(0, at);
  const version = value.slice(at + 1);
  if (at <= 0 || !new RegExp(NAME_PATTERN).test(name) || !isStrictVersion(version)) {
    throw new FerryError('E_USAGE', `--platform "${value}" is not NAME@VERSION`, {
      hint: 'for example --platform acme-os@7.2.1',
    });
  }
  return { name, version };
}

/** Provisions an empty appliance: trust root, appliance.yaml, an empty state. Refuses an existing one. */
export async function initAppliance(options: InitOptions): Promise<Appliance> {
  const paths = appliancePaths(options.root);
  if (!new RegExp(NAME_PATTERN).test(options.product)) {
    throw new FerryError('E_USAGE', `--product "${options.product}" is not a valid name`, {
      hint: 'use lower-case letters, digits, . _ -',
    });
  }
  const platform = parsePlatform(options.platform);
  // parseTrustedRoot refuses a file past the size of any trust root before it parses it.
  const trustBytes = await readFile(options.trust).catch((error: unknown) => {
    throw ioError(error, options.trust, 'read');
  });
  const trust = parseTrustedRoot(trustBytes, options.trust);
  // Any of its files means an appliance is there, whatever it lost: init never replaces one.
  for (const file of [paths.state, paths.config, paths.trust]) {
    if (await present(file)) {
      throw new FerryError(
        'E_EXISTS',
        `${file} already exists: ${paths.root} is an appliance already`,
        {
          file,
          hint:
            (await cutInit(paths)) ??
            'ferry init provisions an empty appliance once; use ferry status to see this one',
        },
      );
    }
  }
  try {
    // Durable as the files written in them: a power cut must not leave an appliance without its folders.
    for (const dir of [paths.etc, paths.lib, paths.logs, paths.opt]) await mkdirDurable(dir);
  } catch (error) {
    throw ioError(error, paths.root, 'create folders under');
  }
  const config: ApplianceConfig = {
    product: options.product,
    platform,
    defaultPayloadLocation:
      options.defaultPayloadLocation ?? join(paths.root, 'srv/ferry/payloads'),
    maintenanceWindows: [],
    retention: DEFAULT_RETENTION,
    artifactTimeoutSeconds: DEFAULT_ARTIFACT_TIMEOUT_SECONDS,
  };
  const state: ApplianceState = {
    formatVersion: FORMAT_VERSION,
    product: options.product,
    release: null,
    verified: true,
    highestRelease: null,
    components: {},
    previous: null,
    transaction: null,
  };
  // Copied byte for byte: a TUF root's signatures are over its payload, kept as it came.
  await writeFileAtomic(paths.trust, trustBytes);
  await writeFileAtomic(
    paths.config,
    `# Ferry appliance settings. maintenanceWindows: [{ days: [sat, sun], start: "02:00", end: "05:00" }]; none means any time.\n# console: { allowOutsideWindow: true } lets ferry console install outside them, with a typed reason it records.\n${stringify(config)}`,
  );
  await writeState(paths, state);
  await touchDurable(paths.history).catch((error: unknown) => {
    throw ioError(error, paths.history, 'write');
  });
  return { paths, config, trust, state };
}

/**
 * What to do with a root a `ferry init` cut short (a power cut, a kill)
 * left: its trust root or settings written, but neither state.json nor
 * history.jsonl, which init writes last and every appliance keeps, and
 * nothing installed. Undefined
 * for any other root. Init refuses such a root as it refuses any appliance's
 * files, and status calls it one that lost its state: without this, both
 * would send the operator to the other, or to a backup a new appliance does
 * not have.
 */
async function cutInit(paths: AppliancePaths): Promise<string | undefined> {
  if ((await present(paths.state)) || (await present(paths.history))) return undefined;
  // Lost with its var/lib/ferry, an appliance still has what it installed.
  const installed = await readdir(paths.opt).catch(() => []);
  if (installed.some((name) => !name.startsWith('.'))) return undefined;
  const written = [];
  for (const file of [paths.config, paths.trust]) if (await present(file)) written.push(file);
  return `a ferry init cut short leaves this (no state.json, no history.jsonl: nothing was ever installed here): remove ${written.join(' and ')}, then run ferry init again`;
}

/**
 * Whether a name is taken, a link included even when what it points at is
 * not there: a state.json linked to a partition not mounted yet is still an
 * appliance's, and writing a fresh one would replace the link.
 */
function present(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

export async function writeState(paths: AppliancePaths, state: ApplianceState): Promise<void> {
  await writeFileAtomic(paths.state, `${JSON.stringify(state, null, 2)}\n`);
}

/** Reads and validates everything an appliance is; a corrupt file is an error, never replaced. */
export async function openAppliance(root: string): Promise<Appliance> {
  const paths = appliancePaths(root);
  await requireFolder(paths.lib, 'keeps state.json, history.jsonl and the journal there', true);
  await requireFolder(paths.opt, 'keeps the installed versions there', true);
  if (!(await exists(paths.state))) {
    if (await exists(paths.config)) {
      // A link to an empty folder: a partition not mounted on its mount point, as likely as a loss.
      const link = await readlink(paths.lib).catch(() => null);
      throw new FerryError(
        'E_STATE_INVALID',
        `${paths.state} is missing, though ${paths.config} is there${link === null ? '' : ` (${paths.lib} is a symbolic link to ${link})`}: this appliance lost its state`,
        {
          file: paths.state,
          hint:
            (await cutInit(paths)) ??
            `${link === null ? '' : `check that the partition ${link} is on is mounted; else `}restore state.json from a backup (ferry init refuses an existing appliance)`,
        },
      );
    }
    throw new FerryError(
      'E_NOT_INITIALIZED',
      `${paths.root} is not a Ferry appliance (no ${paths.state})`,
      {
        file: paths.state,
        hint: 'check --root, or provision it with ferry init',
      },
    );
  }
  const state = await readState(paths);
  const history = await requireRegular(paths.history);
  await requireHistory(paths, state, history);
  // Both are read at once as regular files: a FIFO in their place would hang every command.
  const { value: config } = parseValidated(
    paths.config,
    await readRegularFile(paths.config, 'E_STATE_INVALID'),
    ApplianceConfigSchema,
    'E_STATE_INVALID',
    'appliance settings',
  );
  const trust = withRevoked(
    parseTrustedRoot(await readRegularBytes(paths.trust, 'E_STATE_INVALID'), paths.trust),
    state,
  );
  if (state.product !== config.product) {
    throw new FerryError(
      'E_STATE_INVALID',
      `${paths.state} is for ${state.product}, but ${paths.config} says ${config.product}`,
      {
        file: paths.state,
        hint: 'the appliance files disagree: restore them from a backup',
      },
    );
  }
  return { paths, config, trust, state };
}

/**
 * A folder Ferry keeps, or nothing (it makes it when needed); anything else
 * there is refused, before anything changes, as what it is. var/lib/ferry
 * and opt/ferry may be links to another partition (`linked`), followed: a
 * file there, or a link to a partition not mounted, read as "state.json is
 * missing" or as every installed file gone. The folders Ferry keeps in them
 * (logs, artifacts, journal, .staging) may not: through a link Ferry would
 * write, and remove, wherever it leads, and fsync the wrong folders.
 */
export async function requireFolder(dir: string, what: string, linked = false): Promise<void> {
  const found = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw ioError(error, dir, 'read');
  });
  if (!found || found.isDirectory()) return;
  const link = found.isSymbolicLink() ? await readlink(dir) : null;
  const target = link === null ? found : await stat(dir).catch(() => null);
  if (linked && target?.isDirectory()) return;
  const is =
    link === null
      ? kindOf(found)
      : `a symbolic link to ${link}${target === null ? ', which is not there' : target.isDirectory() ? '' : `, which is ${kindOf(target)}`}`;
  const hint =
    link !== null && target?.isDirectory()
      ? `Ferry follows no link inside its own folders: replace the link with a copy of the folder it leads to (\`rm ${dir} && cp -a ${resolve(dirname(dir), link)} ${dir}\`), then run the command again`
      : !linked
        ? `move it aside (\`mv ${dir} ${dir}.bad\`) and run the command again`
        : link !== null && target === null
          ? 'mount the partition it leads to, or point the link at the folder it replaced; then run the command again'
          : `something took its place: move it aside (\`mv ${dir} ${dir}.bad\`) and restore the folder from a backup`;
  throw new FerryError(
    'E_STATE_INVALID',
    `${dir} is not a folder (${is}): Ferry ${what}, so nothing was changed`,
    { file: dir, hint },
  );
}

/** What a path that is not a folder or a link is, in words. */
function kindOf(stats: Stats): string {
  if (stats.isFile()) return 'a file';
  return stats.isFIFO() ? 'a FIFO' : 'a device or socket';
}

/** Every command may append to history.jsonl: something else in its place is refused before anything changes. */
async function requireRegular(file: string): Promise<Stats | null> {
  const found = await stat(file).catch(async (error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(error, file, 'read');
    // A link to nowhere: appending would make a new history where it leads, the old one lost.
    if (await lstat(file).catch(() => null))
      throw new FerryError('E_STATE_INVALID', `${file} is a symbolic link to nowhere`, {
        file,
        hint: 'restore history.jsonl from a backup',
      });
    return null;
  });
  if (found && !found.isFile()) {
    throw new FerryError('E_STATE_INVALID', `${file} is not a regular file`, {
      file,
      hint: 'something took its place (a FIFO, a device, a folder): restore it from a backup',
    });
  }
  return found;
}

/**
 * A state some transaction wrote has its history line: Ferry appends it
 * before it closes the journal, and recovery appends it when a cut came
 * between. An empty or missing history.jsonl under such a state was lost (a
 * careless `> history.jsonl`, a truncation), and every command would go on
 * appending to it as if the appliance's record began there. A fresh
 * appliance's history is empty (state.transaction null), and one with a
 * journal open is judged after its recovery.
 */
async function requireHistory(
  paths: AppliancePaths,
  state: ApplianceState,
  history: Stats | null,
): Promise<void> {
  if ((history?.size ?? 0) > 0 || state.transaction === null || (await present(paths.journal)))
    return;
  const line = JSON.stringify({
    id: state.transaction,
    at: new Date().toISOString(),
    operation: 'recover',
    from: null,
    to: state.release,
    outcome: 'history lost',
  });
  throw new FerryError(
    'E_STATE_INVALID',
    `${paths.history} is ${history ? 'empty' : 'missing'}, though transaction ${state.transaction} wrote ${paths.state}: the record of this appliance's transactions was lost`,
    {
      file: paths.history,
      hint: `Ferry only appends to it: restore history.jsonl from a backup. With none, record the loss and go on: printf '%s\\n' ${shellQuoted(line)} >> ${shellQuoted(paths.history)}`,
    },
  );
}

export async function readState(paths: AppliancePaths): Promise<ApplianceState> {
  const state = await readOwnJson(paths.state, ApplianceStateSchema, 'appliance state', {
    newer: 'a newer Ferry wrote this appliance: use that version, never an older one',
    // Ferry writes state.json as JSON, whole: anything else was put there by hand or by damage,
    // and is the state's problem (restore it), not a syntax error to fix.
    damaged: 'Ferry never writes this: state.json was edited or damaged. Restore it from a backup',
  });
  const problem = stateProblem(state);
  if (problem) {
    throw new FerryError('E_STATE_INVALID', `${paths.state}: ${problem.field} ${problem.message}`, {
      file: paths.state,
      field: problem.field,
      hint: 'Ferry never writes this: state.json was edited. Restore it from a backup',
    });
  }
  return state;
}

/**
 * A JSON file Ferry wrote (state.json, an export of it), refused with
 * E_STATE_INVALID unless it is a regular file (a FIFO would hang the read) of
 * at most `max` bytes, of this Ferry's format, whole JSON and valid.
 */
async function readOwnJson<S extends TSchema>(
  file: string,
  schema: S,
  what: string,
  hints: { newer: string; damaged: string; notFile?: string },
  max?: number,
): Promise<Static<S>> {
  const text = (
    await readRegularBytes(file, 'E_STATE_INVALID', {
      ...(max !== undefined ? { max } : {}),
      ...(hints.notFile !== undefined ? { hint: hints.notFile } : {}),
    })
  ).toString('utf8');
  const formatVersion = /"formatVersion"\s*:\s*(\d+)/.exec(text)?.[1];
  if (formatVersion !== undefined && Number(formatVersion) !== FORMAT_VERSION) {
    throw new FerryError(
      'E_STATE_INVALID',
      `${file}: /formatVersion is ${formatVersion}; this Ferry knows ${FORMAT_VERSION}`,
      { file, field: '/formatVersion', hint: hints.newer },
    );
  }
  return parseJsonValidated(file, text, schema, 'E_STATE_INVALID', what, hints.damaged);
}

/**
 * What the schema cannot say about a state: its versions and paths become
 * folders, links and artifacts that rollback and status act on, so each must
 * be a strict version or a path inside its component (an artifact: one name).
 */
function stateProblem(state: ApplianceState): { field: string; message: string } | null {
  const releases: Array<[string, string | null | undefined]> = [
    ['/release', state.release],
    ['/highestRelease', state.highestRelease],
    ['/previous/release', state.previous?.release],
  ];
  for (const [field, release] of releases)
    if (release && !isStrictVersion(release)) return { field, message: 'is not a version' };
  const sets: Array<[string, ApplianceState['components']]> = [
    ['/components', state.components],
    ['/previous/components', state.previous?.components ?? {}],
  ];
  for (const [at, components] of sets) {
    for (const [name, component] of Object.entries(components)) {
      const where = `${at}/${name}`;
      if (!isStrictVersion(component.version))
        return { field: `${where}/version`, message: 'is not a version' };
      for (const [index, file] of component.files.entries()) {
        const reason = unsafePathReason(file.path);
        if (reason) return { field: `${where}/files/${index}/path`, message: reason };
      }
      for (const pass of ['rollback', 'remove', 'update'] as const) {
        const found = (component.artifacts[pass] ?? []).findIndex(
          (artifact) => unsafePathReason(artifact) !== null || artifact.includes('/'),
        );
        if (found >= 0)
          return {
            field: `${where}/artifacts/${pass}/${found}`,
            message: 'is not the name of a kept artifact',
          };
      }
    }
  }
  return null;
}

/** The planner's view of an appliance. */
export function factsOf(appliance: Pick<Appliance, 'config' | 'state'>): ApplianceFacts {
  const { config, state } = appliance;
  return {
    product: config.product,
    platform: config.platform,
    release: state.release,
    verified: state.verified,
    highestRelease: state.highestRelease,
    ...(state.partial ? { partial: state.partial } : {}),
    components: Object.fromEntries(
      Object.entries(state.components).map(([name, c]) => [
        name,
        { version: c.version, requires: c.requires },
      ]),
    ),
  };
}

/**
 * What bundles are checked against here: the trust root, and the time as the
 * later of the clock and the floor (the newest bundle installed), so a clock
 * set back cannot revive an expired bundle or trust root.
 */
export function trustContext(
  trust: TrustedRoot,
  timeFloor: string | undefined,
  clock = new Date(),
): TrustContext {
  const floor = timeFloor === undefined ? 0 : Date.parse(timeFloor);
  return { root: trust, now: new Date(Math.max(clock.getTime(), floor)) };
}

/** The trust root with the revocations the appliance remembers from chains it walked. */
function withRevoked(root: TrustedRoot, facts: Pick<ApplianceState, 'revokedKeys'>): TrustedRoot {
  const revoked = { ...facts.revokedKeys, ...root.revoked };
  for (const keyid of root.roles.targets.keyids) delete revoked[keyid];
  return {
    ...root,
    revoked: Object.fromEntries(
      Object.entries(revoked).map(([keyid, key]) => [keyid, { keyid, ...key }]),
    ),
  };
}

/**
 * The state as the bundle's trust root has it: a root the key holders
 * signed to reset the highest release committed lowers it before planning.
 */
export function resetByRoot(state: ApplianceState, root: TrustedRoot): ApplianceState {
  const reset = root.resetHighestRelease;
  return reset ? { ...state, highestRelease: reset.release } : state;
}

/** What the history says of a rotation an install commits; undefined when there is none. */
export function trustChange(
  before: Appliance,
  root: TrustedRoot,
): Record<string, unknown> | undefined {
  if (root.version === before.trust.version) return undefined;
  const reset = root.resetHighestRelease;
  const revoked = Object.keys(root.revoked).filter((keyid) => !before.trust.revoked[keyid]);
  return {
    from: before.trust.version,
    to: root.version,
    ...(revoked.length > 0 ? { revoked } : {}),
    ...(reset
      ? {
          highestRelease: {
            from: before.state.highestRelease,
            to: reset.release,
            resetBy: reset.version,
          },
        }
      : {}),
  };
}

/** What the state remembers of a trust root's revocations. */
export function revokedKeysOf(root: TrustedRoot): ApplianceState['revokedKeys'] {
  const entries = Object.values(root.revoked);
  if (entries.length === 0) return undefined;
  return Object.fromEntries(
    entries.map(({ keyid, public: hex, name, revokedIn }) => [
      keyid,
      { public: hex, ...(name ? { name } : {}), revokedIn },
    ]),
  );
}

export function exportFacts(
  appliance: Appliance,
  facts: ApplianceFacts,
  now: Date,
): ApplianceFactsExport {
  const { state, trust } = appliance;
  return {
    formatVersion: FORMAT_VERSION,
    ...facts,
    trust: rootFileValue(trust),
    ...(state.revokedKeys ? { revokedKeys: state.revokedKeys } : {}),
    ...(state.timeFloor ? { timeFloor: state.timeFloor } : {}),
    exportedAt: now.toISOString(),
  };
}

/**
 * The largest export `plan --state` reads, before reading it: one holds a
 * trust root (64 KiB at most), components and the files found changed,
 * about 130 bytes each, so about 120,000 of them.
 */
export const MAX_EXPORT_BYTES = 16 * 1024 * 1024;

const EXPORT_AGAIN =
  'export it again on the appliance with ferry status --export FILE, and copy it whole';

/** Reads an exported facts file (from another machine): the planner's input and the site's trust root. */
export async function readFactsExport(
  file: string,
): Promise<{ facts: ApplianceFacts; trust: TrustedRoot; timeFloor?: string }> {
  const value = await readOwnJson(
    file,
    ApplianceFactsSchema,
    'exported appliance state',
    {
      newer: 'a newer Ferry exported it: plan with that Ferry, or export it again with this one',
      damaged: `Ferry never writes this: the file was cut short or edited; ${EXPORT_AGAIN}`,
      notFile: `name the file ferry status --export wrote`,
    },
    MAX_EXPORT_BYTES,
  );
  const problem = factsProblem(value);
  if (problem) {
    throw new FerryError('E_STATE_INVALID', `${file}: ${problem.field} ${problem.message}`, {
      file,
      field: problem.field,
      hint: `Ferry never writes this: the file was edited; ${EXPORT_AGAIN}`,
    });
  }
  const {
    formatVersion: _version,
    trust,
    exportedAt: _at,
    revokedKeys,
    timeFloor,
    ...facts
  } = value;
  const root = parseTrustedRoot(Buffer.from(JSON.stringify(trust)), `${file}#/trust`);
  return {
    facts,
    trust: withRevoked(root, { ...(revokedKeys ? { revokedKeys } : {}) }),
    ...(timeFloor ? { timeFloor } : {}),
  };
}

/**
 * What the schema cannot say about an export: the planner compares its
 * versions (semver throws on one that is not) and checks its ranges, and
 * names its changed files as paths inside their component, as state.json has them.
 */
function factsProblem(facts: ApplianceFactsExport): { field: string; message: string } | null {
  const versions: Array<[string, string | null | undefined]> = [
    ['/platform/version', facts.platform.version],
    ['/release', facts.release],
    ['/highestRelease', facts.highestRelease],
    ['/partial/base', facts.partial?.base],
    ...Object.entries(facts.partial?.leftOut ?? {}).map(
      ([name, version]): [string, string | null] => [`/partial/leftOut/${name}`, version],
    ),
    ...Object.entries(facts.components).map(([name, component]): [string, string] => [
      `/components/${name}/version`,
      component.version,
    ]),
  ];
  for (const [field, version] of versions)
    if (version && !isStrictVersion(version)) return { field, message: 'is not a version' };
  for (const [name, component] of Object.entries(facts.components)) {
    for (const [dependency, range] of Object.entries(component.requires))
      if (!isValidRange(range))
        return { field: `/components/${name}/requires/${dependency}`, message: 'is not a range' };
    for (const [index, changed] of (component.changedFiles ?? []).entries()) {
      const reason = changed.path === CURRENT_LINK ? null : unsafePathReason(changed.path);
      if (reason)
        return { field: `/components/${name}/changedFiles/${index}/path`, message: reason };
    }
  }
  return null;
}

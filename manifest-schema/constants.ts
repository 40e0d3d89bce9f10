/** The version of the shapes of `--json` output (manifest-schema/output-declarations.ts): raised when a field is renamed or removed. */
export const OUTPUT_SCHEMA_VERSION = 1;

/** The bundle format this Ferry writes and the only one it reads. */
export const FORMAT_VERSION = 1;

export const PASSES = ['pre-validate', 'update', 'test', 'rollback', 'remove'] as const;
export type Pass = (typeof PASSES)[number];

/** A component, product or platform name: safe as a path segment and a key. */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';

/** Seven days: a longer estimate of an update is a mistake in the spec. */
export const MAX_ESTIMATED_SECONDS = 604800;

/**
 * The bundle's verification hears every restarted service in one
 * FERRY_RESTART; Linux refuses to start a program with an environment string
 * over 128 KiB (E2BIG), so the list stays well under it.
 */
export const MAX_RESTART_CHARS = 64 * 1024;

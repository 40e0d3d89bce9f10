import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Static, TSchema } from 'typebox';
import {
  ApplianceConfigSchema,
  ApplianceFactsSchema,
  ApplianceStateSchema,
  BundleMetadataSchema,
  ControlTableSchema,
  EnvelopeSchema,
  PartsIndexSchema,
  ReleaseRecordSchema,
  ReleaseSpecSchema,
  RootDocumentSchema,
  TrustRootSchema,
} from './schemas.js';
import * as generated from './validators.generated.js';

export interface ValidationProblem {
  /** JSON pointer to the offending value, e.g. `/components/db/version`. */
  path: string;
  message: string;
}

export type ValidationResult<T> =
  { ok: true; value: T } | { ok: false; errors: ValidationProblem[] };

const validators = generated as unknown as Record<string, ValidateFunction>;

/** Each schema's validator, compiled ahead of time (codegen.ts) instead of at every start. */
const COMPILED = new Map<TSchema, ValidateFunction | undefined>([
  [ReleaseSpecSchema, validators.releaseSpec],
  [BundleMetadataSchema, validators.bundleMetadata],
  [EnvelopeSchema, validators.envelope],
  [ReleaseRecordSchema, validators.releaseRecord],
  [TrustRootSchema, validators.trustRoot],
  [RootDocumentSchema, validators.rootDocument],
  [ControlTableSchema, validators.controlTable],
  [ApplianceConfigSchema, validators.applianceConfig],
  [ApplianceStateSchema, validators.applianceState],
  [ApplianceFactsSchema, validators.applianceFacts],
  [PartsIndexSchema, validators.partsIndex],
]);

/**
 * Validates against a schema and returns every problem with its JSON path;
 * the caller decides whether to throw and which file and line to name.
 */
export function validate<S extends TSchema>(
  schema: S,
  value: unknown,
): ValidationResult<Static<S>> {
  const check = COMPILED.get(schema);
  if (!check)
    throw new Error('validate: a schema without a generated validator (run `npm run schemas`)');
  if (check(value)) return { ok: true, value: value as Static<S> };
  return { ok: false, errors: explain(check.errors ?? []) };
}

/** Turns ajv's errors into one sentence each, dropping the noise of failed union branches. */
function explain(errors: ErrorObject[]): ValidationProblem[] {
  const unions = errors.filter((error) => error.keyword === 'anyOf');
  const problems: ValidationProblem[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const insideUnion = unions.some(
      (union) => union !== error && error.schemaPath.startsWith(union.schemaPath + '/'),
    );
    const aboutKey = error.propertyName !== undefined;
    if (insideUnion || aboutKey) continue;
    const problem = describe(error);
    const key = `${problem.path}\0${problem.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(problem);
    }
  }
  return problems;
}

function describe(error: ErrorObject): ValidationProblem {
  const path = error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const field = String(params.additionalProperty);
      const known = Object.keys(
        (error.parentSchema as { properties?: object } | undefined)?.properties ?? {},
      );
      const near = closest(field, known);
      return {
        path: `${path}/${field}`,
        message: near
          ? `is not a known field (did you mean ${near}?)`
          : `is not a known field${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}`,
      };
    }
    case 'required':
      return { path: `${path}/${String(params.missingProperty)}`, message: 'is required' };
    case 'enum':
      return { path, message: `must be one of: ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'const':
      return { path, message: `must be ${JSON.stringify(params.allowedValue)}` };
    case 'anyOf': {
      const described = (error.parentSchema as { description?: string } | undefined)?.description;
      return {
        path,
        message: described ? `must be ${described}` : 'is not any of the allowed forms',
      };
    }
    case 'type':
      if (params.type === 'string' && typeof error.data === 'number') {
        return { path, message: `must be a string (quote it: "${String(error.data)}")` };
      }
      return { path, message: `must be ${String(params.type)}` };
    case 'minLength':
    case 'maxLength': {
      const description = (error.parentSchema as { description?: string } | undefined)?.description;
      return {
        path,
        message: description ? `must be ${description}` : (error.message ?? 'is invalid'),
      };
    }
    case 'pattern': {
      const description = (error.parentSchema as { description?: string } | undefined)?.description;
      return {
        path,
        message: description ? `must be a ${description}` : `must match ${String(params.pattern)}`,
      };
    }
    case 'propertyNames':
      return {
        path: `${path}/${String(params.propertyName)}`,
        message: `is not a valid name (${NAME_HINT})`,
      };
    default:
      return { path, message: error.message ?? 'is invalid' };
  }
}

const NAME_HINT = 'lower-case letters, digits, . _ -';

/** The known name a typo most likely meant: within two edits, or differing only in case. */
function closest(word: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (distance <= Math.min(2, Math.floor(name.length / 2)) && (!best || distance < best.distance))
      best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    row = next;
  }
  return row[b.length] ?? 0;
}

/** Splits a JSON pointer into its unescaped segments. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

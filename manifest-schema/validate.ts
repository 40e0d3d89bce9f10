import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Static, TSchema } from 'typebox';

export interface ValidationProblem {
  /** JSON pointer to the offending value, e.g. `/components/db/version`. */
  path: string;
  message: string;
}

export type ValidationResult<T> =
  { ok: true; value: T } | { ok: false; errors: ValidationProblem[] };

const ajv = new Ajv({ allErrors: true, strict: true, verbose: true });
const compiled = new Map<TSchema, ValidateFunction>();

/**
 * Validates against a schema and returns every problem with its JSON path;
 * the caller decides whether to throw and which file and line to name.
 */
export function validate<S extends TSchema>(
  schema: S,
  value: unknown,
): ValidationResult<Static<S>> {
  let check = compiled.get(schema);
  if (!check) {
    check = ajv.compile(schema);
    compiled.set(schema, check);
  }
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
    case 'additionalProperties':
      return {
        path: `${path}/${String(params.additionalProperty)}`,
        message: 'is not a known field',
      };
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

/** Splits a JSON pointer into its unescaped segments. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

import { readFile } from 'node:fs/promises';
import type { Static, TSchema } from 'typebox';
import { LineCounter, parseDocument } from 'yaml';
import { FerryError, ioError, type ErrorCode } from './errors.js';
import { pointerSegments, validate, type ValidationProblem } from './validate.js';

export interface LocatedProblem extends ValidationProblem {
  /** 1-based line in the file, when the path can be found in it. */
  line?: number;
}

export interface ParsedDocument<T> {
  value: T;
  /** 1-based line of a JSON pointer in the source, for errors found after validation. */
  lineOf: (pointer: string) => number | undefined;
}

/**
 * Parses a YAML (or JSON, a subset of it) document and validates it against a
 * schema. Every problem is reported at once, each with its field and line, in
 * one FerryError carrying `code`.
 */
export function parseValidated<S extends TSchema>(
  file: string,
  text: string,
  schema: S,
  code: ErrorCode,
  what: string,
): ParsedDocument<Static<S>> {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const syntax = document.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0].line;
    throw new FerryError(
      'E_YAML',
      `${file}${line ? `:${line}` : ''}: ${syntax.message.split('\n')[0]}`,
      {
        file,
        ...(line ? { line } : {}),
        hint: `fix the ${what}'s syntax`,
      },
    );
  }
  const lineOf = (pointer: string): number | undefined => {
    const segments = pointerSegments(pointer);
    for (let depth = segments.length; depth >= 0; depth--) {
      const node = document.getIn(segments.slice(0, depth), true) as
        { range?: [number, number, number] } | undefined;
      const start = node?.range?.[0];
      if (start !== undefined) return lineCounter.linePos(start).line;
    }
    return undefined;
  };
  const raw = document.toJS({ maxAliasCount: 100 }) as unknown;
  const result = validate(schema, raw);
  if (!result.ok) {
    const located: LocatedProblem[] = result.errors.map((problem) => {
      const line = lineOf(problem.path);
      return line === undefined ? problem : { ...problem, line };
    });
    throw problemsError(code, file, located, `fix the ${what} and try again`);
  }
  return { value: result.value, lineOf };
}

/** One error for a list of problems: the first names the field, the message lists them all. */
export function problemsError(
  code: ErrorCode,
  file: string,
  problems: LocatedProblem[],
  hint: string,
): FerryError {
  const lines = problems.map(
    (problem) =>
      `  ${file}${problem.line ? `:${problem.line}` : ''}: ${problem.path || '/'} ${problem.message}`,
  );
  const first = problems[0];
  return new FerryError(code, `${file} is invalid:\n${lines.join('\n')}`, {
    file,
    ...(first ? { field: first.path } : {}),
    ...(first?.line ? { line: first.line } : {}),
    hint,
  });
}

export async function readDocument<S extends TSchema>(
  file: string,
  schema: S,
  code: ErrorCode,
  what: string,
): Promise<ParsedDocument<Static<S>>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw ioError(error, file, 'read');
  }
  return parseValidated(file, text, schema, code, what);
}

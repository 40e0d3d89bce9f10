import type { Static, TSchema } from 'typebox';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { readRegularBytes } from './atomic.js';
import { FerryError, type ErrorCode } from './errors.js';
import { pointerSegments, validate, type ValidationProblem } from './validate.js';

export interface LocatedProblem extends ValidationProblem {
  /** 1-based line in the file, when the path can be found in it. */
  line?: number;
}

export interface ParsedDocument<T> {
  value: T;
  /** 1-based line of a JSON pointer in the source, for errors found after validation. */
  lineOf: (pointer: string) => number | undefined;
  /** 1-based line and column of a JSON pointer's value, for errors about a part of a value. */
  positionOf: (pointer: string) => { line: number; column: number } | undefined;
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
    const { line, col: column } = lineCounter.linePos(syntax.pos[0]);
    throw new FerryError('E_YAML', `${file}:${line}:${column}: ${syntax.message.split('\n')[0]}`, {
      file,
      line,
      column,
      hint: `fix the ${what}'s syntax`,
    });
  }
  const positionOf = (pointer: string): { line: number; column: number } | undefined => {
    const segments = pointerSegments(pointer);
    for (let depth = segments.length; depth >= 0; depth--) {
      const node = document.getIn(segments.slice(0, depth), true) as
        { range?: [number, number, number] } | undefined;
      const start = node?.range?.[0];
      if (start !== undefined) {
        const { line, col } = lineCounter.linePos(start);
        return { line, column: col };
      }
    }
    return undefined;
  };
  const lineOf = (pointer: string): number | undefined => positionOf(pointer)?.line;
  /** The value as written in the file, where YAML read it as something else (1.10 as the number 1.1). */
  const written = (pointer: string): string | undefined => {
    const node = document.getIn(pointerSegments(pointer), true) as
      { range?: [number, number, number] } | undefined;
    return node?.range ? text.slice(node.range[0], node.range[1]).trim() : undefined;
  };
  const raw = expandAliases(document, file, what);
  const result = validate(schema, raw);
  if (!result.ok) {
    const located: LocatedProblem[] = result.errors.map((problem) => {
      const line = lineOf(problem.path);
      const asWritten = unquoted(problem, written(problem.path));
      return { ...asWritten, ...(line === undefined ? {} : { line }) };
    });
    throw problemsError(code, file, located, `fix the ${what} and try again`);
  }
  return { value: result.value, lineOf, positionOf };
}

/** The largest refused document whose problems are located by line (the YAML parser takes 1.4 s a MiB). */
const LOCATED_BYTES = 1024 * 1024;

/**
 * A JSON document Ferry writes itself (an appliance's state, an export of
 * it), parsed and validated in time and memory proportional to its size: the
 * YAML parser of parseValidated takes 9.5 s and 440 MB for a 13 MB one,
 * JSON.parse 0.15 s and 100 MB. A refused document's problems carry their
 * lines when it is small enough to locate them.
 */
export function parseJsonValidated<S extends TSchema>(
  file: string,
  text: string,
  schema: S,
  code: ErrorCode,
  what: string,
  hint: string,
): Static<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FerryError(code, `${file} is not JSON: ${(error as Error).message}`, { file, hint });
  }
  const result = validate(schema, raw);
  if (result.ok) return result.value;
  if (text.length <= LOCATED_BYTES) {
    try {
      parseValidated(file, text, schema, code, what);
    } catch (error) {
      if (error instanceof FerryError && error.code === code) throw error;
    }
  }
  throw problemsError(code, file, result.errors, `fix the ${what} and try again`);
}

/** Aliases each expand to a copy of what they name, so a few lines can grow to gigabytes: past 100, refused. */
const MAX_ALIAS_COUNT = 100;

function expandAliases(document: Document, file: string, what: string): unknown {
  try {
    return document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (cause) {
    // The yaml package's only way to say it: a ReferenceError, whose message names no place.
    if (!(cause instanceof ReferenceError)) throw cause;
    throw new FerryError(
      'E_YAML',
      `${file}: its YAML aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies`,
      {
        file,
        hint: `write the ${what}'s values out instead of repeating them through aliases`,
        cause,
      },
    );
  }
}

/**
 * The text of a UTF-8 file. Decoding leniently would turn a Latin-1 byte into
 * U+FFFD and sign it into release notes or a name; the line is named instead.
 */
function utf8Text(bytes: Buffer, file: string, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    const lines = bytes.toString('latin1').split('\n');
    const line =
      lines.findIndex((text) => {
        const raw = Buffer.from(text, 'latin1');
        return !Buffer.from(raw.toString('utf8'), 'utf8').equals(raw);
      }) + 1;
    throw new FerryError('E_YAML', `${file}:${line}: this line is not UTF-8 text`, {
      file,
      line,
      hint: `save the ${what} as UTF-8 (it may be in Latin-1 or another legacy encoding)`,
      cause,
    });
  }
}

/**
 * A number where a string belongs: suggest the text as written, quoted (and
 * made a full semver version where the field is one), not the number YAML read.
 */
function unquoted(problem: ValidationProblem, text: string | undefined): ValidationProblem {
  if (text === undefined || !problem.message.startsWith('must be a string (quote it'))
    return problem;
  const version = /(^\/release|\/version)$/.test(problem.path) && /^\d+(\.\d+){0,2}$/.test(text);
  const suggestion = version ? [...text.split('.'), '0', '0'].slice(0, 3).join('.') : text;
  const read = Number(text);
  return {
    ...problem,
    message: `must be a string: quote it, as "${suggestion}"${String(read) !== text ? ` (unquoted, ${text} is the number ${read})` : ''}`,
  };
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
    problems,
    hint,
  });
}

export async function readDocument<S extends TSchema>(
  file: string,
  schema: S,
  code: ErrorCode,
  what: string,
): Promise<ParsedDocument<Static<S>>> {
  return parseValidated(file, await readDocumentText(file, code, what), schema, code, what);
}

/** Specs, records and appliance settings are kilobytes; past this a file is not one, and parsing it would take gigabytes. */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

/** A document's text, from a regular file only (see openRegularFile), refused unread past MAX_DOCUMENT_BYTES. */
async function readDocumentText(file: string, code: ErrorCode, what: string): Promise<string> {
  const tooLarge = `this is not a ${what} (at most ${MAX_DOCUMENT_BYTES} bytes); name the right file`;
  const bytes = await readRegularBytes(file, code, {
    max: MAX_DOCUMENT_BYTES,
    hint: tooLarge,
    notAFile: {
      code: 'E_USAGE',
      message: (kind) => `${file} is ${kind}, not a file`,
      hint: `name the ${what} file itself`,
    },
  });
  // Grown while it was read: what was read is cut, and could parse as a shorter document.
  if (bytes.length > MAX_DOCUMENT_BYTES)
    throw new FerryError(code, `${file} grew past ${MAX_DOCUMENT_BYTES} bytes while it was read`, {
      file,
      hint: tooLarge,
    });
  return utf8Text(bytes, file, what);
}

import { optional, type Command } from '../args.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry policy --repo REPO [--set FILE ${WRITER_FLAGS}] ${REPO_FLAGS}`,
  summary: "show a bundle repository's channel policy, or replace it (signed, and logged)",
  options: { ...repoOptions, ...writerOptions, set: { type: 'string' } },
  async run({ values }) {
    const model = await import('../../repository/model.js');
    const file = optional(values, 'set');
    if (file === undefined) {
      const result = await model.showPolicy(repoOf(values));
      return { json: result, human: JSON.stringify(result.policy, null, 2) };
    }
    const { readFile } = await import('node:fs/promises');
    const { parse } = await import('yaml');
    const { FerryError, ioError } = await import('../../manifest-schema/errors.js');
    const text = await readFile(file, 'utf8').catch((error: unknown) => {
      throw ioError(error, file, 'read');
    });
    let policy: unknown;
    try {
      policy = parse(text);
    } catch (error) {
      throw new FerryError('E_YAML', `${file} does not parse: ${(error as Error).message}`, {
        file,
        hint: 'a policy is YAML or JSON',
      });
    }
    const result = await model.setPolicy({
      ...repoOf(values),
      policy,
      file,
      writer: await writerOf(values),
    });
    return { json: result, human: `policy of ${result.repo} set (${result.digest})` };
  },
};

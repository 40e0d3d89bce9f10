// Writes manifest-schema/schemas/*.json and the ahead-of-time validators
// (manifest-schema/validators.generated.ts) from the TypeBox declarations (built into dist/).
// Run `npm run schemas` after changing manifest-schema/declarations.ts; a test fails until you do.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { SCHEMAS } = await import(join(root, 'dist/manifest-schema/declarations.js'));
for (const [name, schema] of Object.entries(SCHEMAS)) {
  writeFileSync(
    join(root, 'manifest-schema/schemas', `${name}.json`),
    `${JSON.stringify(schema, null, 2)}\n`,
  );
}
// What each command prints with --json: published for the programs that read it, not compiled in.
const { OUTPUT_SCHEMAS } = await import(join(root, 'dist/manifest-schema/output-declarations.js'));
for (const [name, schema] of Object.entries(OUTPUT_SCHEMAS)) {
  writeFileSync(
    join(root, 'manifest-schema/schemas', `output-${name}.json`),
    `${JSON.stringify(schema, null, 2)}\n`,
  );
}
const { validatorsSource } = await import(join(root, 'dist/manifest-schema/codegen.js'));
writeFileSync(join(root, 'manifest-schema/validators.generated.ts'), validatorsSource());
console.log(
  `wrote ${Object.keys(SCHEMAS).length} schemas and their validators, and ${Object.keys(OUTPUT_SCHEMAS).length} output schemas`,
);

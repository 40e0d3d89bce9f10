// One transfer with Ferry's OCI client, for scripts/bench.mjs; reports its peak
// RSS on stderr like bench-run.mjs.
//   push oci://HOST/NAME FILE DIGEST
//   pull oci://HOST/NAME DIGEST SIZE OUT
const { RegistryClient } = await import('../dist/repository/oci/index.js');

const [operation, repository, ...rest] = process.argv.slice(2);
const client = await RegistryClient.open(repository, { env: {} });
if (operation === 'push') {
  const [file, digest] = rest;
  const pushed = await client.pushBlob(file, { digest });
  // A blob already there is skipped: that would time a HEAD request, not an upload.
  if (!pushed.uploaded) throw new Error(`${digest} was already in ${repository}`);
} else if (operation === 'pull') {
  const [digest, size, out] = rest;
  await client.pullBlob(digest, Number(size), out);
} else {
  throw new Error(`unknown operation ${operation}`);
}
process.stderr.write(`\nmaxrss ${process.resourceUsage().maxRSS}\n`);

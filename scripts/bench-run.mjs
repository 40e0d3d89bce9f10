// Runs one ferry command in this process and reports its peak RSS on stderr
// (worker threads included), for scripts/bench.mjs.
const { runCli } = await import('../dist/cli/main.js');
process.exitCode = await runCli(process.argv.slice(2));
process.stderr.write(`\nmaxrss ${process.resourceUsage().maxRSS}\n`);

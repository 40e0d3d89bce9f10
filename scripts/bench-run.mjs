// Runs one ferry command in this process, as `bin/ferry` (what `ferry` is in a
// checkout and through npx), and reports its peak RSS on stderr (worker
// threads included) as it exits, for the benchmarks: bin/ferry's import
// returns once the command has started, not when it ends.
process.on('exit', () => process.stderr.write(`\nmaxrss ${process.resourceUsage().maxRSS}\n`));
await import('../bin/ferry');

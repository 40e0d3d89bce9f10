// Runs one ferry command in this process, as bin/ferry does (the bundle runs
// the command it is given when imported), and reports its peak RSS on stderr
// (worker threads included), for scripts/bench.mjs.
await import('../dist/package/ferry.mjs');
process.stderr.write(`\nmaxrss ${process.resourceUsage().maxRSS}\n`);

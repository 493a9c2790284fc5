#!/usr/bin/env node
// Portcullis needs Node.js 24+ (node:sqlite, type stripping); `npx portcullis` in a checkout
// runs the node@24 devDependency.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  console.error(`portcullis needs Node.js 24 or newer (this is ${process.version}); run it with npx portcullis or npm start`);
  process.exit(1);
}
const args = process.argv.slice(2);
// libuv's default of 4 threads runs every file operation, and a blob commit holds one for each
// fsync (64 MiB takes a while): four concurrent pushes left none for the other requests' reads,
// writes and opens. 16 raised small-image pushes 36-58% (docs/benchmarks.md). Read by libuv when
// its pool starts, which is after this line; an operator's value is kept.
if (args[0] === 'serve') process.env.UV_THREADPOOL_SIZE ??= '16';
// The server's memory: V8 sizes the young generation by the machine's RAM (up to 64 MiB per
// semi-space here), and streaming blobs fills it with short-lived buffers, so a serve process
// idled at ~165 MB and peaked at ~235 MB pushing a 1 GiB blob: a scavenge is what frees the
// socket's 64 KiB read buffers early. 2 MiB semi-spaces: idle ~142 MB, peak ~167-187 MB (4 MiB
// reached 216 MB; 1 MiB cost manifest GETs ~10% more CPU; docs/benchmarks.md). The flag only
// works at start-up, so `serve` replaces itself (same pid) with a node that has it, unless the
// operator set one (command line or NODE_OPTIONS) or execve is unavailable.
// One V8 platform thread, not four: on a 2-CPU host, while blobs streamed in, the four parallel
// marking/scavenging helpers burnt up to 4.5 s of CPU per 2 GiB pushed in about half the runs
// (bimodal: push at concurrency 4 fell to ~0.7x distribution); with one helper that never
// happened in the runs measured, peak RSS stayed under the budget, manifest GETs unchanged
// (docs/benchmarks.md).
if (args[0] === 'serve' && typeof process.execve === 'function' && !`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`.includes('--max-semi-space-size')) {
  process.execve(process.execPath, [process.execPath, ...process.execArgv, '--max-semi-space-size=2', '--v8-pool-size=1', process.argv[1], ...args], process.env);
}
// The pipeline commands (signing) load no server code: faster in CI, no database drivers.
const pipeline = ['key', 'sign', 'attest', 'verify'].includes(args[0]);
const main = pipeline ? (await import('../src/cli/sign.ts')).signMain : (await import('../src/cli/main.ts')).main;
process.exitCode = await main(args);

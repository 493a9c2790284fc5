#!/usr/bin/env node
// Portcullis needs Node.js 24+ (node:sqlite, type stripping); `npx portcullis` in a checkout
// runs the node@24 devDependency.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  console.error(`portcullis needs Node.js 24 or newer (this is ${process.version}); run it with npx portcullis or npm start`);
  process.exit(1);
}
const args = process.argv.slice(2);
// The pipeline commands (signing) load no server code: faster in CI, no database drivers.
const pipeline = ['key', 'sign', 'attest', 'verify'].includes(args[0]);
const main = pipeline ? (await import('../src/cli/sign.ts')).signMain : (await import('../src/cli/main.ts')).main;
process.exitCode = await main(args);

import { parseArgs } from 'node:util';
import { buildRegistry, openStores } from '../registry/app/build-app.ts';
import { ConfigError, environmentVariables, loadConfig, redactedConfig } from '../registry/config/load.ts';
import type { Config } from '../registry/config/schema.ts';
import { GarbageCollector } from '../registry/gc/collector.ts';
import { UploadService } from '../registry/distribution/uploads.ts';
import { EventBus } from '../registry/events/bus.ts';

const usage = `portcullis - a secure OCI container registry

Usage:
  portcullis serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
      Start the registry (default: 127.0.0.1:5000, filesystem + SQLite under ./data).
  portcullis gc [--dry-run] [--config FILE] [--data-dir DIR]
      Collect unreferenced blobs (and untagged manifests if configured) while the registry runs.
  portcullis admin user|project|member|robot ... (see portcullis admin --help)
      Create users, projects, memberships and robot accounts (bootstrapping, automation).
  portcullis login --oidc [--provider NAME] REGISTRY (see portcullis login --help)
      Log in through the registry's OpenID provider; stores a personal access token for podman.
  portcullis config check [--config FILE]
  portcullis key generate | sign | attest | verify ... (see portcullis sign --help)
      cosign-compatible signing and verification for pipelines: --key cosign.key, COSIGN_PASSWORD.
      Validate the configuration and print it, then exit.
  portcullis audit verify|query|export ... (see portcullis audit --help)
      Prove the audit log intact, query it, export it as JSON Lines.
  portcullis vulndb import PATH|URL | vulndb status, portcullis scan ... (see portcullis scan --help)
      Vulnerability data, and scans of local images (OCI layout, archive) or a registry's report.
  portcullis login REGISTRY [-u USER] [--password-stdin] | logout REGISTRY (see portcullis login --help)
      Store (remove) registry credentials where podman, skopeo and this CLI read them.
  portcullis trace IMAGE|DIGEST | trace --commit SHA | trace --vulnerability ID (see portcullis trace --help)
      Provenance graph of an image; images built from a commit; workloads running a vulnerability.
  portcullis policy check POLICY... | policy test POLICY --input FILE (see portcullis policy --help)
      Validate policy documents; evaluate one against an input document (exit 1 when denied).
  portcullis policy explain IMAGE | policy simulate POLICY --registry HOST (see portcullis policy --help)
      Explain a registry's decision for an image; what a candidate policy would deny across stored images.
  portcullis promote SRC DST [--tag T]
      Promote an image with its signatures, attestations and SBOMs to another project, under its policy.
  portcullis admission manifests (--service NAME --namespace NS | --url URL) [--ca-bundle FILE]
      Kubernetes webhook configurations (validating, mutating) and Service for the admission webhooks.
  portcullis --help

Configuration: a YAML file (--config), then PORTCULLIS_* environment variables, then flags.
Environment variables: ${environmentVariables().join(', ')}`;

const commonOptions = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  listen: { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'audit') return (await import('../registry/audit/cli.ts')).auditMain(argv.slice(1));
  if (argv[0] === 'vulndb') return (await import('../registry/scanner/cli.ts')).vulndbMain(argv.slice(1));
  if (argv[0] === 'scan') return (await import('../registry/scanner/cli.ts')).scanMain(argv.slice(1));
  if (argv[0] === 'policy') return (await import('../registry/policy/cli.ts')).policyMain(argv.slice(1));
  if (argv[0] === 'promote') return (await import('../registry/policy/remote-cli.ts')).promoteMain(argv.slice(1));
  if (argv[0] === 'admission') return (await import('../registry/admission/cli.ts')).admissionMain(argv.slice(1));
  if (argv[0] === 'trace') return (await import('../registry/trace/cli.ts')).traceMain(argv.slice(1));
  // `login` with a password, as podman does it, and `logout`; `login --oidc` is login.ts.
  if (argv[0] === 'logout') return (await import('./password-login.ts')).logoutMain(argv.slice(1));
  if (argv[0] === 'login' && !argv.includes('--oidc')) return (await import('./password-login.ts')).passwordLoginMain(argv.slice(1));
  // `login --oidc`: device authorization through the registry, yields a personal access token.
  if (argv[0] === 'login') return (await import('./login.ts')).loginMain(argv.slice(1));
  // `admin` has options of its own.
  if (argv[0] === 'admin') return (await import('./admin.ts')).adminMain(argv.slice(1));
  // Signing commands (sign.ts) talk to a registry over HTTP, like cosign.
  if (argv[0] === 'key' || argv[0] === 'sign' || argv[0] === 'attest' || argv[0] === 'verify') return (await import('./sign.ts')).signMain(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: commonOptions, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    console.log(usage);
    return command === undefined && !values.help ? 2 : 0;
  }
  let config: Config;
  try {
    const overrides: Array<{ path: string[]; value: unknown; flag: string }> = [];
    if (values.listen) overrides.push({ path: ['server', 'listen'], value: values.listen, flag: '--listen' });
    if (values['data-dir']) overrides.push({ path: ['storage', 'dataDir'], value: values['data-dir'], flag: '--data-dir' });
    config = await loadConfig({ file: values.config, overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
  switch (command) {
    case 'serve':
      return serve(config);
    case 'gc':
      return collect(config, values['dry-run'] ?? false);
    case 'config':
      if (positionals[1] !== 'check') break;
      console.log(JSON.stringify(redactedConfig(config), null, 2));
      return 0;
  }
  console.error(`unknown command ${JSON.stringify(positionals.join(' '))}\n\n${usage}`);
  return 2;
}

function splitListen(listen: string): { host: string; port: number } {
  const index = listen.lastIndexOf(':');
  return { host: listen.slice(0, index).replace(/^\[|\]$/g, ''), port: Number(listen.slice(index + 1)) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

async function serve(config: Config): Promise<number> {
  // Read once, then removed so that no child process or later log of the environment sees it.
  const adminPassword = process.env.PORTCULLIS_ADMIN_PASSWORD || undefined;
  delete process.env.PORTCULLIS_ADMIN_PASSWORD;
  const registry = await buildRegistry(config, { adminPassword });
  const { host, port } = splitListen(config.server.listen);
  await registry.app.listen({ host, port });
  const address = registry.app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  console.log(`portcullis: listening on ${config.server.tls?.certFile ? 'https' : 'http'}://${shown}:${actualPort}`);
  console.log(`portcullis: data in ${config.storage.dataDir} (${config.storage.metadata.kind} metadata, ${config.storage.blobs.kind} blobs)`);
  if (registry.adminBootstrap) {
    const generated = registry.adminBootstrap.generatedPassword;
    // Printed once, to the console only (never to the log); it is not stored anywhere in clear.
    if (generated !== undefined) console.log(`portcullis: created the administrator "admin" with the password ${generated}\n  It is shown only this once: log in and change it (or start with PORTCULLIS_ADMIN_PASSWORD set).`);
    else console.log('portcullis: created the administrator "admin" with the password from PORTCULLIS_ADMIN_PASSWORD');
  }
  if (config.auth.mode === 'token') {
    console.log(`portcullis: token authentication (service "${config.auth.service}"); log in with e.g. podman login ${shown}:${actualPort}`);
  } else if (isLoopback(host)) {
    console.log('portcullis: auth.mode none: NO authentication, so it listens on loopback only. Log in: nothing needed; e.g.');
    console.log(`  skopeo copy --dest-tls-verify=false oci:DIR docker://${shown}:${actualPort}/project/app:tag`);
    console.log(`  podman push --tls-verify=false IMAGE ${shown}:${actualPort}/project/app:tag`);
  } else {
    console.warn(`portcullis: WARNING: listening on ${host} WITHOUT authentication: anyone who can reach it can push and delete`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await registry.close();
  return 0;
}

async function collect(config: Config, dryRun: boolean): Promise<number> {
  const stores = await openStores(config);
  try {
    const events = new EventBus();
    const uploads = new UploadService({ blobs: stores.blobs, meta: stores.meta, events }, { blobMaxBytes: config.limits.blobMaxBytes, blobGraceMs: config.gc.blobGraceSeconds * 1000 });
    const collector = new GarbageCollector(
      { blobs: stores.blobs, meta: stores.meta, uploads, events },
      { untaggedManifestsAfterMs: config.gc.untaggedManifestsAfterSeconds * 1000, uploadExpiryMs: config.uploads.expireAfterSeconds * 1000 },
    );
    const report = await collector.collect({ dryRun });
    const verb = dryRun ? 'would delete' : 'deleted';
    console.log(`gc: ${verb} ${report.blobsDeleted} blobs (${report.bytesFreed} bytes) and ${report.manifestsDeleted} untagged manifests; ${report.uploadsExpired} abandoned uploads removed; ${report.durationMs} ms`);
    console.log(JSON.stringify(report));
    return 0;
  } finally {
    await stores.close();
  }
}

/**
 * `portcullis vulndb import|status` and `portcullis scan`: the scanner from the command line.
 *
 * Local commands work on a data directory (`--data-dir`, or `storage.dataDir` of `--config`), with
 * or without a running server: `vulndb import` persists the database there and queues
 * re-evaluation for the server (which notices the new snapshot); `scan --oci-layout DIR[:TAG]` /
 * `--archive FILE` scans an image on disk against that database, so a CI job can gate on findings
 * before pushing. `scan IMAGE-REF` asks a registry for its report instead.
 *
 * Exit codes of `scan`: 0 no finding at or above `--fail-on`; 1 some; 2 usage or configuration
 * error; 3 the image could not be scanned (unreadable, hostile layer, no report).
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { analyzeImage, SCANNER_VERSION } from './analyze.ts';
import { archiveImage, ociLayoutImage, splitLayoutSpec, type ImageSource } from './image-source.ts';
import { LayerError } from './inventory/errors.ts';
import { buildReport, failsThreshold, SEVERITY_NAMES, sarif, table, type ScanReport } from './report.ts';
import { sbomBytes, type SbomFormat } from './sbom.ts';
import { materializeFindings, parseRefs, type SeverityName, templatesOf } from './evaluation.ts';
import { VulnData } from './vulndata.ts';

export const scannerUsage = `  portcullis vulndb import PATH|URL|oci://HOST/REPO:TAG [--config FILE | --data-dir DIR] [--force] [--json]
      Import OSV records (a directory, a zip such as OSV's all.zip, an http(s) URL fetched
      conditionally, or an OSV artifact in a registry) into the data directory's vulnerability
      database; a running server re-evaluates every stored image against it.
  portcullis vulndb push DIR|ZIP HOST/REPO:TAG [--insecure] [--json]
      Pack OSV records as an OCI artifact (${'application/vnd.portcullis.osv.v1'}) and push it, for
      registries without internet access (import it there with oci://, or list it in
      scanner.vulnerabilityData.sources). --insecure: plain HTTP (loopback hosts always).
  portcullis vulndb status [--config FILE | --data-dir DIR] [--json]
      Sources, record count, content hash and age of the vulnerability database.
  portcullis scan --oci-layout DIR[:TAG] | --archive FILE | IMAGE-REF
                  [--format table|json|sarif|cyclonedx|spdx] [--fail-on SEVERITY] [--output FILE]
                  [--platform OS/ARCH] [--config FILE | --data-dir DIR]
      Scan a local image (OCI layout as skopeo's oci: transport names it, or a docker/oci archive)
      against the local database, or show a registry's report of IMAGE-REF (HOST/NAME:TAG or
      @DIGEST; --insecure for plain HTTP; credentials as podman/docker keep them).
      Exit 1 when a finding is at or above --fail-on (critical, high, medium, low), 3 when the
      image cannot be scanned.`;

const options = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
  'oci-layout': { type: 'string' },
  archive: { type: 'string' },
  format: { type: 'string' },
  'fail-on': { type: 'string' },
  output: { type: 'string' },
  platform: { type: 'string' },
  insecure: { type: 'boolean' },
  'wait-seconds': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FORMATS = ['table', 'json', 'sarif', 'cyclonedx', 'spdx'] as const;
type Format = (typeof FORMATS)[number];

async function configOf(values: { config?: string | undefined; 'data-dir'?: string | undefined }): Promise<Config> {
  const overrides = values['data-dir'] ? [{ path: ['storage', 'dataDir'], value: values['data-dir'], flag: '--data-dir' }] : [];
  return loadConfig({ file: values.config, overrides });
}

/** The parsed command line, or the exit code when there is nothing more to do (usage error, help). */
function parseCommand(argv: string[]) {
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    if (!parsed.values.help) return parsed;
    console.log(scannerUsage);
    return 0;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${scannerUsage}`);
    return 2;
  }
}

/** The configuration, or exit code 2 when it is invalid. */
async function configOrExit(values: { config?: string | undefined; 'data-dir'?: string | undefined }): Promise<Config | number> {
  try {
    return await configOf(values);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return 2;
  }
}

/** `portcullis vulndb ...`; returns the exit code. */
export async function vulndbMain(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const config = await configOrExit(values);
  if (typeof config === 'number') return config;
  const vulns = await VulnData.open(config.storage.dataDir);
  const maxAge = Math.round(config.scanner.vulnerabilityData.maxAgeHours * 3600);
  switch (positionals[0]) {
    case 'import': {
      const location = positionals[1];
      if (!location || positionals.length > 2) {
        console.error(`vulndb import takes one PATH or URL\n\n${scannerUsage}`);
        return 2;
      }
      let report;
      try {
        report = location.startsWith('oci://')
          ? await (await import('./vulndb/oci-source.ts')).importFromRegistry(vulns, location, { force: values.force === true, ...(values.insecure ? { http: true } : {}) })
          : await vulns.import(location, { force: values.force === true });
      } catch (error) {
        console.error(`vulndb import: ${(error as Error).message}`);
        return 1;
      }
      if (report.status === 'imported' && config.scanner.enabled) await queueRematch(config);
      if (values.json) console.log(JSON.stringify({ ...report, database: vulns.status(maxAge) }, null, 2));
      else {
        const c = report.changes;
        console.log(
          report.status === 'imported'
            ? `vulndb: imported ${report.meta?.records ?? 0} records from ${report.source} (${c.added.length} added, ${c.changed.length} changed, ${c.removed.length} removed, ${report.rejectedCount} rejected); ${vulns.db.size} records in total`
            : `vulndb: ${report.source} is unchanged; nothing imported`,
        );
        for (const r of report.rejected.slice(0, 20)) console.log(`  rejected ${r.path}${r.id ? ` (${r.id})` : ''}: ${r.reason}`);
      }
      return 0;
    }
    case 'push': {
      const [, path, target] = positionals;
      if (!path || !target || positionals.length > 3) {
        console.error(`vulndb push takes a DIR or ZIP and a HOST/REPOSITORY:TAG\n\n${scannerUsage}`);
        return 2;
      }
      try {
        const { pushOsvArtifact } = await import('./vulndb/oci-source.ts');
        const pushed = await pushOsvArtifact(path, target, values.insecure ? { http: true } : {});
        if (values.json) console.log(JSON.stringify(pushed, null, 2));
        else console.log(`vulndb: pushed ${pushed.records} records (${pushed.bytes} bytes${pushed.rejected > 0 ? `, ${pushed.rejected} invalid records left out of the count` : ''}) to ${pushed.reference}@${pushed.digest}`);
        return 0;
      } catch (error) {
        console.error(`vulndb push: ${(error as Error).message}`);
        return 1;
      }
    }
    case 'status': {
      const status = vulns.status(maxAge);
      if (values.json) console.log(JSON.stringify({ ...status, maxAgeSeconds: maxAge }, null, 2));
      else {
        console.log(`vulndb: ${status.records} records, content hash ${status.contentHash.slice(0, 16)}…, ${status.ageSeconds === undefined ? 'never imported' : `last import ${Math.round(status.ageSeconds / 3600)} h ago`}${status.stale ? ' (STALE)' : ''}`);
        for (const s of status.sources) console.log(`  ${s.source} (${s.kind}): ${s.records} records, imported ${s.importedAt}${s.rejected > 0 ? `, ${s.rejected} rejected` : ''}`);
      }
      return status.stale ? 1 : 0;
    }
  }
  console.error(`unknown command ${JSON.stringify(['vulndb', ...positionals].join(' '))}\n\n${scannerUsage}`);
  return 2;
}

/** Queues re-evaluation in the scanner's store, for a server running (now or later) on this data. */
async function queueRematch(config: Config): Promise<void> {
  const { openScanStore } = await import('../app/build-app.ts');
  const { JobQueue } = await import('./jobs.ts');
  const store = await openScanStore(config);
  try {
    await new JobQueue(store.db).enqueue({ id: 'rematch', kind: 'rematch', priority: 0, payload: { requestedAt: Date.now(), by: 'cli' } }, Date.now(), { replace: true });
  } finally {
    await store.close();
  }
}

/** `portcullis scan ...`; returns the exit code. */
export async function scanMain(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const format = (values.format ?? 'table') as Format;
  if (!FORMATS.includes(format)) {
    console.error(`--format must be one of ${FORMATS.join(', ')}`);
    return 2;
  }
  const failOn = values['fail-on'] as SeverityName | undefined;
  if (failOn !== undefined && !SEVERITY_NAMES.includes(failOn)) {
    console.error(`--fail-on must be one of ${SEVERITY_NAMES.join(', ')}`);
    return 2;
  }
  const sources = [values['oci-layout'], values.archive, positionals[0]].filter((v) => v !== undefined);
  if (sources.length !== 1 || positionals.length > 1) {
    console.error(`scan takes exactly one of --oci-layout DIR[:TAG], --archive FILE or IMAGE-REF\n\n${scannerUsage}`);
    return 2;
  }
  const config = await configOrExit(values);
  if (typeof config === 'number') return config;
  let output: string | Buffer;
  let report: ScanReport;
  try {
    if (positionals[0] !== undefined) {
      const remote = await remoteReport(positionals[0], format, values.insecure === true, Number(values['wait-seconds'] ?? 300));
      report = remote.report;
      output = remote.output ?? render(format, report, undefined);
    } else {
      const local = await localScan(config, values['oci-layout'] !== undefined ? { layout: values['oci-layout'] } : { archive: values.archive! }, values.platform);
      report = local.report;
      output = render(format, report, local.sbom);
    }
  } catch (error) {
    const reason = error instanceof LayerError ? `${error.code}: ${error.message}` : (error as Error).message;
    console.error(`scan: ${reason}`);
    return 3;
  }
  if (values.output) await writeFile(values.output, output);
  else process.stdout.write(output);
  if (report.status !== 'complete') return 3;
  if (format !== 'table' && report.warnings.length > 0) for (const w of report.warnings) console.error(`warning: ${w}`);
  return failOn !== undefined && failsThreshold(report, failOn) ? 1 : 0;
}

function render(format: Format, report: ScanReport, sbom: ((f: SbomFormat) => Buffer) | undefined): string | Buffer {
  switch (format) {
    case 'table':
      return table(report);
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'sarif':
      return `${JSON.stringify(sarif(report, SCANNER_VERSION), null, 2)}\n`;
    case 'cyclonedx':
    case 'spdx':
      if (!sbom) throw new Error(`no SBOM for ${report.repository}`);
      return sbom(format);
  }
}

/** Scans an image on disk against the data directory's vulnerability database. */
export async function localScan(config: Config, where: { layout: string } | { archive: string }, platform?: string): Promise<{ report: ScanReport; sbom: (f: SbomFormat) => Buffer }> {
  const source: ImageSource = 'layout' in where ? await ociLayoutImage(where.layout, platform) : await archiveImage(where.archive, platform);
  const name = 'layout' in where ? (splitLayoutSpec(where.layout).tag ? `${splitLayoutSpec(where.layout).dir}:${splitLayoutSpec(where.layout).tag}` : where.layout) : where.archive;
  const vulns = await VulnData.open(config.storage.dataDir);
  const c = config.scanner;
  const analysis = await analyzeImage(source, vulns.matcher, vulns.identity(), { limits: { ...c.limits }, ...(c.secretsFingerprintKey ? { secretsKey: c.secretsFingerprintKey } : {}) });
  const now = Date.now();
  const report = buildReport({
    repository: name,
    digest: source.digest,
    status: 'complete',
    completedAt: now,
    scannerVersion: SCANNER_VERSION,
    os: analysis.os,
    inventory: analysis.inventory,
    findings: materializeFindings(parseRefs(analysis.evaluation.refs), templatesOf(analysis.evaluation), analysis.inventory.packages),
    secrets: analysis.secrets as never,
    configFindings: analysis.configFindings as never,
    dbHash: analysis.evaluation.dbHash,
    dbUpdatedAt: analysis.evaluation.dbUpdatedAt,
    evaluatedAt: now,
    currentDbHash: analysis.evaluation.dbHash,
    maxAgeSeconds: Math.round(c.vulnerabilityData.maxAgeHours * 3600),
    exemptions: [],
    exemptionWarnDays: c.exemptions.warnDays,
    now,
  });
  const subject = { name, digest: source.digest, scannedAt: new Date(now).toISOString(), os: analysis.os, toolVersion: SCANNER_VERSION };
  return { report, sbom: (f) => sbomBytes(f, subject, analysis.inventory.packages, analysis.inventory.layers) };
}

// ------------------------------------------------------------------------------------------------
// Remote: the registry's report of an image reference.

/** HOST[:PORT]/NAME[:TAG|@DIGEST] -> parts. */
export function parseImageRef(ref: string): { host: string; name: string; reference: string } {
  const at = ref.indexOf('@');
  let rest = at >= 0 ? ref.slice(0, at) : ref;
  let reference = at >= 0 ? ref.slice(at + 1) : 'latest';
  const slash = rest.indexOf('/');
  if (slash < 0) throw new Error(`${ref}: expected HOST/NAME[:TAG|@DIGEST]`);
  const host = rest.slice(0, slash);
  rest = rest.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  if (at < 0 && colon > rest.lastIndexOf('/')) {
    reference = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { host, name: rest, reference };
}

/** Basic credentials for `host/name` where podman, skopeo and docker keep them (the CLI's one reader, registry-client.ts). */
export async function registryCredentials(host: string, name = '', env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const { findCredentials } = await import('../../cli/registry-client.ts');
  const c = findCredentials(host, name, env);
  return c && c.password !== '' ? Buffer.from(`${c.username}:${c.password}`).toString('base64') : undefined;
}

async function remoteReport(ref: string, format: Format, insecure: boolean, waitSeconds: number): Promise<{ report: ScanReport; output?: Buffer }> {
  const { host, name, reference } = parseImageRef(ref);
  const base = `${insecure || /^(localhost|127\.|\[::1\])/.test(host) ? 'http' : 'https'}://${host}/api/v1/repositories/${name}/scans/${encodeURIComponent(reference)}`;
  const auth = await registryCredentials(host, name);
  const headers: Record<string, string> = auth ? { authorization: `Basic ${auth}` } : {};
  const deadline = Date.now() + waitSeconds * 1000;
  let report: ScanReport;
  for (;;) {
    const res = await fetch(base, { headers });
    if (!res.ok) throw new Error(`${ref}: the registry answered ${res.status} ${(await res.text()).slice(0, 300)}`);
    report = (await res.json()) as ScanReport;
    if ((report.status === 'complete' || report.status === 'failed') && !report.database?.reevaluationPending) break;
    if ((report as { manifests?: unknown }).manifests) throw new Error(`${ref} is an index; name a platform image by digest`);
    if (Date.now() > deadline) throw new Error(`${ref}: the scan is still ${report.status}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (format === 'sarif' || format === 'cyclonedx' || format === 'spdx') {
    const url = format === 'sarif' ? `${base}/sarif` : `${base}/sbom?format=${format}`;
    const res = await fetch(url, { headers });
    if (!res.ok) throw new Error(`${ref}: the registry answered ${res.status} for the ${format} document`);
    return { report, output: Buffer.from(await res.arrayBuffer()) };
  }
  return { report };
}

/**
 * Policy commands that talk to a running registry over HTTP, with the credentials `portcullis
 * sign`/`verify` use (flags, else the container tools' auth files; Basic or the Docker token flow):
 *   portcullis promote SRC DST [--tag T]          POST /api/v1/promotions
 *   portcullis policy explain IMAGE [--point P]   GET  /api/v1/policy/explain
 *   portcullis policy simulate POLICY --registry HOST [--project P] [--point P...]
 *                                                 POST /api/v1/policy/simulate
 * Exit codes: 0 allowed / nothing would be denied, 1 denied / something would be denied,
 * 2 bad usage or any other failure.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { findCredentials, parseImageRef, RegistryClient, type Response } from '../../cli/registry-client.ts';
import { ENFORCEMENT_POINTS } from './document.ts';
import type { PolicyDecision } from './evaluate.ts';
import type { SimulationReport } from './simulate.ts';

export const remoteUsage = `  portcullis promote SRC DST [--tag T] [--json]
      Promote SRC (host/project/repo:tag or @sha256:...) to DST (host/project/repo[:tag]) when DST's policy
      passes: the image, its signatures, attestations and SBOMs are copied by digest and a promotion
      attestation signed by the registry is attached. Exit 1 when the policy refuses it.
  portcullis policy explain IMAGE [--point push|pull|promotion|admission] [--json]
      The decision the registry's policy takes for IMAGE (host/project/repo:tag or @digest); exit 1 when denied.
  portcullis policy simulate POLICY --registry HOST[:PORT] [--project P] [--point P ...] [--limit N] [--json]
      Evaluate a candidate policy against every stored image (and recorded deployment) of its project(s);
      print what would be denied, per enforcement point, with reasons. Exit 1 when something would be denied.
  Registry options: --registry-username U --registry-password P (else the container tools' auth files),
      --allow-http-registry (plain HTTP; default for loopback hosts), --allow-insecure-registry.`;

const registryOptions = {
  'registry-username': { type: 'string' },
  'registry-password': { type: 'string' },
  'allow-http-registry': { type: 'boolean' },
  'allow-insecure-registry': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

type RegistryValues = { 'registry-username'?: string | undefined; 'registry-password'?: string | undefined; 'allow-http-registry'?: boolean | undefined; 'allow-insecure-registry'?: boolean | undefined };

function client(registry: string, repository: string, values: RegistryValues): RegistryClient {
  const user = values['registry-username'];
  const credentials = user !== undefined ? { username: user, password: values['registry-password'] ?? '' } : findCredentials(registry, repository);
  return new RegistryClient(registry, { credentials, http: values['allow-http-registry'] ?? false, insecure: values['allow-insecure-registry'] ?? false, userAgent: 'portcullis-cli' });
}

/** An /api/v1 request; the registry's Basic challenge is answered by the client. */
async function api(c: RegistryClient, method: string, path: string, body?: { type: string; data: Buffer }): Promise<Response> {
  return c.request(method, path, { headers: { accept: 'application/json', ...(body ? { 'content-type': body.type } : {}) }, ...(body ? { body: body.data } : {}), scope: '' });
}

function json(res: Response): any {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The first error of an OCI error body, or the status. */
function errorText(res: Response): string {
  const e = json(res)?.errors?.[0];
  return e ? `${e.code}: ${e.message}` : `HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`;
}

type Io = { out: (s: string) => void; err: (s: string) => void };
const console_: Io = { out: (s) => console.log(s), err: (s) => console.error(s) };

export async function promoteMain(argv: string[], io: Io = console_): Promise<number> {
  return run(io, async () => {
    const { values, positionals } = parseArgs({ args: argv, options: { ...registryOptions, tag: { type: 'string' } }, allowPositionals: true, strict: true });
    if (values.help) return (io.out(remoteUsage), 0);
    if (positionals.length !== 2) throw new UsageError('promote takes SRC and DST');
    const src = parseImageRef(positionals[0]!);
    const dst = parseImageRef(positionals[1]!);
    if (src.registry !== dst.registry) throw new UsageError(`SRC and DST must be on the same registry (${src.registry}, ${dst.registry}); promotion copies inside one registry`);
    if (!src.tag && !src.digest) throw new UsageError('SRC names a tag or a digest');
    if (dst.digest) throw new UsageError('DST is a repository (and optionally :tag), not a digest');
    const body = { source: `${src.repository}${src.digest ? `@${src.digest}` : `:${src.tag}`}`, destination: `${dst.repository}${dst.tag ? `:${dst.tag}` : ''}`, ...(values.tag ? { tag: values.tag } : {}) };
    const res = await api(client(src.registry, dst.repository, values), 'POST', '/api/v1/promotions', { type: 'application/json', data: Buffer.from(JSON.stringify(body)) });
    const result = json(res);
    if (res.status === 201) {
      if (values.json) io.out(JSON.stringify(result, null, 2));
      else {
        io.out(`${dst.registry}/${result.destination.repository}@${result.digest}`);
        io.err(`Promoted ${src.registry}/${result.source.repository}@${result.digest} to ${result.destination.repository}${result.destination.tag ? `:${result.destination.tag}` : ''} (${result.copied.manifests} manifests, ${result.copied.blobsLinked} blobs linked, no bytes copied)${result.policy ? ` under policy ${result.policy.name} v${result.policy.version}` : ' (no policy applies)'}; attestation ${result.attestation}`);
        for (const w of result.warnings ?? []) io.err(`WARNING: ${w}`);
      }
      return 0;
    }
    const error = result?.errors?.[0];
    if (res.status === 403 && error?.detail?.denials) {
      if (values.json) io.out(JSON.stringify(result, null, 2));
      io.err(`DENIED: ${error.message}`);
      for (const r of error.detail.rules ?? []) io.err(`  ${r.rule} (${r.kind}): ${(r.facts ?? []).join('; ')}`);
      return 1;
    }
    throw new Error(`promotion failed: ${errorText(res)}`);
  });
}

export async function explainMain(argv: string[], io: Io = console_): Promise<number> {
  return run(io, async () => {
    const { values, positionals } = parseArgs({ args: argv, options: { ...registryOptions, point: { type: 'string', default: 'pull' } }, allowPositionals: true, strict: true });
    if (values.help) return (io.out(remoteUsage), 0);
    if (positionals.length !== 1) throw new UsageError('explain takes one IMAGE');
    if (!(ENFORCEMENT_POINTS as readonly string[]).includes(values.point)) throw new UsageError(`--point: one of ${ENFORCEMENT_POINTS.join(', ')}`);
    const ref = parseImageRef(positionals[0]!);
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const q = new URLSearchParams({ repository: ref.repository, reference, point: values.point });
    const res = await api(client(ref.registry, ref.repository, values), 'GET', `/api/v1/policy/explain?${q}`);
    if (res.status !== 200) throw new Error(`explain ${ref.repository}:${reference}: ${errorText(res)}`);
    const decision = json(res) as PolicyDecision;
    // imported here: cli.ts imports this module for its usage text
    const { formatDecision } = await import('./cli.ts');
    io.out(values.json ? JSON.stringify(decision, null, 2) : formatDecision(decision));
    return decision.allowed ? 0 : 1;
  });
}

export async function simulateMain(argv: string[], io: Io = console_): Promise<number> {
  return run(io, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...registryOptions, registry: { type: 'string' }, project: { type: 'string' }, point: { type: 'string', multiple: true }, limit: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) return (io.out(remoteUsage), 0);
    if (positionals.length !== 1) throw new UsageError('simulate takes one POLICY file');
    if (!values.registry) throw new UsageError('--registry HOST[:PORT] is required');
    for (const p of values.point ?? []) if (!(ENFORCEMENT_POINTS as readonly string[]).includes(p)) throw new UsageError(`--point: one of ${ENFORCEMENT_POINTS.join(', ')}`);
    const text = await readFile(positionals[0]!);
    const q = new URLSearchParams();
    if (values.project) q.set('project', values.project);
    for (const p of values.point ?? []) q.append('point', p);
    if (values.limit) q.set('limit', values.limit);
    const res = await api(client(values.registry, values.project ?? '', values), 'POST', `/api/v1/policy/simulate${q.size ? `?${q}` : ''}`, { type: 'application/yaml', data: text });
    if (res.status === 400 && json(res)?.errors?.[0]?.code === 'POLICY_INVALID') {
      for (const e of json(res).errors) io.err(`error: ${positionals[0]}: ${e.message}`);
      return 2;
    }
    if (res.status !== 200) throw new Error(`simulate: ${errorText(res)}`);
    const report = json(res) as SimulationReport;
    if (values.json) io.out(JSON.stringify(report, null, 2));
    else io.out(formatReport(report));
    return report.images.denied > 0 || report.workloads.wouldFail > 0 ? 1 : 0;
  });
}

/** The report for people: the summary, then each denied image and workload with its reasons. */
export function formatReport(r: SimulationReport): string {
  const lines = [`policy ${r.policy.name} v${r.policy.version} (${r.policy.project}) over ${r.scope.project ?? 'every project'}: ${r.images.evaluated} images evaluated (${r.images.skipped} other artifacts skipped) in ${r.durationMs} ms`, r.summary];
  for (const image of r.denied) {
    lines.push(`DENIED ${image.repository}@${image.digest}${image.tags.length ? ` (${image.tags.join(', ')})` : ''}`);
    for (const [point, d] of Object.entries(image.points)) for (const line of d.denials) lines.push(`  ${point}: ${line}`);
  }
  for (const w of r.workloads.items) lines.push(`WOULD FAIL ON RESTART ${w.cluster}/${w.namespace} ${w.workload.kind}/${w.workload.name} container ${w.container}: ${w.repository}@${w.digest}: ${w.denials.join('; ')}`);
  if (!r.workloads.recorded) lines.push('(no deployment records: running workloads were not evaluated)');
  if (r.truncated) lines.push('(the lists are truncated; counts are complete; see --limit)');
  return lines.join('\n');
}

async function run(io: Io, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`${(error as Error).message}\n\n${remoteUsage}`);
      return 2;
    }
    io.err(`error: ${(error as Error).message}`);
    return 2;
  }
}

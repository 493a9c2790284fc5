/**
 * `portcullis trace`: the traceability API from the command line (docs/traceability.md).
 *
 *   portcullis trace IMAGE | DIGEST --registry HOST     the provenance graph
 *   portcullis trace --commit SHA --registry HOST       images built from a commit, and where they run
 *   portcullis trace --vulnerability ID --registry HOST running workloads affected by a vulnerability
 *
 * Credentials as for `portcullis sign` (auth files of podman/skopeo/docker, or
 * --registry-username/--registry-password); the registry answers only what they may read.
 * Exit codes: 0 answered, 1 the registry refused or does not know the image, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { findCredentials, formatRef, parseImageRef, RegistryClient } from '../../cli/registry-client.ts';
import type { DeploymentsAnswer, DeploymentView, SourceView, TraceGraph } from './service.ts';

export const traceUsage = `  portcullis trace IMAGE|DIGEST [--registry HOST] [--json]
      The provenance graph: build sources (annotations, labels, verified SLSA provenance), base
      image and images built on it, signatures, SBOMs, findings, promotions, deployments.
      IMAGE is HOST/NAME:TAG or HOST/NAME@DIGEST; a bare DIGEST needs --registry.
  portcullis trace --commit SHA [--verified] --registry HOST [--json]
      Images built from a commit (full or abbreviated id) and where they run.
  portcullis trace --source URL [--verified] --registry HOST [--json]
      Images built from a source repository and where they run.
  portcullis trace --vulnerability ID --registry HOST [--json]
      Images with the vulnerability (CVE, GHSA, OSV id or alias) and the workloads running them.
  Options: --limit N, --registry-username U --registry-password P (else the container tools'
  auth files), --allow-http-registry, --allow-insecure-registry.`;

const options = {
  registry: { type: 'string' },
  commit: { type: 'string' },
  source: { type: 'string' },
  vulnerability: { type: 'string' },
  verified: { type: 'boolean' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  'registry-username': { type: 'string' },
  'registry-password': { type: 'string' },
  'allow-http-registry': { type: 'boolean' },
  'allow-insecure-registry': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

class UsageError extends Error {}

function errorText(body: Buffer): string {
  try {
    const j = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code: string; message: string }> };
    if (j.errors?.[0]) return `${j.errors[0].code}: ${j.errors[0].message}`;
  } catch {
    // not JSON
  }
  return body.toString('utf8').slice(0, 300);
}

/** Runs `portcullis trace ...`; returns the exit code. */
export async function traceMain(argv: string[], io: Io = { out: (s) => console.log(s), err: (s) => console.error(s) }): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n\nUsage:\n${traceUsage}`);
      return 2;
    }
    io.err(`portcullis trace: ${(error as Error).message}`);
    return 1;
  }
}

async function run(argv: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(`Usage:\n${traceUsage}`);
    return 0;
  }
  const queries = (['commit', 'source', 'vulnerability'] as const).filter((k) => values[k] !== undefined);
  if (queries.length + positionals.length !== 1) throw new UsageError('give one IMAGE or DIGEST, or one of --commit, --source, --vulnerability');
  if (values.limit !== undefined && !/^[1-9][0-9]{0,6}$/.test(values.limit)) throw new UsageError('--limit must be a positive integer');
  let host = values.registry;
  let repository = '';
  let digest: string | undefined;
  let reference: string | undefined;
  const target = positionals[0];
  if (target !== undefined) {
    if (DIGEST.test(target)) digest = target;
    else {
      let ref;
      try {
        ref = parseImageRef(target);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      if (host !== undefined && host !== ref.registry) throw new UsageError(`--registry ${host} and ${formatRef(ref)} name different registries`);
      host = ref.registry;
      repository = ref.repository;
      digest = ref.digest;
      reference = ref.tag ?? 'latest';
    }
  }
  if (host === undefined) throw new UsageError('--registry HOST is needed (or an IMAGE naming its registry)');
  const user = values['registry-username'];
  const credentials = user !== undefined ? { username: user, password: values['registry-password'] ?? '' } : findCredentials(host, repository);
  const client = new RegistryClient(host, { credentials, http: values['allow-http-registry'] ?? false, insecure: values['allow-insecure-registry'] ?? false, userAgent: 'portcullis-cli' });
  if (digest === undefined && reference !== undefined) {
    const m = await client.getManifest(repository, reference);
    if (!m) throw new Error(`${host}/${repository}:${reference}: no such manifest`);
    digest = m.digest;
  }
  const get = async (path: string): Promise<unknown> => {
    const res = await client.request('GET', path, { headers: { accept: 'application/json' }, scope: repository ? `repository:${repository}:pull` : '' });
    if (res.status !== 200) throw new Error(`${host}: ${res.status} ${errorText(res.body)}`);
    return JSON.parse(res.body.toString('utf8'));
  };
  if (digest !== undefined) {
    const graph = (await get(`/api/v1/trace/${digest}`)) as TraceGraph;
    io.out(values.json ? JSON.stringify(graph, null, 2) : formatGraph(graph));
    return 0;
  }
  const q = new URLSearchParams();
  const kind = queries[0]!;
  q.set(kind, values[kind]!);
  if (values.verified) {
    if (kind === 'vulnerability') throw new UsageError('--verified applies to --commit and --source');
    q.set('verified', 'true');
  }
  if (values.limit !== undefined) q.set('limit', values.limit);
  const answer = (await get(`/api/v1/trace/deployments?${q}`)) as DeploymentsAnswer;
  io.out(values.json ? JSON.stringify(answer, null, 2) : formatAnswer(answer));
  return 0;
}

function sourceLine(s: SourceView): string {
  const what = [s.sourceRepository ?? s.sourceUri ?? '(no repository)', s.commit ? `@ ${s.commit}` : '', s.builder ? `built by ${s.builder}` : ''].filter(Boolean).join(' ');
  const trust = s.verified ? 'verified provenance' : `${s.how}, a claim (unverified)`;
  return `${what} [${trust}${s.evidence ? `: ${s.evidence}` : ''}] in ${s.repository}`;
}

function deploymentLine(d: DeploymentView): string {
  return `${d.cluster}/${d.namespace} ${d.workloadKind}/${d.workloadName} container ${d.container}: ${d.image}${d.via ? ` (runs ${d.via})` : ''}, first seen ${d.firstSeen}, last seen ${d.lastSeen}`;
}

export function formatGraph(g: TraceGraph): string {
  const lines = [g.digest];
  const section = (title: string, items: string[]) => {
    if (items.length === 0) return;
    lines.push(`  ${title}:`);
    for (const i of items) lines.push(`    ${i}`);
  };
  section('images', g.images.map((i) => `${i.repository}${i.tags.length ? ` (tags ${i.tags.join(', ')})` : ''}, ${i.layers} layer(s), pushed ${i.pushedAt}`));
  section('build source', g.sources.map(sourceLine));
  section('base', g.bases.map((b) => (b.how === 'layers' ? `${b.baseRepository}@${b.digest} (its ${b.layers} layer(s) are the first of this image)` : `${b.baseName ?? ''}${b.digest ? `@${b.digest}` : ''} (annotation${b.baseRepository ? `, stored in ${b.baseRepository}` : ''})`)));
  section('built on it', g.derived.map((d) => `${d.repository}@${d.digest} (${d.how})`));
  section('indexes listing it', g.indexes.map((i) => `${i.repository}@${i.digest}`));
  section('manifests it lists', g.children.map((i) => `${i.repository}@${i.digest}`));
  section('signatures', g.signatures.map((s) => `${s.repository}: ${s.verdict}${s.signers.length ? `, signed by ${s.signers.join(', ')}` : ''}${s.attestations.length ? `, attested ${s.attestations.join(', ')}` : ''} (trust policy v${s.policyVersion}, ${s.verifiedAt})`));
  section('SBOMs', g.sboms.map((s) => `${s.repository}@${s.digest} ${s.artifactType}`));
  const f = g.findings;
  lines.push(`  findings: ${f.total} (critical ${f.bySeverity.critical}, high ${f.bySeverity.high}, medium ${f.bySeverity.medium}, low ${f.bySeverity.low}), ${f.fixable} fixable`);
  for (const t of f.top.slice(0, 10)) lines.push(`    ${t.severity} ${t.id} ${t.package} ${t.installedVersion}${t.fixAvailable ? ' (fix available)' : ''}`);
  section('promotions', g.promotions.map((p) => `${p.at} ${p.sourceRepository} -> ${p.destinationRepository}${p.destinationTag ? `:${p.destinationTag}` : ''} ${p.decision}${p.actor ? ` by ${p.actor}` : ''}`));
  section('deployments', g.deployments.map(deploymentLine));
  if (g.deployments.length === 0) lines.push('  deployments: none recorded');
  return lines.join('\n');
}

export function formatAnswer(a: DeploymentsAnswer): string {
  const lines = [`images (${a.images.length}):`];
  for (const i of a.images) {
    lines.push(`  ${i.repository}@${i.digest}`);
    for (const s of i.sources ?? []) lines.push(`    ${sourceLine(s)}`);
    for (const f of i.findings ?? []) lines.push(`    ${f.severity} ${f.id} ${f.package} ${f.installedVersion}${f.fixAvailable ? ' (fix available)' : ''}`);
  }
  lines.push(`deployments (${a.deployments.length}):`);
  for (const d of a.deployments) lines.push(`  ${deploymentLine(d)}`);
  if (a.truncated) lines.push('(more results: raise --limit or narrow the query)');
  return lines.join('\n');
}

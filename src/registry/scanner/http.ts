/**
 * The scanner's part of the management API (/api/v1):
 *
 * | route | answer | permission needed |
 * |---|---|---|
 * | `GET /api/v1/vulndb` | database status: sources, records, age, stale | authenticated (`catalog`) |
 * | `GET /api/v1/scanner` | queue, result counts by status, this process's counters | authenticated (`catalog`) |
 * | `GET /api/v1/repositories/<name>/scans/<digest or tag>` | report (JSON) | `pull` on the repository |
 * | `GET .../scans/<ref>/status` | status only | `pull` |
 * | `GET .../scans/<ref>/sarif` | SARIF 2.1.0 | `pull` |
 * | `GET .../scans/<ref>/sbom?format=cyclonedx\|spdx` | SBOM download | `pull` |
 * | `POST .../scans/<ref>` | queue a full re-scan | `push` |
 * | `GET /api/v1/exemptions?project=P[&repository=R&vulnerability=V&all=true&expiringWithinDays=N]` | exemptions | `project.read` |
 * | `POST /api/v1/exemptions` | create | `project.update` on its project |
 * | `GET /api/v1/exemptions/<id>` | one | `project.read` |
 * | `DELETE /api/v1/exemptions/<id>` | revoke (kept for the record) | `project.update` |
 * | `GET /api/v1/vex?project=P` | OpenVEX documents of the project (uploaded and attached) | `project.read` |
 * | `POST /api/v1/vex?project=P[&repository=R]` | upload an OpenVEX document | `project.update` |
 * | `DELETE /api/v1/vex/<id>` | remove one | `project.update` |
 *
 * These are registered here and authorised through {@link ScannerAuthorizer}, the same kind of
 * hook the audit API uses; build-app wires it to access control when `auth.mode` is `token`.
 * Their entries in the management API's OpenAPI document are in openapi.ts.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import { isIndexMediaType } from '../../oci/media-types.ts';
import { isRepositoryName, isTag, projectOf } from '../../oci/reference.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import { SCANNER_VERSION } from './analyze.ts';
import { ExemptionError, type ExemptionStore, exemptionInputSchema, exemptionView, newExemption } from './exemptions.ts';
import { classifyManifest } from './image-source.ts';
import { sarif } from './report.ts';
import { parseOpenVex, VexError, vexView } from './vex.ts';
import { sbomMediaType, type SbomFormat } from './sbom.ts';
import { type ScanService, withoutSecrets } from './service.ts';

export type ScannerAction = 'catalog' | 'pull' | 'push' | 'project.read' | 'project.update';

export interface ScannerPermission {
  action: ScannerAction;
  /** The repository (repository actions) or project (project actions) acted on. */
  repository?: string;
  project?: string;
}

/**
 * Decides whether the request may do `need`; throws a RegistryError (UNAUTHORIZED with a
 * challenge, or DENIED) to refuse. Returns who acts (for audit fields) when known.
 */
export type ScannerAuthorizer = (request: FastifyRequest, need: ScannerPermission) => Promise<RequestOrigin['actor'] | undefined>;

export interface ScannerHttpDeps {
  scanner: ScanService;
  exemptions: ExemptionStore;
  meta: MetadataStore;
  events: EventBus;
  /** Without one, every request is allowed (auth.mode none, as for the registry itself). */
  authorize?: ScannerAuthorizer | undefined;
}

const SCAN_PATH = /^(.+)\/scans\/([^/]+)(?:\/(status|sarif|sbom))?$/;

function origin(request: FastifyRequest, actor: RequestOrigin['actor'] | undefined): RequestOrigin {
  return { clientAddress: request.ip, userAgent: request.headers['user-agent'], requestId: String(request.id), actor: actor ?? { kind: 'anonymous' } };
}

export async function registerScannerRoutes(app: FastifyInstance, deps: ScannerHttpDeps): Promise<void> {
  const { scanner, exemptions, meta, events } = deps;
  const authorize = async (request: FastifyRequest, need: ScannerPermission) => (deps.authorize ? deps.authorize(request, need) : undefined);
  const noStore = (reply: FastifyReply) => reply.header('Cache-Control', 'no-store');
  await app.register(async (scope) => routes(scope));

  async function routes(app: FastifyInstance): Promise<void> {
    app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_request, body, done) => {
      try {
        done(null, body === '' ? undefined : JSON.parse(body as string));
      } catch {
        done(new RegistryError('INVALID_REQUEST', 'the body is not valid JSON'), undefined);
      }
    });

    app.get('/api/v1/vulndb', async (request, reply) => {
      await authorize(request, { action: 'catalog' });
      noStore(reply);
      const status = scanner.vulns.status(scanner.settings.maxAgeSeconds);
      // Any authenticated caller reads this: a URL source's user info and query (tokens) are not shown.
      const sources = status.sources.map((src) => (src.kind === 'url' ? { ...src, source: withoutSecrets(src.source) } : src));
      return { ...status, sources, maxAgeSeconds: scanner.settings.maxAgeSeconds, scannerVersion: SCANNER_VERSION, queue: { pending: await scanner.pendingJobs() } };
    });

    app.get('/api/v1/scanner', async (request, reply) => {
      await authorize(request, { action: 'catalog' });
      noStore(reply);
      return { version: SCANNER_VERSION, queue: { pending: await scanner.pendingJobs(), runningHere: scanner.worker.active }, results: await scanner.resultCounts(), stats: scanner.stats };
    });

    /** Resolves `<ref>` (digest or tag) in `repository` to a manifest digest and media type. */
    const resolve = async (repository: string, reference: string): Promise<{ digest: string; mediaType: string; content: Buffer }> => {
      const digest = isDigest(reference) ? reference : isTag(reference) ? await meta.resolveTag(repository, reference) : undefined;
      const record = digest ? await meta.getManifest(repository, digest) : undefined;
      if (!record) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in repository ${repository}`);
      return { digest: record.digest, mediaType: record.mediaType, content: record.content };
    };

    const scanRoute = async (request: FastifyRequest, reply: FastifyReply) => {
      const tail = (request.params as { '*': string })['*'];
      const match = SCAN_PATH.exec(tail);
      if (!match || !isRepositoryName(match[1]!)) throw new RegistryError('NOT_FOUND', `no endpoint at ${request.method} /api/v1/repositories/${tail.slice(0, 200)}`);
      const [, repository, reference, view] = match as unknown as [string, string, string, string | undefined];
      const post = request.method === 'POST';
      if (post && view !== undefined) throw new RegistryError('METHOD_NOT_ALLOWED', `${request.method} is not allowed here`);
      const actor = await authorize(request, { action: post ? 'push' : 'pull', repository });
      const manifest = await resolve(repository, decodeURIComponent(reference));
      noStore(reply);
      if (post) {
        await scanner.rescan(repository, manifest.digest, manifest.mediaType, origin(request, actor));
        return reply.code(202).send({ repository, digest: manifest.digest, status: 'queued' });
      }
      if (isIndexMediaType(manifest.mediaType)) {
        const kind = classifyManifest(manifest.content);
        const children = kind.kind === 'index' ? kind.manifests : [];
        const manifests = [];
        for (const child of children) {
          const r = await scanner.report(repository, child.digest);
          manifests.push({ digest: child.digest, platform: child.platform, status: r?.status ?? 'not-scanned', ...(r ? { summary: r.summary, reason: r.reason } : {}) });
        }
        return { repository, digest: manifest.digest, mediaType: manifest.mediaType, manifests };
      }
      const report = await scanner.report(repository, manifest.digest);
      if (!report) throw new RegistryError('MANIFEST_UNKNOWN', `${manifest.digest} has not been queued for scanning (not an image?)`);
      switch (view) {
        case undefined:
          return report;
        case 'status':
          return { repository, digest: report.digest, status: report.status, reason: report.reason, scannedAt: report.scannedAt, summary: report.summary, database: report.database, warnings: report.warnings };
        case 'sarif':
          return reply.type('application/sarif+json').send(sarif(report, SCANNER_VERSION));
        case 'sbom': {
          const format = ((request.query as Record<string, string>).format ?? 'cyclonedx') as SbomFormat;
          if (format !== 'cyclonedx' && format !== 'spdx') throw new RegistryError('INVALID_REQUEST', 'format must be cyclonedx or spdx');
          const bytes = await scanner.sbom(repository, manifest.digest, format);
          if (!bytes) throw new RegistryError('MANIFEST_UNKNOWN', `${manifest.digest} has no completed scan yet (status ${report.status})`);
          const name = `${repository.replaceAll('/', '_')}_${manifest.digest.replace(':', '-').slice(0, 19)}.${format === 'cyclonedx' ? 'cdx' : 'spdx'}.json`;
          return reply.type(sbomMediaType(format)).header('Content-Disposition', `attachment; filename="${name}"`).send(bytes);
        }
      }
      return undefined;
    };
    app.get('/api/v1/repositories/*', scanRoute);
    app.post('/api/v1/repositories/*', scanRoute);

    app.get('/api/v1/exemptions', async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      if (!q.project) throw new RegistryError('INVALID_REQUEST', 'query: project is required');
      await authorize(request, { action: 'project.read', project: q.project });
      const days = q.expiringWithinDays !== undefined ? Number(q.expiringWithinDays) : undefined;
      if (days !== undefined && !(days >= 0)) throw new RegistryError('INVALID_REQUEST', 'expiringWithinDays must be a non-negative number');
      const now = Date.now();
      const list = await exemptions.list(
        {
          project: q.project,
          ...(q.repository ? { repository: q.repository } : {}),
          ...(q.vulnerability ? { vulnerability: q.vulnerability } : {}),
          all: q.all === 'true',
          ...(days !== undefined ? { expiringBefore: now + days * 86_400_000 } : {}),
        },
        now,
      );
      noStore(reply);
      return { exemptions: list.map(exemptionView) };
    });

    app.post('/api/v1/exemptions', async (request, reply) => {
      const parsed = exemptionInputSchema.safeParse(request.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new RegistryError('INVALID_REQUEST', `body${issue.path.length > 0 ? `.${issue.path.join('.')}` : ''}: ${issue.message}`);
      }
      const project = parsed.data.project ?? projectOf(parsed.data.repository!);
      const actor = await authorize(request, { action: 'project.update', project });
      let exemption;
      try {
        exemption = newExemption(parsed.data, actor?.name ?? actor?.kind, Date.now(), scanner.settings.exemptions.maxDays * 86_400_000);
      } catch (error) {
        if (error instanceof ExemptionError) throw new RegistryError('INVALID_REQUEST', error.message);
        throw error;
      }
      await exemptions.create(exemption);
      const view = exemptionView(exemption);
      events.publish({ type: 'scan.exemption.created', at: new Date(), origin: origin(request, actor), ...(exemption.repository ? { repository: exemption.repository } : {}), exemption: view });
      noStore(reply);
      return reply.code(201).send(view);
    });

    const byId = async (request: FastifyRequest, action: ScannerAction) => {
      const { id } = request.params as { id: string };
      const exemption = await exemptions.get(id);
      // Unknown and not-yours look the same to a caller without project.read... after authorisation.
      if (!exemption) {
        await authorize(request, { action: 'catalog' });
        throw new RegistryError('NOT_FOUND', `no exemption ${id.slice(0, 64)}`);
      }
      const actor = await authorize(request, { action, project: exemption.project });
      return { exemption, actor };
    };
    app.get('/api/v1/exemptions/:id', async (request, reply) => {
      const { exemption } = await byId(request, 'project.read');
      noStore(reply);
      return exemptionView(exemption);
    });
    app.get('/api/v1/vex', async (request, reply) => {
      const { project } = request.query as Record<string, string | undefined>;
      if (!project) throw new RegistryError('INVALID_REQUEST', 'query: project is required');
      await authorize(request, { action: 'project.read', project });
      noStore(reply);
      return { documents: ((await scanner.vex?.list(project)) ?? []).map(vexView) };
    });

    app.post('/api/v1/vex', async (request, reply) => {
      const { project, repository } = request.query as Record<string, string | undefined>;
      if (!project) throw new RegistryError('INVALID_REQUEST', 'query: project is required');
      if (repository !== undefined && (!isRepositoryName(repository) || projectOf(repository) !== project)) throw new RegistryError('INVALID_REQUEST', `repository must be a repository of project ${project}`);
      const actor = await authorize(request, { action: 'project.update', project });
      if (!scanner.vex) throw new RegistryError('UNSUPPORTED', 'OpenVEX documents are not kept by this registry');
      let document;
      try {
        document = parseOpenVex(JSON.stringify(request.body ?? null));
      } catch (error) {
        if (error instanceof VexError) throw new RegistryError('INVALID_REQUEST', `OpenVEX: ${error.message}`);
        throw error;
      }
      const record = { id: randomUUID(), project, repository, source: 'upload' as const, document, createdAt: Date.now(), createdBy: actor?.name ?? actor?.kind };
      await scanner.vex.put(record);
      noStore(reply);
      return reply.code(201).send(vexView(record));
    });

    app.delete('/api/v1/vex/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const record = await scanner.vex?.get(id);
      if (!record) {
        await authorize(request, { action: 'catalog' });
        throw new RegistryError('NOT_FOUND', `no OpenVEX document ${id.slice(0, 80)}`);
      }
      await authorize(request, { action: 'project.update', project: record.project });
      await scanner.vex!.delete(id);
      noStore(reply);
      return reply.code(204).send();
    });

    app.delete('/api/v1/exemptions/:id', async (request, reply) => {
      const { exemption, actor } = await byId(request, 'project.update');
      const now = Date.now();
      if (!(await exemptions.revoke(exemption.id, actor?.name ?? actor?.kind, now))) throw new RegistryError('CONFLICT', 'the exemption is already revoked');
      const view = exemptionView({ ...exemption, revokedAt: now, ...(actor?.name ? { revokedBy: actor.name } : {}) });
      events.publish({ type: 'scan.exemption.revoked', at: new Date(now), origin: origin(request, actor), ...(exemption.repository ? { repository: exemption.repository } : {}), exemption: view });
      noStore(reply);
      return view;
    });
  }
}

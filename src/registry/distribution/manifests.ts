import type { Readable } from 'node:stream';
import { digestOf, isDigest, parseDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import { type ParsedManifest, parseManifest } from '../../oci/manifest.ts';
import { isNonDistributable } from '../../oci/media-types.ts';
import { isTag } from '../../oci/reference.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import { ConcurrentDeletionError, type ManifestRecord, type MetadataStore } from '../storage/ports.ts';
import type { Gates } from './gates.ts';

export interface ManifestOptions {
  maxBytes: number;
  deleteEnabled: boolean;
}

/** A reference is a digest or a tag; anything else is refused. */
export function parseReference(reference: string): { digest: string; tag: undefined } | { digest: undefined; tag: string } {
  if (reference.includes(':')) return { digest: parseDigest(reference).digest, tag: undefined };
  if (!isTag(reference)) throw new RegistryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(reference.slice(0, 200))}: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`);
  return { digest: undefined, tag: reference };
}

/** Manifests: validation, storage of the exact bytes, tag moves, referrers, deletion. */
export class ManifestService {
  readonly #meta: MetadataStore;
  readonly #events: EventBus;
  readonly #gates: Gates;
  readonly #options: ManifestOptions;

  constructor(deps: { meta: MetadataStore; events: EventBus; gates: Gates }, options: ManifestOptions) {
    this.#meta = deps.meta;
    this.#events = deps.events;
    this.#gates = deps.gates;
    this.#options = options;
  }

  /** Reads a manifest body up to the size limit; never buffers more than the limit. */
  async readBody(body: Readable, declaredLength: number | undefined): Promise<Buffer> {
    const limit = this.#options.maxBytes;
    if (declaredLength !== undefined && declaredLength > limit) {
      await discardBounded(body, oversizeDrainBytes);
      throw new RegistryError('MANIFEST_TOO_LARGE', `manifest is ${declaredLength} bytes; the limit is ${limit}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        await discardBounded(body, oversizeDrainBytes);
        throw new RegistryError('MANIFEST_TOO_LARGE', `manifest exceeds the limit of ${limit} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total);
  }

  async put(repository: string, reference: string, content: Buffer, contentType: string | undefined, origin: RequestOrigin): Promise<{ digest: string; subject: string | undefined }> {
    const ref = parseReference(reference);
    const manifest = parseManifest(content, contentType);
    const digest = ref.digest ? digestOf(content, parseDigest(ref.digest).algorithm) : digestOf(content);
    if (ref.digest && digest !== ref.digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest content has digest ${digest}, not ${ref.digest}`, { detail: { expected: ref.digest, actual: digest } });
    }
    await this.#runPushGates({ repository, reference, tag: ref.tag, digest, manifest, content, origin });
    const blobs = [...(manifest.config ? [manifest.config] : []), ...manifest.layers].filter((d) => !isNonDistributable(d.mediaType)).map((d) => d.digest);
    const children = manifest.manifests.map((d) => d.digest);
    let result;
    try {
      result = await this.#meta.putManifest({
        repository,
        digest,
        mediaType: manifest.mediaType,
        artifactType: manifest.artifactType,
        content,
        subject: manifest.subject?.digest,
        annotations: manifest.annotations,
        blobs,
        children,
        tag: ref.tag,
      });
    } catch (error) {
      if (error instanceof ConcurrentDeletionError) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `${error.digest} was deleted while the manifest was pushed`, { detail: { digest: error.digest } });
      throw error;
    }
    if (!result.ok) {
      if (result.missingBlobs.length > 0) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${result.missingBlobs[0]} is not in repository ${repository}`, { detail: { missing: result.missingBlobs } });
      }
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `child manifest ${result.missingChildren[0]} is not in repository ${repository}`, { detail: { missing: result.missingChildren } });
    }
    this.#events.publish({
      type: 'manifest.pushed',
      at: new Date(),
      origin,
      repository,
      digest,
      mediaType: manifest.mediaType,
      artifactType: manifest.artifactType,
      subject: manifest.subject?.digest,
      size: content.length,
      created: result.created,
      tag: ref.tag,
      previousTagTarget: result.previousTagTarget,
    });
    return { digest, subject: manifest.subject?.digest };
  }

  async #runPushGates(request: Parameters<Gates['manifestPush'][number]>[0]): Promise<void> {
    for (const gate of this.#gates.manifestPush) await denyOnError(() => gate(request));
  }

  /** Resolves and returns a manifest. @throws MANIFEST_UNKNOWN */
  async get(repository: string, reference: string, accept: string | undefined, origin: RequestOrigin, publish: boolean): Promise<ManifestRecord> {
    const ref = parseReference(reference);
    const record = ref.tag === undefined ? await this.#meta.getManifest(repository, ref.digest) : await this.#meta.getTaggedManifest(repository, ref.tag);
    if (!record) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in repository ${repository}`, { detail: { name: repository, reference } });
    // By digest the content is fixed, so it is served whatever the client accepts; by tag the
    // client must accept the stored type (there is no conversion between formats).
    if (ref.tag && !acceptable(accept, record.mediaType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is a ${record.mediaType}, which the request's Accept header excludes`, { detail: { mediaType: record.mediaType } });
    }
    for (const gate of this.#gates.manifestPull) {
      await denyOnError(() => gate({ repository, digest: record.digest, tag: ref.tag, mediaType: record.mediaType, record, origin }));
    }
    if (publish) this.#events.publish({ type: 'manifest.pulled', at: new Date(), origin, repository, digest: record.digest, mediaType: record.mediaType, tag: ref.tag });
    return record;
  }

  async delete(repository: string, reference: string, origin: RequestOrigin): Promise<void> {
    if (!this.#options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletion is disabled on this registry');
    const ref = parseReference(reference);
    if (ref.tag !== undefined) {
      const target = await this.#meta.resolveTag(repository, ref.tag);
      if (!target || !(await this.#meta.deleteTag(repository, ref.tag))) throw new RegistryError('MANIFEST_UNKNOWN', `tag ${ref.tag} is not in repository ${repository}`);
      this.#events.publish({ type: 'tag.deleted', at: new Date(), origin, repository, tag: ref.tag, digest: target });
      return;
    }
    const result = await this.#meta.deleteManifest(repository, ref.digest);
    if (result.outcome !== 'deleted') {
      if (result.outcome === 'unknown') throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${ref.digest} is not in repository ${repository}`);
      throw new RegistryError('REFERENCED', `manifest ${ref.digest} is listed by an index in ${repository}; delete the index first`);
    }
    this.#events.publish({ type: 'manifest.deleted', at: new Date(), origin, repository, digest: ref.digest, tags: result.tags });
  }
}

/** Runs a gate; a RegistryError passes through, any other failure denies (deny on error). */
async function denyOnError(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('DENIED', 'a policy gate failed; denied', { cause: error });
  }
}

function acceptable(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const types = accept.split(',').map((part) => part.split(';', 1)[0]!.trim().toLowerCase());
  // Only refuse when the client clearly listed manifest types and the stored one is not among them.
  if (types.some((t) => t === '*/*' || t === 'application/*' || t === mediaType)) return true;
  return !types.some((t) => t.includes('manifest') || t.includes('index'));
}

export type { ParsedManifest };
export { isDigest };

/**
 * How much of an oversized body is read and thrown away before answering. Closing a socket with
 * unread bytes makes the kernel send a reset, which discards the 413 the client has not yet read;
 * draining a bounded amount lets ordinary clients see the error, and the cap keeps a hostile
 * client from holding the connection for long.
 */
const oversizeDrainBytes = 32 * 1024 * 1024;

/** Reads and discards up to `maxBytes` more of `body`; the error handler closes what is left. */
async function discardBounded(body: Readable, maxBytes: number): Promise<void> {
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > maxBytes) return;
  }
}

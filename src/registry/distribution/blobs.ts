import type { Readable } from 'node:stream';
import { parseDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import type { EventBus, RequestOrigin } from '../events/bus.ts';
import { type BlobStore, type ByteRange, type MetadataStore, NotFoundError } from '../storage/ports.ts';
import type { BlobFileBody } from './blob-sender.ts';
import { parseRequestRange } from './content-range.ts';

/** A GET's body: an open blob file (stores with random access) or a stream; none for HEAD. */
export type BlobBody = BlobFileBody | { stream: Readable };

export type BlobResponse =
  | { kind: 'full'; digest: string; size: number; body: BlobBody | undefined }
  | { kind: 'partial'; digest: string; size: number; range: ByteRange; body: BlobBody | undefined }
  | { kind: 'unsatisfiable'; digest: string; size: number };

/** Releases a body that will not be sent (a 304). */
export async function discardBlobBody(body: BlobBody | undefined): Promise<void> {
  if (!body) return;
  if ('file' in body) await body.file.close();
  else body.stream.destroy();
}

/**
 * Blob reads and deletes, scoped to a repository: a digest is readable only through a
 * repository it was pushed or mounted into.
 */
export class BlobService {
  readonly #blobs: BlobStore;
  readonly #meta: MetadataStore;
  readonly #events: EventBus;
  readonly #options: { deleteEnabled: boolean; blobGraceMs: number };

  constructor(deps: { blobs: BlobStore; meta: MetadataStore; events: EventBus }, options: { deleteEnabled: boolean; blobGraceMs: number }) {
    this.#blobs = deps.blobs;
    this.#meta = deps.meta;
    this.#events = deps.events;
    this.#options = options;
  }

  /** GET (withBody) or HEAD of a blob, honouring a single byte `Range`. */
  async fetch(repository: string, digestParam: string, rangeHeader: string | undefined, withBody: boolean, origin: RequestOrigin): Promise<BlobResponse> {
    const { digest } = parseDigest(digestParam);
    const linked = await this.#meta.linkedBlob(repository, digest);
    if (!linked) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${repository}`, { detail: { digest } });
    // A client checking a blob (HEAD, as pushes do) or reading an unreferenced one is likely about
    // to reference it: keep it from the collector for the grace period, even if the manifest that
    // references it now is deleted meanwhile. The collector may have marked it since the lookup
    // above; then it is absent, and saying so is what makes the client upload it again.
    if ((!withBody || !linked.referenced) && !(await this.#meta.protectBlob(digest, this.#options.blobGraceMs))) {
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${repository}`, { detail: { digest } });
    }
    const range = parseRequestRange(rangeHeader, linked.size);
    if (range === 'unsatisfiable') return { kind: 'unsatisfiable', digest, size: linked.size };
    let body: BlobBody | undefined;
    if (withBody) {
      try {
        body = this.#blobs.open
          ? { file: await this.#blobs.open(digest), start: range?.start ?? 0, end: range?.end ?? linked.size - 1 }
          : { stream: await this.#blobs.read(digest, range) };
      } catch (error) {
        if (error instanceof NotFoundError) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is missing from storage`, { cause: error });
        throw error;
      }
      this.#events.publish({ type: 'blob.pulled', at: new Date(), origin, repository, digest, size: linked.size, range: range !== undefined });
    }
    return range ? { kind: 'partial', digest, size: linked.size, range, body } : { kind: 'full', digest, size: linked.size, body };
  }

  async delete(repository: string, digestParam: string, origin: RequestOrigin): Promise<void> {
    if (!this.#options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletion is disabled on this registry');
    const { digest } = parseDigest(digestParam);
    const outcome = await this.#meta.unlinkBlob(repository, digest);
    if (outcome === 'unknown') throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${repository}`, { detail: { digest } });
    if (outcome === 'referenced') throw new RegistryError('REFERENCED', `blob ${digest} is referenced by a manifest in ${repository}; delete the manifest first`);
    this.#events.publish({ type: 'blob.deleted', at: new Date(), origin, repository, digest });
  }

  /** Cross-repository mount; false when `from` does not hold the blob (the caller falls back to an upload). */
  async mount(repository: string, digestParam: string, from: string | undefined, origin: RequestOrigin): Promise<{ digest: string } | undefined> {
    const { digest } = parseDigest(digestParam);
    if (!(await this.#meta.mountBlob(repository, digest, from, this.#options.blobGraceMs))) return undefined;
    this.#events.publish({ type: 'blob.mounted', at: new Date(), origin, repository, digest, from });
    return { digest };
  }
}

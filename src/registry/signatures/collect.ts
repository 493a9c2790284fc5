/**
 * Finding an image's signatures and attestations in the registry's own storage, the ways clients
 * attach them: OCI 1.1 referrers (Notation, sigstore bundles, cosign `--registry-referrers-mode`),
 * cosign's tag scheme (`sha256-<hex>.sig` / `.att`), and the referrers tag-schema fallback index
 * (`sha256-<hex>`, written by clients that found no Referrers API). Each candidate goes through
 * `recognize` (bounded reads, digests checked); what it rejects is kept with the reason, so the API
 * can say why an artifact did not count. Nothing here decides trust: the signed payloads do.
 */
import { isIndexMediaType } from '../../oci/media-types.ts';
import type { BlobStore, MetadataStore } from '../storage/ports.ts';
import { DSSE_MEDIA_TYPE } from './intoto.ts';
import { COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTATION_ARTIFACT_TYPE } from './notation.ts';
import { verifyImage, type CompiledPolicy, type ImageVerification, type VerifyImageOptions } from './policy.ts';
import { recognize, type FetchBlob, type RecognizedArtifact } from './recognize.ts';
import { cosignTag } from './signing.ts';
import { isSigstoreBundleMediaType } from './sigstore.ts';
import { SIMPLESIGNING_MEDIA_TYPE } from './simplesigning.ts';
import { DEFAULT_LIMITS, SignatureFormatError, errorMessage, type SignatureLimits } from './util.ts';

/** cosign's artifact type for simple-signing signatures attached as OCI 1.1 referrers. */
export const COSIGN_SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';

export type ArtifactSource = 'referrer' | 'tag' | 'referrers-tag-index';

export interface FoundArtifact {
  digest: string;
  source: ArtifactSource;
  tag?: string;
  kind: RecognizedArtifact['kind'];
}

export interface RejectedArtifact {
  digest: string;
  source: ArtifactSource;
  tag?: string;
  reason: string;
}

export interface Collected {
  artifacts: RecognizedArtifact[];
  found: FoundArtifact[];
  rejected: RejectedArtifact[];
  /** More candidates than `maxArtifacts`: the rest were not read. */
  truncated: boolean;
}

/** A signature tag of the cosign scheme, and the digest it claims (a claim only). */
export const COSIGN_TAG = /^sha256-([a-f0-9]{64})\.(sig|att)$/;
/** The referrers tag-schema fallback (OCI 1.1): `<alg>-<hex>`. */
export const REFERRERS_TAG = /^sha256-([a-f0-9]{64})$/;

const SIGNATURE_LAYER_TYPES = new Set([SIMPLESIGNING_MEDIA_TYPE, DSSE_MEDIA_TYPE, JWS_MEDIA_TYPE, COSE_MEDIA_TYPE]);
const SIGNATURE_ARTIFACT_TYPES = new Set([NOTATION_ARTIFACT_TYPE, COSIGN_SIGNATURE_ARTIFACT_TYPE, 'application/vnd.dev.cosign.artifact.att.v1+json']);

function isSignatureLayerType(mediaType: unknown): boolean {
  return typeof mediaType === 'string' && (SIGNATURE_LAYER_TYPES.has(mediaType) || isSigstoreBundleMediaType(mediaType));
}

/**
 * Whether a manifest is a signature or attestation artifact by its media types alone: every layer
 * is a signature payload or envelope (so no runtime can run it), or it is a referrers index whose
 * every entry is such an artifact. Used by the pull gate, which keeps these pullable so that
 * clients can verify; anything else that is not verified stays denied.
 */
export function isSignatureArtifactManifest(content: Uint8Array, limits: SignatureLimits = DEFAULT_LIMITS): boolean {
  if (content.byteLength > limits.manifestBytes) return false;
  let m: unknown;
  try {
    m = JSON.parse(Buffer.from(content).toString('utf8'));
  } catch {
    return false;
  }
  if (!m || typeof m !== 'object') return false;
  const manifest = m as Record<string, unknown>;
  const layers = manifest['layers'];
  if (Array.isArray(layers)) {
    return layers.length > 0 && layers.length <= limits.layers && layers.every((l) => !!l && typeof l === 'object' && isSignatureLayerType((l as Record<string, unknown>)['mediaType']));
  }
  const entries = manifest['manifests'];
  if (typeof manifest['mediaType'] === 'string' && isIndexMediaType(manifest['mediaType']) && Array.isArray(entries)) {
    return (
      entries.length > 0 &&
      entries.every((e) => {
        const at = !!e && typeof e === 'object' ? (e as Record<string, unknown>)['artifactType'] : undefined;
        return typeof at === 'string' && (SIGNATURE_ARTIFACT_TYPES.has(at) || isSigstoreBundleMediaType(at));
      })
    );
  }
  return false;
}

/** Blobs of `repository`, bounded: only blobs linked to it, at most `maxBytes`. */
export function repositoryBlobReader(meta: MetadataStore, blobs: BlobStore, repository: string): FetchBlob {
  return async (digest, maxBytes) => {
    const linked = await meta.linkedBlob(repository, digest);
    if (!linked) throw new SignatureFormatError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${repository}`);
    if (linked.size > maxBytes) throw new SignatureFormatError('TOO_LARGE', `blob ${digest}: ${linked.size} bytes exceeds the limit of ${maxBytes}`);
    return readBlobBounded(await blobs.read(digest), digest, maxBytes);
  };
}

/** Reads a blob stream, at most `maxBytes` (then the stream is destroyed and TOO_LARGE thrown). */
export async function readBlobBounded(stream: NodeJS.ReadableStream & { destroy(): void }, digest: string, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      stream.destroy();
      throw new SignatureFormatError('TOO_LARGE', `blob ${digest} exceeds the limit of ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Where artifacts are read from: the registry's own stores (`storeReader`), or a registry over HTTP
 * (the CLI's `portcullis verify`). All reads are of one repository.
 */
export interface ArtifactReader {
  resolveTag(tag: string): Promise<string | undefined>;
  /** Digests of the manifests whose `subject` is `digest`. */
  referrers(digest: string): Promise<string[]>;
  manifest(digest: string): Promise<{ mediaType: string; content: Buffer } | undefined>;
  fetchBlob: FetchBlob;
}

/** An ArtifactReader over the registry's stores, for one repository. */
export function storeReader(meta: MetadataStore, blobs: BlobStore, repository: string): ArtifactReader {
  return {
    resolveTag: (tag) => meta.resolveTag(repository, tag),
    referrers: async (digest) => (await meta.listReferrers(repository, digest)).map((r) => r.digest),
    manifest: async (digest) => {
      const r = await meta.getManifest(repository, digest);
      return r && { mediaType: r.mediaType, content: r.content };
    },
    fetchBlob: repositoryBlobReader(meta, blobs, repository),
  };
}

/** Every signature and attestation artifact attached to `digest`. */
export async function collectArtifacts(reader: ArtifactReader, digest: string, options: { maxArtifacts: number; limits?: SignatureLimits }): Promise<Collected> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const candidates: { digest: string; source: ArtifactSource; tag?: string }[] = [];
  const seen = new Set<string>();
  const add = (d: string, source: ArtifactSource, tag?: string) => {
    if (seen.has(d)) return;
    seen.add(d);
    candidates.push(tag ? { digest: d, source, tag } : { digest: d, source });
  };
  // cosign tag scheme first: the tag is what cosign and skopeo look up
  if (digest.startsWith('sha256:')) {
    for (const suffix of ['sig', 'att'] as const) {
      const tag = cosignTag(digest, suffix);
      const d = await reader.resolveTag(tag);
      if (d) add(d, 'tag', tag);
    }
  }
  for (const d of await reader.referrers(digest)) add(d, 'referrer');
  // the referrers fallback index of clients that found no Referrers API
  const fallbackTag = digest.replace(':', '-');
  if (REFERRERS_TAG.test(fallbackTag)) {
    const indexDigest = await reader.resolveTag(fallbackTag);
    const index = indexDigest ? await reader.manifest(indexDigest) : undefined;
    if (index && isIndexMediaType(index.mediaType) && index.content.length <= limits.manifestBytes) {
      try {
        const parsed = JSON.parse(index.content.toString('utf8')) as { manifests?: { digest?: unknown }[] };
        for (const e of parsed.manifests ?? []) if (typeof e?.digest === 'string') add(e.digest, 'referrers-tag-index', fallbackTag);
      } catch {
        // not JSON: nothing listed
      }
    }
  }
  const out: Collected = { artifacts: [], found: [], rejected: [], truncated: candidates.length > options.maxArtifacts };
  for (const c of candidates.slice(0, options.maxArtifacts)) {
    const where = c.tag ? { tag: c.tag } : {};
    const record = await reader.manifest(c.digest);
    if (!record) continue;
    try {
      const art = await recognize(record.content, { fetchBlob: reader.fetchBlob, limits, ...where });
      if (art.kind === 'not-a-signature') {
        // a signature tag that names something else is worth explaining; other referrers (SBOMs...) are not ours
        if (c.source === 'tag') out.rejected.push({ digest: c.digest, source: c.source, ...where, reason: art.reason });
        continue;
      }
      out.artifacts.push(art);
      out.found.push({ digest: c.digest, source: c.source, ...where, kind: art.kind });
    } catch (err) {
      out.rejected.push({ digest: c.digest, source: c.source, ...where, reason: errorMessage(err) });
    }
  }
  return out;
}

/** A verification of collected artifacts: `verifyImage`, plus where each artifact was found and what was rejected. */
export interface CollectedVerification extends ImageVerification {
  artifacts: FoundArtifact[];
  rejected: RejectedArtifact[];
  truncated: boolean;
}

/**
 * `verifyImage` over collected artifacts. Rejected artifacts are part of the explanation: an image
 * whose only `.sig` is oversized or malformed has failed verification, it is not "unsigned".
 */
export function verifyCollected(digest: string, collected: Collected, policy: CompiledPolicy, opts: VerifyImageOptions = {}): CollectedVerification {
  const v: CollectedVerification = { ...verifyImage(digest, collected.artifacts, policy, opts), artifacts: collected.found, rejected: collected.rejected, truncated: collected.truncated };
  if (v.verdict === 'verified') return v;
  if (v.truncated) v.missing.push('more signature artifacts are attached than are read (signatures.maxArtifactsPerImage); only the first were read');
  if (v.rejected.length === 0) return v;
  const why = v.rejected.map((r) => `${r.tag ? `tag ${r.tag}` : r.source} ${r.digest} rejected: ${r.reason}`).join('; ');
  v.verdict = 'failed';
  const i = v.missing.findIndex((m) => m === 'no signature' || m.startsWith('no valid signature'));
  if (i >= 0) v.missing[i] = `${v.missing[i]}; ${why}`;
  else v.missing.push(why);
  return v;
}

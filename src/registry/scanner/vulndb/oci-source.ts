/**
 * Where OSV artifacts (artifact.ts) come from and go to: a registry over HTTP (`vulndb import
 * oci://HOST/REPO:TAG`, `vulndb push`), or this registry's own stores (a configured source, read
 * from the blob store without a request).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { findCredentials, parseImageRef, RegistryClient, type ClientOptions } from '../../../cli/registry-client.ts';
import type { BlobStore, MetadataStore } from '../../storage/ports.ts';
import type { VulnData } from '../vulndata.ts';
import { artifactManifest, buildZip, EMPTY_CONFIG, saveVerified } from './artifact.ts';
import { VulnDatabase } from './database.ts';
import { importPath, type ImportOptions, type ImportReport } from './import.ts';
import { DEFAULT_SOURCE_LIMITS, isZipFile, readDirectory, SourceError } from './sources.ts';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface RemoteOptions {
  /** Plain HTTP for a non-loopback registry. */
  http?: boolean;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** `oci://HOST[:PORT]/REPO[:TAG|@DIGEST]` -> the parts (tag `latest` when neither is given). */
export function parseOciLocation(location: string): { registry: string; repository: string; reference: string } {
  if (!location.startsWith('oci://')) throw new SourceError(`${location}: expected oci://HOST/REPOSITORY[:TAG|@DIGEST]`);
  let ref;
  try {
    ref = parseImageRef(location.slice('oci://'.length));
  } catch (err) {
    throw new SourceError((err as Error).message);
  }
  return { registry: ref.registry, repository: ref.repository, reference: ref.digest ?? ref.tag ?? 'latest' };
}

function client(registry: string, repository: string, o: RemoteOptions): RegistryClient {
  const options: ClientOptions = { credentials: findCredentials(registry, repository, o.env), userAgent: 'portcullis-vulndb', maxBodyBytes: MAX_MANIFEST_BYTES };
  if (o.http) options.http = true;
  if (o.insecure) options.insecure = true;
  return new RegistryClient(registry, options);
}

/** Imports the OSV artifact at `oci://...` from a registry over HTTP (credentials as container tools keep them). */
export async function importFromRegistry(vulns: VulnData, location: string, options: ImportOptions & RemoteOptions = {}): Promise<ImportReport> {
  const { registry, repository, reference } = parseOciLocation(location);
  const c = client(registry, repository, options);
  const manifest = await c.getManifest(repository, reference);
  if (!manifest) throw new SourceError(`${location}: no such manifest`);
  return vulns.importArtifact(location, manifest.digest, manifest.content, async (layer) => saveVerified(await c.openBlob(repository, layer.digest), layer.digest, layer.size), options);
}

/** Imports the OSV artifact `repository:reference` of this registry straight from its stores. */
export async function importFromStores(vulns: VulnData, stores: { meta: MetadataStore; blobs: BlobStore }, repository: string, reference: string, options: ImportOptions = {}): Promise<ImportReport> {
  const source = `registry:${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
  const digest = reference.startsWith('sha256:') ? reference : await stores.meta.resolveTag(repository, reference);
  const record = digest ? await stores.meta.getManifest(repository, digest) : undefined;
  if (!digest || !record) throw new SourceError(`${source}: no such manifest`);
  return vulns.importArtifact(source, digest, record.content, async (layer) => {
    // Only blobs this repository links: the artifact's own layers, never another repository's.
    if (!(await stores.meta.linkedBlob(repository, layer.digest))) throw new SourceError(`${source}: layer ${layer.digest} is not in ${repository}`);
    return saveVerified(await stores.blobs.read(layer.digest), layer.digest, layer.size);
  }, options);
}

export interface PushResult {
  reference: string;
  digest: string;
  records: number;
  rejected: number;
  bytes: number;
}

/**
 * Packs OSV data (a directory of records, a zip such as `all.zip`, or a JSON file) as an artifact
 * and pushes it to `HOST/REPO:TAG`. The data is parsed first, as an import would: a source with no
 * valid record is refused rather than pushed.
 */
export async function pushOsvArtifact(path: string, target: string, options: RemoteOptions & { now?: Date } = {}): Promise<PushResult> {
  let ref;
  try {
    ref = parseImageRef(target.replace(/^oci:\/\//, ''));
  } catch (err) {
    throw new SourceError((err as Error).message);
  }
  if (ref.digest) throw new SourceError(`${target}: push to a tag, not a digest`);
  const check = await importPath(new VulnDatabase(), path);
  const records = check.meta?.records ?? 0;
  if (records === 0) throw new SourceError(`${path}: no valid OSV record (${check.rejectedCount} rejected)`);
  const st = await stat(path);
  let layer: Buffer;
  let title: string;
  if (st.isDirectory()) {
    const entries = [];
    for await (const e of readDirectory(path, DEFAULT_SOURCE_LIMITS)) entries.push(e);
    layer = buildZip(entries);
    title = `${basename(path)}.zip`;
  } else {
    if (!(await isZipFile(path))) throw new SourceError(`${path}: push takes a directory of OSV records or a zip`);
    layer = await readFile(path);
    title = basename(path);
  }
  const c = client(ref.registry, ref.repository, options);
  const layerDigest = await c.pushBlob(ref.repository, layer);
  await c.pushBlob(ref.repository, EMPTY_CONFIG);
  const manifest = artifactManifest([{ digest: layerDigest, size: layer.length, title }], basename(path), records, options.now ?? new Date());
  const tag = ref.tag ?? 'latest';
  const { digest } = await c.putManifest(ref.repository, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { reference: `${ref.registry}/${ref.repository}:${tag}`, digest, records, rejected: check.rejectedCount, bytes: layer.length };
}

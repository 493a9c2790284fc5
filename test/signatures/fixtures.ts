/**
 * Access to the real-tool signature fixtures (`test/fixtures/signatures`, a copy of the shared set, or
 * `$PORTCULLIS_FIXTURES/signatures`), and helpers that lay them out the way the tools push them:
 * cosign `.sig` manifests from containers/image signature files, OCI image layouts with referrers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { digestOf } from '../../src/registry/signatures/util.ts';
import { parseCertificates } from '../../src/registry/signatures/x509.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES_ROOT = process.env['PORTCULLIS_FIXTURES'] || path.join(repoRoot, 'test', 'fixtures');
export const SIG_DIR = path.join(FIXTURES_ROOT, 'signatures');
export const fixturesPresent = fs.existsSync(path.join(SIG_DIR, 'cases.json'));

/** In CI the fixtures must be there: a missing folder fails the run instead of skipping it. */
export function requireFixtures(): boolean {
  if (fixturesPresent) return true;
  if (process.env['CI'] === 'true') throw new Error(`signature fixtures missing at ${SIG_DIR} (set PORTCULLIS_FIXTURES)`);
  return false;
}

export const fx = (rel: string): string => path.join(SIG_DIR, rel);
export const read = (rel: string): Buffer => fs.readFileSync(fx(rel));
export const readText = (rel: string): string => fs.readFileSync(fx(rel), 'utf8');
export const readJson = <T = unknown>(rel: string): T => JSON.parse(readText(rel)) as T;

/** A blob store in memory, with the `fetchBlob` the recognizer wants. */
export class MemoryBlobs {
  readonly blobs = new Map<string, Buffer>();
  put(bytes: Uint8Array): string {
    const d = digestOf(bytes);
    this.blobs.set(d, Buffer.from(bytes));
    return d;
  }
  fetchBlob = async (digest: string, maxBytes: number): Promise<Uint8Array> => {
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`blob ${digest} not found`);
    if (b.length > maxBytes) throw new Error(`blob ${digest} larger than ${maxBytes}`);
    return b;
  };
}

/** containers/image stores a cosign signature as "\0sigstore-json\n{mimeType, payload, annotations}". */
export function parseContainersImageSignature(bytes: Buffer): { mimeType: string; payload: Buffer; annotations: Record<string, string> } {
  const nl = bytes.indexOf(0x0a);
  const json = JSON.parse(bytes.subarray(nl + 1).toString('utf8')) as { mimeType: string; payload: string; annotations: Record<string, string> };
  return { mimeType: json.mimeType, payload: Buffer.from(json.payload, 'base64'), annotations: json.annotations };
}

/**
 * Build the `.sig` manifest cosign pushes (one layer per signature, OCI config) from layer
 * descriptors and payloads, storing blobs in `blobs`. Returns the manifest bytes.
 */
export function cosignSigManifest(blobs: MemoryBlobs, layers: { descriptor: Record<string, unknown>; payload: Buffer }[]): Buffer {
  for (const l of layers) blobs.put(l.payload);
  const config = Buffer.from(JSON.stringify({ architecture: '', config: {}, created: '0001-01-01T00:00:00Z', os: '', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.descriptor['digest']) } }));
  const configDigest = blobs.put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: configDigest },
      layers: layers.map((l) => l.descriptor),
    }),
  );
  blobs.put(manifest);
  return manifest;
}

/** An OCI image layout on disk: blobs by digest, and the manifests that refer to a subject. */
export class OciLayout {
  readonly dir: string;
  readonly blobs = new MemoryBlobs();
  constructor(rel: string) {
    this.dir = fx(rel);
    const root = path.join(this.dir, 'blobs', 'sha256');
    for (const f of fs.readdirSync(root)) this.blobs.put(fs.readFileSync(path.join(root, f)));
  }
  blob(digest: string): Buffer {
    const b = this.blobs.blobs.get(digest);
    if (!b) throw new Error(`no blob ${digest} in ${this.dir}`);
    return b;
  }
  /** Image manifests whose `subject` is `digest` (what the Referrers API would list). */
  referrers(digest: string): Buffer[] {
    const out: Buffer[] = [];
    for (const b of this.blobs.blobs.values()) {
      let m: { subject?: { digest?: string }; layers?: unknown };
      try {
        m = JSON.parse(b.toString('utf8')) as typeof m;
      } catch {
        continue;
      }
      if (m && typeof m === 'object' && Array.isArray(m.layers) && m.subject?.digest === digest) out.push(b);
    }
    return out;
  }
  /** The digest tagged `name` in index.json. */
  tagged(name: string): string | undefined {
    const idx = JSON.parse(fs.readFileSync(path.join(this.dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    return idx.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name)?.digest;
  }
}

/** The `.sig` layers (descriptor + payload) of a containers/image case: one signature file, or numbered layer descriptors and payloads. */
export function containersImageLayers(c: { files: Record<string, string>; signatures?: Record<string, unknown>[] }): { descriptor: Record<string, unknown>; payload: Buffer }[] {
  if (c.files['signature']) {
    const s = parseContainersImageSignature(read(c.files['signature']));
    return [{ descriptor: { mediaType: s.mimeType, digest: digestOf(s.payload), size: s.payload.length, annotations: s.annotations }, payload: s.payload }];
  }
  return (c.signatures ?? []).map((s) => {
    const n = s['signature'] as string;
    return { descriptor: readJson<Record<string, unknown>>(c.files[`${n}.layer_descriptor`] as string), payload: read(c.files[`${n}.payload`] as string) };
  });
}

/**
 * containers/image's keyless fixture names its Fulcio root and Rekor key as loose files; an operator
 * adds them to a trusted_root.json (what `cosign trusted-root create` does). The Rekor key is the
 * public-good one; the Fulcio v1 root is an older issue of the public-good root, added as a CA.
 */
export function trustedRootWithFulcio(fulcioPem: string): object {
  const root = readJson<Record<string, any>>('cosign-keyless/trusted_root.production.json');
  const certs = parseCertificates(fulcioPem);
  return {
    ...root,
    certificateAuthorities: [
      ...root['certificateAuthorities'],
      {
        subject: { organization: 'sigstore.dev', commonName: 'sigstore' },
        uri: 'https://fulcio.sigstore.dev',
        certChain: { certificates: certs.map((x) => ({ rawBytes: x.raw.toString('base64') })) },
        validFor: { start: new Date(certs[0]!.validFrom).toISOString() },
      },
    ],
  };
}


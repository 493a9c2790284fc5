/**
 * Recognition: given an OCI manifest (and its layers, fetched through an injected `fetchBlob`),
 * say what kind of signature artifact it is: a cosign tag-scheme signature (`sha256-<hex>.sig`) or
 * attestation (`.att`), a sigstore bundle referrer, or a Notation signature referrer. Every target
 * digest reported here comes from the signed payload, never from tags or annotations.
 */
import type { Bundle } from '@sigstore/bundle';
import { parseDsseEnvelope, parseStatement, DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, type DsseEnvelope, type InTotoStatement } from './intoto.ts';
import { COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, NOTATION_ARTIFACT_TYPE, THUMBPRINT_ANNOTATION, parseNotationEnvelope, parseThumbprints, type NotationEnvelope } from './notation.ts';
import { SIMPLESIGNING_MEDIA_TYPE, parseSimpleSigning, type SimpleSigningPayload } from './simplesigning.ts';
import { isSigstoreBundleMediaType, parseSigstoreBundle } from './sigstore.ts';
import {
  DEFAULT_LIMITS,
  SignatureFormatError,
  assertSize,
  decodeBase64,
  digestOf,
  errorMessage,
  isDigest,
  isObject,
  parseJsonObject,
  str,
  type SignatureLimits,
} from './util.ts';

export const COSIGN_ANNOTATIONS = {
  signature: 'dev.cosignproject.cosign/signature',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
  bundle: 'dev.sigstore.cosign/bundle',
  rfc3161: 'dev.sigstore.cosign/rfc3161timestamp',
  predicateType: 'predicateType',
} as const;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Read a blob by digest; must not return more than `maxBytes` (the caller checks the digest). */
export type FetchBlob = (digest: string, maxBytes: number) => Promise<Uint8Array>;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  artifactType?: string;
}

/** The legacy Rekor "bundle" annotation: a signed entry timestamp for one log entry. */
export interface RekorBundleAnnotation {
  signedEntryTimestamp: string;
  body: string;
  integratedTime: number;
  logIndex: number;
  logID: string;
}

export interface CosignLayerMaterial {
  signature?: Buffer;
  certificatePem?: string;
  chainPem?: string;
  rekorBundle?: RekorBundleAnnotation;
  rfc3161Timestamp?: string;
}

export interface CosignSignatureLayer extends CosignLayerMaterial {
  index: number;
  descriptor: Descriptor;
  payload?: SimpleSigningPayload;
  problem?: string;
}

export interface CosignAttestationLayer extends CosignLayerMaterial {
  index: number;
  descriptor: Descriptor;
  envelope?: DsseEnvelope;
  statement?: InTotoStatement;
  problem?: string;
}

interface Common {
  manifestDigest: string;
  /** OCI 1.1 `subject` of the manifest (a claim only: verification uses the signed payload). */
  subject?: Descriptor;
  /** The digest a `sha256-<hex>.sig|.att` tag names (a claim only). */
  tagTarget?: string;
  /** Digests named by the signed payload(s): what this artifact actually signs. */
  targets: string[];
}

export type RecognizedArtifact =
  | (Common & { kind: 'cosign-signature'; layers: CosignSignatureLayer[] })
  | (Common & { kind: 'cosign-attestation'; layers: CosignAttestationLayer[] })
  | (Common & { kind: 'sigstore-bundle'; bundleMediaType: string; raw: Buffer; bundle?: Bundle; statement?: InTotoStatement; problem?: string })
  | (Common & { kind: 'notation-signature'; envelopeMediaType: string; raw: Buffer; envelope?: NotationEnvelope; thumbprints?: string[]; problem?: string })
  | (Common & { kind: 'not-a-signature'; reason: string });

export interface RecognizeOptions {
  fetchBlob: FetchBlob;
  /** The tag the manifest was pushed under, if any. */
  tag?: string;
  limits?: SignatureLimits;
}

const TAG = /^sha256-([a-f0-9]{64})\.(sig|att|sbom)$/;

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new SignatureFormatError('BAD_MANIFEST', `${what} is not a descriptor`);
  const mediaType = str(v['mediaType']);
  const digest = v['digest'];
  const size = v['size'];
  if (!mediaType || !isDigest(digest) || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new SignatureFormatError('BAD_MANIFEST', `${what} needs mediaType, digest and size`);
  }
  const d: Descriptor = { mediaType, digest, size };
  if (isObject(v['annotations'])) {
    d.annotations = {};
    for (const [k, x] of Object.entries(v['annotations'])) if (typeof x === 'string') d.annotations[k] = x;
  }
  const at = str(v['artifactType']);
  if (at) d.artifactType = at;
  return d;
}

async function fetchChecked(opts: RecognizeOptions, d: Descriptor, max: number, what: string): Promise<Buffer> {
  if (d.size > max) throw new SignatureFormatError('TOO_LARGE', `${what}: ${d.size} bytes exceeds the limit of ${max}`);
  const bytes = await opts.fetchBlob(d.digest, max);
  assertSize(bytes, max, what);
  if (bytes.byteLength !== d.size || digestOf(bytes) !== d.digest) {
    throw new SignatureFormatError('DIGEST_MISMATCH', `${what}: content does not match its descriptor`);
  }
  return Buffer.from(bytes);
}

export function parseRekorBundleAnnotation(value: string, limits: SignatureLimits): RekorBundleAnnotation {
  const json = parseJsonObject(value, limits.annotationBytes, COSIGN_ANNOTATIONS.bundle);
  const p = json['Payload'];
  const set = str(json['SignedEntryTimestamp']);
  if (!isObject(p) || !set) throw new SignatureFormatError('BAD_ANNOTATION', 'Rekor bundle needs SignedEntryTimestamp and Payload');
  const body = str(p['body']);
  const integratedTime = p['integratedTime'];
  const logIndex = p['logIndex'];
  const logID = str(p['logID']);
  if (!body || typeof integratedTime !== 'number' || typeof logIndex !== 'number' || !logID || !/^[a-f0-9]+$/.test(logID)) {
    throw new SignatureFormatError('BAD_ANNOTATION', 'Rekor bundle payload is incomplete');
  }
  decodeBase64(set, 'SignedEntryTimestamp');
  decodeBase64(body, 'Rekor entry body');
  return { signedEntryTimestamp: set, body, integratedTime, logIndex, logID };
}

function layerMaterial(d: Descriptor, limits: SignatureLimits, allowEmptySignature: boolean): CosignLayerMaterial {
  const a = d.annotations ?? {};
  for (const [k, v] of Object.entries(a)) {
    if (Buffer.byteLength(v) > limits.annotationBytes) throw new SignatureFormatError('TOO_LARGE', `annotation ${k} is too large`);
  }
  const out: CosignLayerMaterial = {};
  const sig = a[COSIGN_ANNOTATIONS.signature];
  if (sig !== undefined && !(allowEmptySignature && sig === '')) out.signature = decodeBase64(sig, COSIGN_ANNOTATIONS.signature);
  if (a[COSIGN_ANNOTATIONS.certificate]) out.certificatePem = a[COSIGN_ANNOTATIONS.certificate];
  if (a[COSIGN_ANNOTATIONS.chain]) out.chainPem = a[COSIGN_ANNOTATIONS.chain];
  if (a[COSIGN_ANNOTATIONS.bundle]) out.rekorBundle = parseRekorBundleAnnotation(a[COSIGN_ANNOTATIONS.bundle] as string, limits);
  if (a[COSIGN_ANNOTATIONS.rfc3161]) out.rfc3161Timestamp = a[COSIGN_ANNOTATIONS.rfc3161];
  return out;
}

/** Classify a manifest. Throws only for a manifest that is itself malformed or oversized. */
export async function recognize(manifestBytes: Uint8Array, opts: RecognizeOptions): Promise<RecognizedArtifact> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const manifest = parseJsonObject(manifestBytes, limits.manifestBytes, 'signature manifest');
  const manifestDigest = digestOf(manifestBytes);
  const mt = str(manifest['mediaType']);
  if (manifest['schemaVersion'] !== 2 || (mt !== undefined && mt !== OCI_MANIFEST && mt !== DOCKER_MANIFEST)) {
    return { kind: 'not-a-signature', manifestDigest, targets: [], reason: 'not an image manifest' };
  }
  const config = descriptor(manifest['config'], 'config');
  const layersRaw = manifest['layers'];
  if (!Array.isArray(layersRaw)) throw new SignatureFormatError('BAD_MANIFEST', 'manifest has no layers list');
  if (layersRaw.length > limits.layers) throw new SignatureFormatError('TOO_LARGE', `signature manifest has ${layersRaw.length} layers (limit ${limits.layers})`);
  const layers = layersRaw.map((l, i) => descriptor(l, `layers[${i}]`));
  const common: Common = { manifestDigest, targets: [] };
  if (manifest['subject'] !== undefined) common.subject = descriptor(manifest['subject'], 'subject');
  const tagMatch = opts.tag ? TAG.exec(opts.tag) : null;
  if (tagMatch) common.tagTarget = `sha256:${tagMatch[1]}`;
  const artifactType = str(manifest['artifactType']) ?? config.mediaType;

  // Notation: artifactType (or config media type) application/vnd.cncf.notary.signature, one envelope layer.
  if (artifactType === NOTATION_ARTIFACT_TYPE) {
    const layer = layers[0];
    if (layers.length !== 1 || !layer) throw new SignatureFormatError('BAD_MANIFEST', 'a Notation signature manifest has exactly one layer');
    const raw = await fetchChecked(opts, layer, limits.envelopeBytes, 'Notation envelope');
    const out: RecognizedArtifact = { ...common, kind: 'notation-signature', envelopeMediaType: layer.mediaType, raw };
    try {
      const ann = isObject(manifest['annotations']) ? str(manifest['annotations'][THUMBPRINT_ANNOTATION]) : undefined;
      const tp = parseThumbprints(ann);
      if (tp) out.thumbprints = tp;
      if (layer.mediaType !== JWS_MEDIA_TYPE && layer.mediaType !== COSE_MEDIA_TYPE) {
        throw new SignatureFormatError('UNSUPPORTED_ENVELOPE', `envelope media type ${layer.mediaType} is not JWS or COSE`);
      }
      out.envelope = parseNotationEnvelope(layer.mediaType, raw, limits);
      out.targets = [out.envelope.target.digest];
    } catch (err) {
      out.problem = errorMessage(err);
    }
    return out;
  }

  // Sigstore bundle referrer (cosign v3 new bundle format, or any client pushing a bundle).
  const bundleLayer = layers.find((l) => isSigstoreBundleMediaType(l.mediaType));
  if (isSigstoreBundleMediaType(artifactType) || (bundleLayer && layers.length === 1)) {
    const layer = bundleLayer;
    if (!layer || layers.length !== 1) throw new SignatureFormatError('BAD_MANIFEST', 'a sigstore bundle referrer has exactly one bundle layer');
    const raw = await fetchChecked(opts, layer, limits.envelopeBytes, 'sigstore bundle');
    const out: RecognizedArtifact = { ...common, kind: 'sigstore-bundle', bundleMediaType: layer.mediaType, raw };
    try {
      const bundle = parseSigstoreBundle(raw, limits);
      out.bundle = bundle;
      if (bundle.content.$case === 'dsseEnvelope') {
        const env = bundle.content.dsseEnvelope;
        if (env.payloadType === IN_TOTO_PAYLOAD_TYPE) {
          out.statement = parseStatement(env.payload, limits);
          out.targets = statementTargets(out.statement);
        }
      } else {
        const md = bundle.content.messageSignature.messageDigest;
        if (md && md.algorithm === 1 /* SHA2_256 */) out.targets = [`sha256:${Buffer.from(md.digest).toString('hex')}`];
      }
    } catch (err) {
      out.problem = errorMessage(err);
    }
    return out;
  }

  // cosign tag scheme: simple-signing layers (.sig) or DSSE layers (.att).
  const isSig = tagMatch?.[2] === 'sig' || layers.some((l) => l.mediaType === SIMPLESIGNING_MEDIA_TYPE);
  const isAtt = tagMatch?.[2] === 'att' || layers.some((l) => l.mediaType === DSSE_MEDIA_TYPE);
  if (isSig && !isAtt) {
    const out: CosignSignatureLayer[] = [];
    for (const [index, d] of layers.entries()) {
      const layer: CosignSignatureLayer = { index, descriptor: d };
      try {
        Object.assign(layer, layerMaterial(d, limits, false));
        if (d.mediaType !== SIMPLESIGNING_MEDIA_TYPE) throw new SignatureFormatError('NOT_SIMPLESIGNING', `layer media type ${d.mediaType} is not a simple-signing payload`);
        const bytes = await fetchChecked(opts, d, limits.simpleSigningPayloadBytes, `layer ${index}`);
        layer.payload = parseSimpleSigning(bytes, limits);
      } catch (err) {
        layer.problem = errorMessage(err);
      }
      out.push(layer);
    }
    const targets = [...new Set(out.flatMap((l) => (l.payload ? [l.payload.manifestDigest] : [])))];
    return { ...common, targets, kind: 'cosign-signature', layers: out };
  }
  if (isAtt) {
    const out: CosignAttestationLayer[] = [];
    for (const [index, d] of layers.entries()) {
      const layer: CosignAttestationLayer = { index, descriptor: d };
      try {
        Object.assign(layer, layerMaterial(d, limits, true));
        if (d.mediaType !== DSSE_MEDIA_TYPE) throw new SignatureFormatError('NOT_DSSE', `layer media type ${d.mediaType} is not a DSSE envelope`);
        const bytes = await fetchChecked(opts, d, limits.envelopeBytes, `layer ${index}`);
        layer.envelope = parseDsseEnvelope(bytes, limits);
        if (layer.envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw new SignatureFormatError('BAD_DSSE', `DSSE payload type ${layer.envelope.payloadType} is not in-toto`);
        layer.statement = parseStatement(layer.envelope.payload, limits);
      } catch (err) {
        layer.problem = errorMessage(err);
      }
      out.push(layer);
    }
    const targets = [...new Set(out.flatMap((l) => (l.statement ? statementTargets(l.statement) : [])))];
    return { ...common, targets, kind: 'cosign-attestation', layers: out };
  }
  return { ...common, kind: 'not-a-signature', reason: `artifact type ${artifactType} is not a signature or attestation` };
}

export function statementTargets(st: InTotoStatement): string[] {
  return st.subject.flatMap((s) => Object.entries(s.digest).map(([alg, hex]) => `${alg}:${hex}`)).filter(isDigest);
}

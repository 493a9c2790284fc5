/**
 * cosign's simple-signing payload (`application/vnd.dev.cosign.simplesigning.v1+json`): parsed and
 * verified as exact bytes, never re-serialised; produced byte-compatible with cosign.
 */
import { DEFAULT_LIMITS, SignatureFormatError, isDigest, isObject, parseJsonObject, str } from './util.ts';

export const SIMPLESIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

export interface SimpleSigningPayload {
  dockerReference: string;
  /** The signed image manifest digest: the only source of a cosign signature's target. */
  manifestDigest: string;
  optional: Record<string, unknown> | null;
  raw: Buffer;
}

export function parseSimpleSigning(bytes: Uint8Array, limits = DEFAULT_LIMITS): SimpleSigningPayload {
  const json = parseJsonObject(bytes, limits.simpleSigningPayloadBytes, 'simple-signing payload');
  const critical = json['critical'];
  if (!isObject(critical)) throw new SignatureFormatError('BAD_PAYLOAD', 'simple-signing payload has no critical section');
  if (critical['type'] !== COSIGN_SIGNATURE_TYPE) {
    throw new SignatureFormatError('BAD_PAYLOAD', `simple-signing critical.type is ${JSON.stringify(critical['type'])}, not "${COSIGN_SIGNATURE_TYPE}"`);
  }
  const image = critical['image'];
  const digest = isObject(image) ? image['docker-manifest-digest'] : undefined;
  if (!isDigest(digest)) throw new SignatureFormatError('BAD_PAYLOAD', 'simple-signing payload has no valid docker-manifest-digest');
  const identity = critical['identity'];
  const ref = isObject(identity) ? str(identity['docker-reference']) : undefined;
  const optional = json['optional'];
  return {
    dockerReference: ref ?? '',
    manifestDigest: digest,
    optional: isObject(optional) ? optional : null,
    raw: Buffer.from(bytes),
  };
}

/**
 * The payload exactly as cosign writes it (Go's encoding/json of its struct: fixed key order, no spaces,
 * `optional` null when there are no annotations, map keys sorted).
 */
export function buildSimpleSigningPayload(dockerReference: string, manifestDigest: string, annotations?: Record<string, string>): Buffer {
  if (!isDigest(manifestDigest)) throw new SignatureFormatError('BAD_DIGEST', `not a digest: ${manifestDigest}`);
  const optional =
    annotations && Object.keys(annotations).length > 0
      ? Object.fromEntries(Object.keys(annotations).sort().map((k) => [k, annotations[k]]))
      : null;
  const text =
    `{"critical":{"identity":{"docker-reference":${goJson(dockerReference)}},` +
    `"image":{"docker-manifest-digest":${goJson(manifestDigest)}},"type":"${COSIGN_SIGNATURE_TYPE}"},` +
    `"optional":${optional === null ? 'null' : goJson(optional)}}`;
  return Buffer.from(text, 'utf8');
}

/** JSON as Go's encoding/json writes it: HTML-significant characters escaped. */
function goJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

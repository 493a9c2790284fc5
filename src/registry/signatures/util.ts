/**
 * Small shared helpers for the signature core: strict decoding, digests, bounded JSON parsing.
 * Nothing here touches HTTP or storage.
 */
import { createHash } from 'node:crypto';

/** Limits on everything the signature core parses. All sizes are in bytes. */
export interface SignatureLimits {
  /** A signature / attestation / referrer manifest (cosign `.sig`/`.att`, Notation, bundle referrer). */
  manifestBytes: number;
  /** Layers read from one signature manifest. */
  layers: number;
  /** A simple-signing payload layer. */
  simpleSigningPayloadBytes: number;
  /** A DSSE envelope, a sigstore bundle, a Notation envelope. */
  envelopeBytes: number;
  /** One annotation value (signature, certificate, chain, Rekor bundle). */
  annotationBytes: number;
  /** Certificates in one chain. */
  chainLength: number;
}

export const DEFAULT_LIMITS: SignatureLimits = Object.freeze({
  manifestBytes: 256 * 1024,
  layers: 32,
  simpleSigningPayloadBytes: 64 * 1024,
  envelopeBytes: 4 * 1024 * 1024,
  annotationBytes: 128 * 1024,
  chainLength: 10,
});

/** A malformed, oversized or unsupported input. `code` is stable; `message` is for people. */
export class SignatureFormatError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SignatureFormatError';
    this.code = code;
  }
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

/** Strict standard base64 (padding optional): rejects anything `Buffer.from` would silently skip. */
export function decodeBase64(value: unknown, what: string): Buffer {
  if (typeof value !== 'string') throw new SignatureFormatError('BAD_BASE64', `${what}: not a string`);
  const s = value.replace(/\s+/g, '');
  if (!B64.test(s) || s.length % 4 === 1) throw new SignatureFormatError('BAD_BASE64', `${what}: invalid base64`);
  return Buffer.from(s, 'base64');
}

/** Strict unpadded base64url (JWS). */
export function decodeBase64Url(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || !B64URL.test(value) || value.length % 4 === 1) {
    throw new SignatureFormatError('BAD_BASE64', `${what}: invalid base64url`);
  }
  return Buffer.from(value, 'base64url');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

const DIGEST = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST.test(value);
}

export function assertSize(bytes: Uint8Array, max: number, what: string): void {
  if (bytes.byteLength > max) {
    throw new SignatureFormatError('TOO_LARGE', `${what}: ${bytes.byteLength} bytes exceeds the limit of ${max}`);
  }
}

/** Parse JSON from bytes or text with a size limit; the result must be an object. */
export function parseJsonObject(input: Uint8Array | string, max: number, what: string): Record<string, unknown> {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  assertSize(bytes, max, what);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new SignatureFormatError('BAD_JSON', `${what}: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new SignatureFormatError('BAD_JSON', `${what}: not a JSON object`);
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** PEM blocks of a given label (or any label) in a text, in order. */
export function pemBlocks(text: string, label?: string): { label: string; der: Buffer }[] {
  const out: { label: string; der: Buffer }[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const l = m[1] ?? '';
    if (label && l !== label) continue;
    out.push({ label: l, der: decodeBase64(m[2] ?? '', `PEM ${l}`) });
  }
  return out;
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

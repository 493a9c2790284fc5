/**
 * The typed error catalogue. One entry per OCI distribution error code (plus the few codes
 * distribution and Portcullis add), each with its HTTP status, message and description.
 * Every error a client sees is a {@link RegistryError} serialised by one handler into the
 * spec's envelope `{"errors":[{"code","message","detail"}]}`.
 */
export const errorCatalogue = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry', description: 'The blob is not known in this repository.' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid', description: 'The upload failed; the client may need to restart it.' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry', description: 'The upload session is unknown, expired or was cancelled.' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content', description: 'The digest is malformed, uses an unsupported algorithm, or does not match the content.' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry', description: 'A blob or child manifest referenced by the manifest is not in the repository.' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid', description: 'The manifest failed validation (syntax, media type or schema).' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry', description: 'The manifest, by tag or digest, is not in the repository.' },
  NAME_INVALID: { status: 400, message: 'invalid repository name', description: 'The repository name does not match the distribution grammar.' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry', description: 'The repository does not exist.' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length', description: 'Content-Length, Content-Range or a descriptor size does not match the content, or a size limit was exceeded.' },
  UNAUTHORIZED: { status: 401, message: 'authentication required', description: 'The client must authenticate.' },
  DENIED: { status: 403, message: 'requested access to the resource is denied', description: 'The identity may not perform this action.' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported', description: 'The operation is disabled or not supported by this registry.' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests', description: 'The client exceeded a rate limit.' },
  RANGE_INVALID: { status: 416, wireCode: 'BLOB_UPLOAD_INVALID', message: 'invalid content range', description: 'A chunk was out of order or the requested byte range cannot be satisfied.' },
  REFERENCED: { status: 409, wireCode: 'DENIED', message: 'still referenced', description: 'A manifest still references the blob, or an index still lists the manifest; delete the referrer first.' },
  PAGINATION_INVALID: { status: 400, wireCode: 'UNSUPPORTED', message: 'invalid pagination parameter', description: 'The `n` query parameter is not a non-negative integer.' },
  NOT_FOUND: { status: 404, message: 'no such endpoint', description: 'The path is not an endpoint of the distribution API.' },
  METHOD_NOT_ALLOWED: { status: 405, wireCode: 'UNSUPPORTED', message: 'method not allowed', description: 'The endpoint does not support this HTTP method.' },
  MANIFEST_TOO_LARGE: { status: 413, wireCode: 'SIZE_INVALID', message: 'manifest too large', description: 'The manifest exceeds the configured size limit (4 MiB by default).' },
  BODY_TOO_LARGE: { status: 413, wireCode: 'SIZE_INVALID', message: 'request body too large', description: 'A JSON or form body exceeds the fixed limit of its route (token endpoint 64 KiB, management API 1 MiB, ...). Not used for blobs or manifests.' },
  INVALID_REQUEST: { status: 400, message: 'invalid request', description: 'A token-endpoint or management-API request is malformed or breaks a rule (scope syntax, password policy, expiry limit); the message says which. Not used by the distribution API.' },
  CONFLICT: { status: 409, message: 'conflict', description: 'A management-API object of that name already exists. Not used by the distribution API.' },
  UNAVAILABLE: { status: 503, message: 'service unavailable', description: 'A backend is temporarily unavailable; retry later.' },
  INTERNAL: { status: 500, message: 'internal server error', description: 'An unexpected failure; details are in the server log, never in the response.' },
} as const satisfies Record<string, { status: number; message: string; description: string; wireCode?: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/**
 * The code a client sees. Conditions the spec has no code for but clients must still parse
 * (a conflict, an oversized manifest) travel as the closest spec code, because the spec says the
 * code "MUST be one of" its list; the HTTP status keeps them distinct.
 */
export function wireCodeOf(code: ErrorCode): string {
  const entry = errorCatalogue[code];
  return 'wireCode' in entry ? entry.wireCode : code;
}

/** An error with an OCI code. `detail` is sent to the client; `cause` only to the log. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. `Range` on a 416 for an upload). */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message?: string, options: { detail?: unknown; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message ?? errorCatalogue[code].message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  /** The spec's JSON envelope. */
  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const entry: { code: string; message: string; detail?: unknown } = { code: wireCodeOf(this.code), message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

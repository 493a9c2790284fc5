/**
 * Container image references as Kubernetes passes them to the runtime, in every form:
 * `nginx`, `nginx:1.27`, `nginx@sha256:...`, `team/app:v1`, `host:5000/team/app:v1@sha256:...`.
 * Normalised like the Docker/containerd reference grammar: the first path component is a
 * registry host only when it contains `.` or `:` or is `localhost`; otherwise the image is on
 * Docker Hub (`docker.io`), and a single-component Hub name gets `library/`. When a digest is
 * present the runtime pulls by digest and ignores the tag.
 */
import { isDigest } from '../../oci/digest.ts';
import { isRepositoryName, isTag } from '../../oci/reference.ts';

export const DOCKER_HUB = 'docker.io';

export interface ImageReference {
  /** As written in the pod spec. */
  original: string;
  /** `host[:port]`, lower case; `docker.io` for Hub shorthand. */
  registry: string;
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

export class ImageReferenceError extends Error {
  constructor(reference: string, reason: string) {
    super(`image reference ${JSON.stringify(reference.slice(0, 300))} is invalid: ${reason}`);
    this.name = 'ImageReferenceError';
  }
}

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

/** @throws ImageReferenceError */
export function parseImageReference(reference: string): ImageReference {
  if (reference.length === 0) throw new ImageReferenceError(reference, 'empty');
  if (reference.length > 1024 || /\s/.test(reference)) throw new ImageReferenceError(reference, 'too long or contains white space');
  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new ImageReferenceError(reference, `${digest} is not a digest (sha256:<64 hex> or sha512:<128 hex>)`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) throw new ImageReferenceError(reference, `${tag} is not a valid tag`);
  }
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!HOST.test(first)) throw new ImageReferenceError(reference, `${first} is not a valid registry host`);
      registry = first.toLowerCase();
      path = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (!isRepositoryName(path)) throw new ImageReferenceError(reference, `${path} is not a valid repository name (lower case letters, digits, separators)`);
  return { original: reference, registry, repository: path, tag, digest };
}

/** `registry/repository[:tag][@digest]`, fully qualified. */
export function formatImageReference(ref: { registry: string; repository: string; tag?: string | undefined; digest?: string | undefined }): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * The reference pinned to `digest` as written (a Hub shorthand stays short): `nginx:1.27` becomes
 * `nginx:1.27@sha256:...`; the tag is kept for people reading the spec, the runtime uses the digest.
 */
export function pinReference(original: string, digest: string): string {
  const at = original.indexOf('@');
  return `${at >= 0 ? original.slice(0, at) : original}@${digest}`;
}

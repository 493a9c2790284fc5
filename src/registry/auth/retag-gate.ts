/**
 * The `retag` permission: moving an existing tag to another manifest (developers may push new
 * tags and re-push the same manifest, maintainers may also move tags). Docker scopes have no
 * such action, so it is checked when the manifest is pushed, by a manifest-push gate: access
 * control remembers who sends each manifest PUT, and the gate compares the tag's current target
 * with the new digest. (A concurrent push may move the tag between the check and the commit;
 * the check is about intent, not a lock.)
 */
import { RegistryError } from '../../oci/errors.ts';
import type { ManifestPushGate } from '../distribution/gates.ts';
import type { MetadataStore } from '../storage/ports.ts';
import type { AccessService } from './access-service.ts';
import type { Identity } from './identity.ts';

const FORGET_AFTER_MS = 10 * 60_000;

export class RetagGuard {
  readonly #meta: MetadataStore;
  readonly #access: AccessService;
  readonly #pending = new Map<string, { identity: Identity; at: number }>();

  constructor(deps: { meta: MetadataStore; access: AccessService }) {
    this.#meta = deps.meta;
    this.#access = deps.access;
  }

  /** Records who sends the manifest PUT with request id `requestId`. */
  remember(requestId: string, identity: Identity): void {
    const now = Date.now();
    // Requests that never reached the gate (refused manifests, dropped connections) are forgotten.
    for (const [id, entry] of this.#pending) {
      if (entry.at > now - FORGET_AFTER_MS) break;
      this.#pending.delete(id);
    }
    this.#pending.set(requestId, { identity, at: now });
  }

  readonly gate: ManifestPushGate = async ({ repository, tag, digest, origin }) => {
    const entry = this.#pending.get(origin.requestId);
    this.#pending.delete(origin.requestId);
    if (!entry || tag === undefined) return;
    const current = await this.#meta.resolveTag(repository, tag);
    if (current === undefined || current === digest) return;
    if (await this.#access.can(entry.identity, 'retag', { kind: 'repository', name: repository })) return;
    throw new RegistryError('DENIED', `tag ${tag} already points at another manifest; moving it needs the retag permission (maintainer)`, { detail: { name: repository, tag } });
  };
}

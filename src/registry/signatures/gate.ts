/**
 * "Require a valid signature to pull" (per project, in its trust policy record): a manifest pull
 * gate. A pull of an image that is not verified under the project's trust policy is refused with
 * `DENIED` naming what is missing; signature and attestation artifacts stay pullable (clients fetch
 * them to verify), and so does the referrers listing (not a manifest pull). Any failure to decide
 * denies (the core also turns non-registry errors into denials). With a cached verdict the gate
 * costs a few map lookups (bench/signatures.ts).
 */
import { RegistryError } from '../../oci/errors.ts';
import type { PullGate } from '../distribution/gates.ts';
import type { EventBus } from '../events/bus.ts';
import type { SignatureService } from './service.ts';
import { errorMessage } from './util.ts';

export function signaturePullGate(deps: { service: SignatureService; events: EventBus; logger?: { error(obj: object, msg: string): void } }): PullGate {
  const { service, events } = deps;
  return async ({ repository, digest, tag, origin }) => {
    let decision;
    try {
      decision = await service.pullDecision(repository, digest);
    } catch (err) {
      deps.logger?.error({ err: errorMessage(err), repository, digest }, 'signature verification failed; pull denied');
      throw new RegistryError('DENIED', `signature verification of ${repository}@${digest} could not be completed; denied`, { cause: err });
    }
    if (decision.allowed) return;
    events.publish({ type: 'signature.pull.denied', at: new Date(), origin, repository, digest, tag, reason: decision.message, policyVersion: decision.status.policyVersion });
    throw new RegistryError('DENIED', decision.message, {
      detail: {
        repository,
        digest,
        verdict: decision.status.verdict,
        policyVersion: decision.status.policyVersion,
        missing: decision.status.missing,
        signatures: `/api/v1/repositories/${repository}/manifests/${digest}/signatures`,
      },
    });
  };
}

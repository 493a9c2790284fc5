/**
 * Robot accounts bound to client certificates (mutual TLS on the HTTPS listener). A binding
 * names the key (SPKI SHA-256), the subject and/or one subjectAltName; every field it names must
 * match the verified certificate of the connection. A bound robot's secret (and the refresh
 * tokens obtained with it) is accepted only over a connection presenting a matching
 * certificate; a binding with `certificateOnly` also lets the certificate alone authenticate the
 * robot at the token endpoint.
 */
import type { ClientCertificate } from '../../edge/client-certificate.ts';
import type { CertificateBinding, FederationStore } from './store.ts';

export function certificateMatches(binding: CertificateBinding, certificate: ClientCertificate | undefined): boolean {
  if (!certificate) return false;
  if (binding.spkiSha256 === undefined && binding.subject === undefined && binding.san === undefined) return false;
  if (binding.spkiSha256 !== undefined && binding.spkiSha256 !== certificate.spkiSha256) return false;
  if (binding.subject !== undefined && binding.subject !== certificate.subject) return false;
  if (binding.san !== undefined && !certificate.sans.includes(binding.san)) return false;
  return true;
}

export class RobotCertificates {
  readonly #store: FederationStore;

  constructor(store: FederationStore) {
    this.#store = store;
  }

  /** Why a robot's secret is not acceptable over this connection, or undefined (no binding, or a matching certificate). */
  async problem(robotId: string, certificate: ClientCertificate | undefined): Promise<string | undefined> {
    const binding = await this.#store.getRobotCertificate(robotId);
    if (!binding || certificateMatches(binding, certificate)) return undefined;
    return certificate ? 'client certificate does not match the robot binding' : 'robot is bound to a client certificate and none was presented';
  }

  /** The robot the certificate alone authenticates: exactly one certificate-only binding must match (ambiguity denies). */
  async robotFor(certificate: ClientCertificate): Promise<string | 'ambiguous' | undefined> {
    const matching = (await this.#store.robotCertificatesFor(certificate)).filter((binding) => binding.certificateOnly && certificateMatches(binding, certificate));
    if (matching.length > 1) return 'ambiguous';
    return matching[0]?.robotId;
  }
}

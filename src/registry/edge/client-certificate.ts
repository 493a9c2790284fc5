/**
 * The client certificate of a request on the HTTPS listener, when `server.tls.clientCaFile` is
 * set: the listener asks every client for a certificate but does not require one (other clients
 * keep working), so a certificate counts only when it verified against the client CA
 * (`socket.authorized`). Computed once per TLS connection.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';

export interface ClientCertificate {
  /** SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex. */
  spkiSha256: string;
  /** Subject DN, RDNs joined by commas in certificate order (`CN=ci,O=example`). */
  subject: string;
  /** subjectAltName entries as `DNS:…`, `URI:…`, `IP Address:…`, `email:…`. */
  sans: string[];
}

const byConnection = new WeakMap<object, ClientCertificate | null>();

export function clientCertificate(request: FastifyRequest): ClientCertificate | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
  let known = byConnection.get(socket);
  if (known === undefined) {
    known = null;
    const peer: X509Certificate | undefined = socket.authorized ? socket.getPeerX509Certificate() : undefined;
    if (peer) {
      known = {
        spkiSha256: createHash('sha256').update(peer.publicKey.export({ type: 'spki', format: 'der' })).digest('hex'),
        subject: peer.subject.split('\n').join(','),
        sans: peer.subjectAltName ? peer.subjectAltName.split(', ').filter((entry) => entry.length > 0) : [],
      };
    }
    byConnection.set(socket, known);
  }
  return known ?? undefined;
}

/** Who may call the webhooks: the bearer token (constant-time), a verified client certificate, loopback only when configured. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { checkWebhookCaller, type WebhookAuth } from '../../src/registry/admission/http.ts';

function request(o: { authorization?: string; remote?: string; tls?: { authorized: boolean; cn?: string; san?: string } }): FastifyRequest {
  const socket = {
    remoteAddress: o.remote ?? '10.0.0.9',
    encrypted: o.tls !== undefined,
    authorized: o.tls?.authorized ?? false,
    getPeerCertificate: () => ({ subject: { CN: o.tls?.cn }, subjectaltname: o.tls?.san }),
  };
  return { headers: o.authorization ? { authorization: o.authorization } : {}, raw: { socket }, socket } as unknown as FastifyRequest;
}

const token: WebhookAuth = { token: Buffer.from('s3cret-admission-token'), clientCertificates: false, clientNames: [], allowUnauthenticatedLoopback: false };

describe('webhook callers', () => {
  it('accepts the bearer token, refuses another or none', () => {
    assert.equal(checkWebhookCaller(request({ authorization: 'Bearer s3cret-admission-token' }), token), null);
    assert.match(checkWebhookCaller(request({ authorization: 'Bearer s3cret-admission-tokeX' }), token)!, /not the admission token/);
    assert.match(checkWebhookCaller(request({ authorization: 'Basic czNjcmV0' }), token)!, /not the admission token/);
    assert.match(checkWebhookCaller(request({}), token)!, /need the admission bearer token or a client certificate/);
    assert.match(checkWebhookCaller(request({ remote: '127.0.0.1' }), token)!, /need the admission bearer token/, 'loopback is not trusted unless configured');
  });

  it('opens loopback only when configured, and never for a wrong token', () => {
    const open = { ...token, allowUnauthenticatedLoopback: true };
    for (const remote of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) assert.equal(checkWebhookCaller(request({ remote }), open), null, remote);
    assert.notEqual(checkWebhookCaller(request({ remote: '192.168.1.4' }), open), null);
    assert.notEqual(checkWebhookCaller(request({ remote: '127.0.0.1', authorization: 'Bearer wrong' }), open), null);
  });

  it('accepts verified client certificates with an accepted CN or DNS SAN', () => {
    const mtls: WebhookAuth = { token: undefined, clientCertificates: true, clientNames: ['kube-apiserver'], allowUnauthenticatedLoopback: false };
    assert.equal(checkWebhookCaller(request({ tls: { authorized: true, cn: 'kube-apiserver' } }), mtls), null);
    assert.equal(checkWebhookCaller(request({ tls: { authorized: true, cn: 'x', san: 'IP Address:10.0.0.1, DNS:kube-apiserver' } }), mtls), null);
    assert.match(checkWebhookCaller(request({ tls: { authorized: true, cn: 'other' } }), mtls)!, /client certificate other is not one of/);
    assert.notEqual(checkWebhookCaller(request({ tls: { authorized: false, cn: 'kube-apiserver' } }), mtls), null);
    assert.notEqual(checkWebhookCaller(request({ tls: { authorized: true, cn: 'kube-apiserver' } }), { ...mtls, clientCertificates: false }), null, 'not on a listener that verifies them');
  });
});

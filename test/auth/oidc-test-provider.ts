/**
 * A real OpenID provider (`oidc-provider`, certified) on 127.0.0.1 for the workload identity
 * tests. Workloads are OAuth clients using the client_credentials grant with a resource
 * indicator, so the provider issues JWT access tokens (`typ: at+jwt`, RS256 with the provider's
 * key): `sub` is the client id, `aud` the resource's audience, and the client's metadata adds
 * CI-style claims (`repository`, `ref`, nested `kubernetes.io`), as GitHub Actions or a
 * Kubernetes projected token carries them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export interface Workload {
  clientId: string;
  /** Audience of its tokens (default `portcullis`). */
  audience?: string;
  /** Token lifetime in seconds (default 300). */
  ttl?: number;
  claims?: Record<string, unknown>;
}

export interface TestProvider {
  issuer: string;
  /** A token for the workload, issued by the provider. */
  token(clientId: string): Promise<string>;
  /** The provider's current signing key (for tests that must show a token the provider would never issue is refused). */
  readonly publicJwk: JWK;
  /** Key rotation: from now on the provider signs with a new key and publishes only that one. */
  rotate(): Promise<void>;
  close(): Promise<void>;
}

const SECRET = 'workload-client-secret-0123456789abcdef';

export async function startTestProvider(workloads: Workload[]): Promise<TestProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let publicJwk: JWK = {};
  /** A provider instance signing with a fresh key, serving the same issuer and clients. */
  const install = async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = `op-${Math.random().toString(36).slice(2, 10)}`;
    const provider = new Provider(issuer, {
      jwks: { keys: [{ ...(await exportJWK(privateKey)), kid, use: 'sig', alg: 'RS256' }] },
      clients: workloads.map((w) => ({ client_id: w.clientId, client_secret: SECRET, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], workload: { audience: w.audience ?? 'portcullis', ttl: w.ttl ?? 300, claims: w.claims ?? {} } })),
      extraClientMetadata: { properties: ['workload'] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => 'urn:portcullis:registry',
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, _resource: string, client: { workload: { audience: string; ttl: number } }) => ({ scope: 'registry', audience: client.workload.audience, accessTokenFormat: 'jwt', accessTokenTTL: client.workload.ttl }),
        },
      },
      ttl: { ClientCredentials: (_ctx: unknown, _token: unknown, client: { workload: { ttl: number } }) => client.workload.ttl },
      extraTokenClaims: (ctx: { oidc: { client: { workload: { claims: Record<string, unknown> } } } }) => ctx.oidc.client.workload.claims,
    } as never);
    // The provider's development warnings are noise in test output.
    provider.on('server_error', () => undefined);
    server.removeAllListeners('request');
    server.on('request', provider.callback());
    publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256' };
  };
  await install();
  return {
    issuer,
    get publicJwk() {
      return publicJwk;
    },
    rotate: install,
    async token(clientId) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(SECRET)}`).toString('base64')}` },
        body: 'grant_type=client_credentials&scope=registry',
      });
      const body = (await response.json()) as { access_token?: string };
      if (!body.access_token) throw new Error(`the provider issued no token for ${clientId}: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

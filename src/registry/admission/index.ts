/** Kubernetes admission (validating + mutating webhooks, deployment records); wired in app/build-app.ts. */
import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import { tlsCiphers } from '../edge/tls.ts';
import type { EventBus } from '../events/bus.ts';
import type { MetadataStore } from '../storage/ports.ts';
import { type AdmissionPolicy, AdmissionController } from './controller.ts';
import { type DeploymentAuthorizer, registerDeploymentRoutes, registerWebhookRoutes, type WebhookAuth } from './http.ts';
import type { DeploymentStore } from './store.ts';
import { ExternalVerifier, loadExternalVerifySettings } from './external.ts';

export { AdmissionController, type AdmissionSettings } from './controller.ts';
export { MemoryDeploymentStore, SqlDeploymentStore, type DeploymentStore, type DeploymentRecord } from './store.ts';
export { parseImageReference, ImageReferenceError, type ImageReference } from './reference.ts';
export { webhookManifests } from './manifests.ts';
export { ExternalVerifier, type ExternalVerdict, type ExternalVerifySettings } from './external.ts';

export interface Admission {
  controller: AdmissionController;
  /** The dedicated listener, when admission.listen is set (started by `start`). */
  listener: FastifyInstance | undefined;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The hosts whose images are this registry's. */
export function registryHostsOf(config: Config): string[] {
  const a = config.admission;
  return a.registryHosts.length > 0 ? a.registryHosts : [config.signatures.registryHost ?? config.server.listen];
}

export async function createAdmission(
  app: FastifyInstance,
  deps: { policy: AdmissionPolicy; meta: MetadataStore; deployments: DeploymentStore; events: EventBus; authorize?: DeploymentAuthorizer | undefined; logger?: FastifyInstance['log'] },
  config: Config,
): Promise<Admission> {
  const a = config.admission;
  const external = a.external.action === 'verify' ? new ExternalVerifier(await loadExternalVerifySettings(a.external.verify)) : undefined;
  const controller = new AdmissionController(
    { policy: deps.policy, meta: deps.meta, deployments: deps.deployments, events: deps.events, external, logger: deps.logger },
    { registryHosts: registryHostsOf(config), external: a.external, unknownKinds: a.unknownKinds, namespaces: a.namespaces, cacheMs: a.cacheSeconds * 1000, cacheEntries: a.cacheEntries },
  );
  const unsubscribe = controller.subscribe();
  const listen = config.server.listen;
  if (a.registryHosts.length === 0 && !config.signatures.registryHost && listen.endsWith(':0')) {
    // Port 0 (tests, ephemeral setups): this registry's images are addressed with the bound port.
    app.addHook('onListen', async () => {
      const address = app.server.address();
      if (address && typeof address === 'object') controller.addRegistryHost(`${listen.slice(0, -2)}:${address.port}`);
    });
  }
  const token = a.auth.tokenFile ? (await readFile(a.auth.tokenFile, 'utf8')).trim() : undefined;
  if (token !== undefined && token.length < 16) throw new Error(`admission.auth.tokenFile ${a.auth.tokenFile}: the token must have at least 16 characters`);
  const auth: WebhookAuth = { token: token ? Buffer.from(token) : undefined, clientCertificates: false, clientNames: a.tls?.clientNames ?? [], allowUnauthenticatedLoopback: a.auth.allowUnauthenticatedLoopback };
  const routeDeps = { controller, clusterName: a.clusterName, clusterHeader: a.clusterHeader, logger: deps.logger };
  await registerDeploymentRoutes(app, { store: deps.deployments, authorize: deps.authorize });

  let listener: FastifyInstance | undefined;
  if (a.listen && a.tls?.certFile && a.tls.keyFile) {
    const tls = { ...a.tls, certFile: a.tls.certFile, keyFile: a.tls.keyFile };
    listener = Fastify({
      logger: false,
      https: {
        cert: await readFile(tls.certFile),
        key: await readFile(tls.keyFile),
        minVersion: config.server.tls?.minVersion ?? 'TLSv1.2',
        ciphers: tlsCiphers,
        ...(tls.clientCaFile ? { ca: await readFile(tls.clientCaFile), requestCert: true, rejectUnauthorized: true } : {}),
      },
    });
    await registerWebhookRoutes(listener, { ...routeDeps, auth: { ...auth, clientCertificates: tls.clientCaFile !== undefined } });
  } else {
    await registerWebhookRoutes(app, { ...routeDeps, auth });
  }
  return {
    controller,
    listener,
    async start() {
      if (!listener || !a.listen) return;
      const at = a.listen.lastIndexOf(':');
      await listener.listen({ host: a.listen.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(a.listen.slice(at + 1)) });
    },
    async close() {
      unsubscribe();
      await listener?.close();
    },
  };
}

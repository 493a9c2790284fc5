/**
 * Per-project webhooks (docs/notifications.md): the store, the SSRF target policy, sealed
 * secrets, the dispatcher subscribed to the bus, and the administration service behind the API.
 */
import { join, resolve } from 'node:path';
import type { Registry } from 'prom-client';
import type { EventBus } from '../events/bus.ts';
import type { WebhookSettings } from './config.ts';
import { type DispatchLogger, WebhookDispatcher } from './dispatcher.ts';
import { SecretBox } from './secrets.ts';
import { WebhookService } from './service.ts';
import { TargetPolicy } from './ssrf.ts';
import type { WebhookStore } from './store.ts';

export { webhooksSchema, type WebhookSettings } from './config.ts';
export { webhookApi, type WebhookApiRoute } from './http.ts';
export { WebhookStore } from './store.ts';
export { WebhookDispatcher } from './dispatcher.ts';
export { WebhookService } from './service.ts';

export interface Webhooks {
  service: WebhookService;
  dispatcher: WebhookDispatcher;
  store: WebhookStore;
  close(): Promise<void>;
}

export async function createWebhooks(deps: { store: WebhookStore; events: EventBus; logger?: DispatchLogger; metrics?: Registry | undefined; dataDir: string }, settings: WebhookSettings): Promise<Webhooks> {
  const box = await SecretBox.open(resolve(settings.secretKeyFile ?? join(deps.dataDir, 'notifications', 'secret.key')));
  const targets = new TargetPolicy(settings);
  const dispatcher = new WebhookDispatcher({ store: deps.store, events: deps.events, box, targets, logger: deps.logger, metrics: deps.metrics }, settings);
  const service = new WebhookService({ store: deps.store, box, targets, dispatcher, events: deps.events }, settings);
  dispatcher.start();
  return {
    service,
    dispatcher,
    store: deps.store,
    async close() {
      await dispatcher.stop();
      await deps.store.close();
    },
  };
}

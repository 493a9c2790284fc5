/**
 * Notifications benchmark (in process, real stores: SQLite file; a local HTTP receiver):
 *
 * 1. Anomaly detection cost per event: manifest pulls from `--identities` identities through every
 *    rule (`AnomalyDetector.observe`), µs per event, and the memory the rules keep.
 * 2. Webhook fan-out cost of an event no webhook listens to (a pull in a project whose webhooks
 *    want pushes): `WebhookDispatcher.onEvent`, µs per event (the projects' lists are cached).
 * 3. Delivery throughput: `--deliveries` push notifications written to the queue and POSTed,
 *    signed, to a receiver on loopback, `concurrency` 8, until all are delivered: deliveries/s.
 *
 *   node bench/notifications.ts [--events 200000] [--identities 1000] [--deliveries 2000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { anomalySchema } from '../src/registry/anomaly/config.ts';
import { AnomalyDetector } from '../src/registry/anomaly/detector.ts';
import { EventBus, type RegistryEvent } from '../src/registry/events/bus.ts';
import { webhooksSchema } from '../src/registry/notifications/config.ts';
import { WebhookDispatcher } from '../src/registry/notifications/dispatcher.ts';
import { SecretBox } from '../src/registry/notifications/secrets.ts';
import { TargetPolicy } from '../src/registry/notifications/ssrf.ts';
import { WebhookStore } from '../src/registry/notifications/store.ts';
import { SqliteDriver } from '../src/registry/storage/sqlite/sqlite-driver.ts';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200000' }, identities: { type: 'string', default: '1000' }, deliveries: { type: 'string', default: '2000' } } });
const events = Number(values.events);
const identities = Number(values.identities);
const deliveries = Number(values.deliveries);
const log = (s: string) => process.stdout.write(`${s}\n`);

function pull(i: number, at: Date): RegistryEvent {
  const who = i % identities;
  return {
    type: 'manifest.pulled',
    at,
    origin: { clientAddress: `10.${(who >> 8) & 255}.${who & 255}.7`, userAgent: 'bench', requestId: String(i), actor: { kind: who % 3 === 0 ? 'robot' : 'user', name: `id${who}` } },
    repository: `p${who % 50}/app${who % 7}`,
    digest: `sha256:${'0'.repeat(64)}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    tag: 'latest',
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-notify-'));
  try {
    // 1. anomaly rules
    let now = Date.parse('2026-11-01T00:00:00Z');
    const detector = new AnomalyDetector({ events: new EventBus(), now: () => now }, anomalySchema.parse({}));
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const start = process.hrtime.bigint();
    for (let i = 0; i < events; i++) {
      now += 50; // 20 pulls per second overall: the run spans hours, so baselines roll
      await detector.observe(pull(i, new Date(now)));
    }
    const perEvent = Number(process.hrtime.bigint() - start) / 1000 / events;
    global.gc?.();
    log(`anomaly rules: ${events} pulls from ${identities} identities: ${perEvent.toFixed(2)} µs per event; heap +${((process.memoryUsage().heapUsed - heapBefore) / 1048576).toFixed(1)} MiB`);

    // 2. and 3. webhooks
    let received = 0;
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        received++;
        response.statusCode = 204;
        response.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const settings = webhooksSchema.parse({ allowedNetworks: ['127.0.0.1/32'], pollIntervalMs: 50 });
    const store = new WebhookStore(new SqliteDriver(join(dir, 'webhooks.sqlite')));
    await store.migrate();
    const box = await SecretBox.open(join(dir, 'secret.key'));
    const bus = new EventBus();
    const dispatcher = new WebhookDispatcher({ store, events: bus, box, targets: new TargetPolicy(settings) }, settings);
    await store.create({ id: '00000000-0000-4000-8000-000000000001', project: 'p0', name: 'bench', url, events: ['push'], sealedSecret: box.seal('bench-secret-0123456789'), enabled: true, createdAt: 0, createdBy: 'bench', updatedAt: 0 }, 10);
    dispatcher.start();
    const ignored = 100_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ignored; i++) await dispatcher.onEvent(pull(i * identities, new Date()));
    log(`webhooks: an event no webhook wants (pull; the project has a push webhook): ${(Number(process.hrtime.bigint() - t0) / 1000 / ignored).toFixed(2)} µs per event`);
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < deliveries; i++) {
      await dispatcher.onEvent({
        type: 'manifest.pushed', at: new Date(), origin: undefined, repository: 'p0/app', digest: `sha256:${i.toString(16).padStart(64, '0')}`,
        mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: undefined, subject: undefined, size: 1000, created: true, tag: `t${i}`, previousTagTarget: undefined,
      });
    }
    const queued = Number(process.hrtime.bigint() - t1) / 1e6;
    while (received < deliveries || (await store.counts()).delivered < deliveries) await new Promise((resolve) => setTimeout(resolve, 10));
    const total = Number(process.hrtime.bigint() - t1) / 1e9;
    log(`webhooks: ${deliveries} push notifications queued in ${queued.toFixed(0)} ms (${((queued * 1000) / deliveries).toFixed(0)} µs each) and delivered (signed POST, SQLite bookkeeping, concurrency ${settings.concurrency}) in ${total.toFixed(2)} s: ${(deliveries / total).toFixed(0)} deliveries/s`);
    const counts = await store.counts();
    if (counts.delivered !== deliveries) throw new Error(`expected ${deliveries} delivered, got ${JSON.stringify(counts)}`);
    await dispatcher.stop();
    await store.close();
    server.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

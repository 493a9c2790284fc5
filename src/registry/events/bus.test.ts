import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventBus, type EventOf, type RegistryEvent } from './bus.ts';

const at = new Date('2026-01-01T00:00:00Z');
const origin = { clientAddress: '127.0.0.1', userAgent: 'test', requestId: 'req-1', actor: { kind: 'anonymous' as const } };

const tagDeleted: EventOf<'tag.deleted'> = { type: 'tag.deleted', at, origin, repository: 'team/app', tag: 'v1', digest: undefined };
const blobUploaded: EventOf<'blob.uploaded'> = { type: 'blob.uploaded', at, origin, repository: 'team/app', digest: `sha256:${'a'.repeat(64)}`, size: 3 };
const blobCollected: EventOf<'blob.collected'> = { type: 'blob.collected', at, origin: undefined, digest: `sha256:${'b'.repeat(64)}`, size: 9 };

/**
 * Resolves once everything the bus scheduled for events published so far has run: delivery is
 * one macrotask after publish, and a rejected handler promise is reported a few microtasks later.
 */
async function delivered(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('EventBus', () => {
  test('subscribers receive only the events of their type; "*" receives all', async () => {
    const bus = new EventBus();
    const tags: string[] = [];
    const all: string[] = [];
    bus.subscribe('tag.deleted', (event) => {
      tags.push(event.tag);
    });
    bus.subscribe('*', (event) => {
      all.push(event.type);
    });
    bus.publish(tagDeleted);
    bus.publish(blobUploaded);
    bus.publish(blobCollected);
    await delivered();
    assert.deepEqual(tags, ['v1']);
    assert.deepEqual(all, ['tag.deleted', 'blob.uploaded', 'blob.collected']);
  });

  test('a handler is typed for its event', () => {
    const bus = new EventBus();
    bus.subscribe('manifest.pushed', (event) => {
      const fields: [string, boolean, string | undefined] = [event.digest, event.created, event.previousTagTarget];
      void fields;
      // @ts-expect-error `from` belongs to blob.mounted, not to manifest.pushed
      void event.from;
    });
    bus.subscribe('blob.collected', (event) => {
      // @ts-expect-error collected blobs belong to no repository
      void event.repository;
    });
    // @ts-expect-error unknown event types cannot be subscribed to
    bus.subscribe('blob.exploded', () => undefined);
    // @ts-expect-error an event must be complete to be published
    bus.publish({ type: 'blob.uploaded', at, origin });
  });

  test('delivery happens after publish returns, so the publisher never waits for observers', async () => {
    const bus = new EventBus();
    const order: string[] = [];
    bus.subscribe('tag.deleted', () => {
      order.push('handler');
    });
    bus.publish(tagDeleted);
    order.push('publisher continues');
    assert.deepEqual(order, ['publisher continues']);
    await delivered();
    assert.deepEqual(order, ['publisher continues', 'handler']);
  });

  test('a handler that never settles does not hold back the others', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.subscribe('tag.deleted', () => new Promise<void>(() => undefined));
    bus.subscribe('tag.deleted', () => {
      seen.push('second');
    });
    bus.publish(tagDeleted);
    await delivered();
    assert.deepEqual(seen, ['second']);
  });

  test('a throwing handler is reported and affects neither the publisher nor the other handlers', async () => {
    const failures: Array<{ error: unknown; event: RegistryEvent }> = [];
    const bus = new EventBus({ onHandlerError: (error, event) => failures.push({ error, event }) });
    const seen: string[] = [];
    bus.subscribe('tag.deleted', () => {
      seen.push('before');
    });
    bus.subscribe('tag.deleted', () => {
      throw new Error('observer broke');
    });
    bus.subscribe('tag.deleted', () => {
      seen.push('after');
    });
    bus.subscribe('*', () => {
      seen.push('wildcard');
    });
    assert.doesNotThrow(() => bus.publish(tagDeleted));
    await delivered();
    assert.deepEqual(seen, ['before', 'after', 'wildcard']);
    assert.equal(failures.length, 1);
    assert.equal((failures[0]?.error as Error).message, 'observer broke');
    assert.equal(failures[0]?.event, tagDeleted);
  });

  test('a rejecting async handler is reported too', async () => {
    const failures: unknown[] = [];
    const bus = new EventBus({ onHandlerError: (error) => failures.push(error) });
    const seen: string[] = [];
    bus.subscribe('blob.uploaded', async () => {
      throw new Error('async observer broke');
    });
    bus.subscribe('blob.uploaded', async () => {
      seen.push('ok');
    });
    bus.publish(blobUploaded);
    await delivered();
    assert.deepEqual(seen, ['ok']);
    assert.deepEqual(
      failures.map((e) => (e as Error).message),
      ['async observer broke'],
    );
  });

  test('without an error callback a failure is still logged (to stderr), never swallowed', async (t) => {
    const logged: unknown[][] = [];
    t.mock.method(console, 'error', (...args: unknown[]) => {
      logged.push(args);
    });
    const bus = new EventBus();
    bus.subscribe('tag.deleted', () => {
      throw new Error('unheard');
    });
    bus.publish(tagDeleted);
    await delivered();
    assert.equal(logged.length, 1);
    assert.match(String(logged[0]?.[0]), /tag\.deleted/);
    assert.ok(logged[0]?.some((arg) => arg instanceof Error && arg.message === 'unheard'));
  });

  test('unsubscribing stops delivery to that handler only', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const stop = bus.subscribe('tag.deleted', () => {
      seen.push('a');
    });
    bus.subscribe('tag.deleted', () => {
      seen.push('b');
    });
    stop();
    bus.publish(tagDeleted);
    await delivered();
    assert.deepEqual(seen, ['b']);
  });

  test('publishing with no subscribers is a no-op', async () => {
    const failures: unknown[] = [];
    const bus = new EventBus({ onHandlerError: (error) => failures.push(error) });
    bus.publish(blobCollected);
    await delivered();
    assert.deepEqual(failures, []);
  });
});

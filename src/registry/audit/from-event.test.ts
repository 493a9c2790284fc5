import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RegistryEvent, RequestOrigin } from '../events/bus.ts';
import { entriesFromEvent } from './from-event.ts';
import { canonical, fieldsOf } from './record.ts';

const origin: RequestOrigin = { clientAddress: '192.0.2.4', userAgent: 'skopeo/1.16', requestId: 'req-9', actor: { kind: 'user', name: 'alice' } };
const at = new Date('2025-03-01T10:00:00Z');
const digest = `sha256:${'b'.repeat(64)}`;

test('a push that moves a tag gives a push record and a tag.moved record', () => {
  const event = {
    type: 'manifest.pushed',
    at,
    origin,
    repository: 'team/app',
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: undefined,
    subject: undefined,
    size: 512,
    created: true,
    tag: 'v1',
    previousTagTarget: `sha256:${'a'.repeat(64)}`,
  } satisfies RegistryEvent;
  const [push, moved] = entriesFromEvent(event);
  assert.deepEqual(push, {
    at,
    actor: { kind: 'user', name: 'alice', auth: undefined },
    client: '192.0.2.4',
    userAgent: 'skopeo/1.16',
    requestId: 'req-9',
    action: 'manifest.pushed',
    repository: 'team/app',
    digest,
    tag: 'v1',
    outcome: 'success',
    reason: undefined,
    details: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 512, created: true, previousTagTarget: `sha256:${'a'.repeat(64)}` },
  });
  assert.equal(moved?.action, 'tag.moved');
  assert.deepEqual(moved?.details, { from: `sha256:${'a'.repeat(64)}` });
  // A re-push to the same target moves nothing.
  assert.equal(entriesFromEvent({ ...event, previousTagTarget: digest }).length, 1);
});

test("the registry's own actions are the system actor's", () => {
  const [entry] = entriesFromEvent({ type: 'blob.collected', at, origin: undefined, digest, size: 10 });
  assert.deepEqual(entry?.actor, { kind: 'system', name: 'portcullis' });
  assert.equal(entry?.client, undefined);
});

test('event types added later are audited generically: failures, reasons, claimed names, details', () => {
  const failed = { type: 'auth.failed', at, origin: { ...origin, actor: { kind: 'anonymous' } }, username: 'bob', method: 'password', reason: 'bad password' } as unknown as RegistryEvent;
  const [entry] = entriesFromEvent(failed);
  assert.equal(entry?.action, 'auth.failed');
  assert.equal(entry?.outcome, 'failure');
  assert.equal(entry?.reason, 'bad password');
  assert.deepEqual(entry?.actor, { kind: 'user', name: 'bob', auth: 'password' });
  const denied = { type: 'policy.denied', at, origin, repository: 'team/app', rule: 'signed-only' } as unknown as RegistryEvent;
  const [policy] = entriesFromEvent(denied);
  assert.equal(policy?.outcome, 'denied');
  assert.deepEqual(policy?.details, { rule: 'signed-only' });
});

test('stored fields are bounded and details serialise canonically', () => {
  const long = 'x'.repeat(5000);
  const a = fieldsOf({ actor: { kind: 'user', name: 'n' }, userAgent: long, action: 'a', outcome: 'success', details: { b: 1, a: { d: 2, c: 3 } } }, 1);
  const b = fieldsOf({ actor: { kind: 'user', name: 'n' }, userAgent: long, action: 'a', outcome: 'success', details: { a: { c: 3, d: 2 }, b: 1 } }, 1);
  assert.equal(a.userAgent?.length, 512);
  assert.equal(a.details, '{"a":{"c":3,"d":2},"b":1}');
  assert.equal(canonical(a), canonical(b));
  assert.equal(fieldsOf({ actor: { kind: 'user' }, action: 'a', outcome: 'success', details: { blob: long } }, 1).details, '{"length":5011,"truncated":true}');
});

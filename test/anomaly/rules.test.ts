/**
 * Anomaly rules: each one triggered by a scripted scenario and silent under normal traffic. Time is
 * an injected clock advanced by the script; events go through the real bus and detector.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { anomalySchema } from '../../src/registry/anomaly/config.ts';
import { type Alert, AnomalyDetector } from '../../src/registry/anomaly/detector.ts';
import { networkOf } from '../../src/registry/anomaly/rules.ts';
import { RedisAnomalyState } from '../../src/registry/anomaly/redis-state.ts';
import { type AnomalyState, MemoryAnomalyState } from '../../src/registry/anomaly/state.ts';
import { redisSkip, redisUrl, uniquePrefix } from '../edge/redis.ts';
import { EventBus, type RegistryEvent, type RequestOrigin } from '../../src/registry/events/bus.ts';

const HOUR = 3_600_000;
const DIGEST = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function origin(kind: 'user' | 'robot' | 'anonymous', name: string | undefined, clientAddress = '192.0.2.10'): RequestOrigin {
  return { clientAddress, userAgent: 'test', requestId: 'r', actor: { kind, ...(name ? { name } : {}), auth: kind === 'robot' ? 'robot' : 'password' } };
}

function setup(overrides: Record<string, unknown> = {}, requiresSignature?: (project: string) => Promise<boolean>, state?: AnomalyState) {
  let now = Date.parse('2026-11-02T00:00:00Z');
  const events = new EventBus();
  const metrics = new Registry();
  const raisedOnBus: RegistryEvent[] = [];
  events.subscribe('alert.raised', (e) => void raisedOnBus.push(e));
  const logged: string[] = [];
  const detector = new AnomalyDetector(
    { events, metrics, now: () => now, requiresSignature, state, logger: { warn: (_o, msg) => void logged.push(msg ?? ''), error: (o) => assert.fail(`rule failed: ${JSON.stringify(o)}`) } },
    anomalySchema.parse(overrides),
  );
  const alerts: Alert[] = [];
  return {
    detector,
    metrics,
    raisedOnBus,
    logged,
    alerts,
    advance(ms: number) {
      now += ms;
    },
    get now() {
      return now;
    },
    async send(event: Record<string, unknown>) {
      const raised = await detector.observe({ at: new Date(now), ...event } as unknown as RegistryEvent);
      alerts.push(...raised);
      return raised;
    },
    async tick() {
      const raised = await detector.tick();
      alerts.push(...raised);
      return raised;
    },
    /** What the detector's 1 s timer does: pull counts to the shared state. */
    async flush() {
      const raised = await detector.flush();
      alerts.push(...raised);
      return raised;
    },
  };
}

/** A memory state with some operations replaced. */
function wrap(memory: MemoryAnomalyState, overrides: Partial<AnomalyState>): AnomalyState {
  return {
    hit: (key, now, windowMs) => memory.hit(key, now, windowMs),
    remember: (key, member, now, max) => memory.remember(key, member, now, max),
    claim: (key, now, ttlMs) => memory.claim(key, now, ttlMs),
    addPulls: (counts, alpha) => memory.addPulls(counts, alpha),
    close: () => memory.close(),
    ...overrides,
  };
}

const pull = (repository: string, o: RequestOrigin) => ({ type: 'manifest.pulled', repository, digest: DIGEST(1), mediaType: 'application/vnd.oci.image.manifest.v1+json', tag: 'latest', origin: o });

describe('anomaly rules', () => {
  it('networkOf: IPv4 /24, IPv6 /64, IPv4-mapped', () => {
    assert.equal(networkOf('203.0.113.77', 24, 64), '203.0.113.0/24');
    assert.equal(networkOf('::ffff:203.0.113.77', 24, 64), '203.0.113.0/24');
    assert.equal(networkOf('2001:db8:1:2:3:4:5:6', 24, 64), '2001:db8:1:2:0:0:0:0/64');
    assert.equal(networkOf('2001:db8::1', 24, 48), '2001:db8:0:0:0:0:0:0/48');
    assert.equal(networkOf('not-an-address', 24, 64), undefined);
  });

  it('pull volume: a new identity is learnt first (no alert during learningHours)', async () => {
    const t = setup({ pullVolume: { minPulls: 100, learningHours: 24 } });
    for (let i = 0; i < 500; i++) await t.send(pull('team/app', origin('user', 'frank')));
    assert.equal(t.alerts.length, 0);
  });

  it('unsigned push: unsigned after the grace period in a project requiring signatures alerts; signed in time, or a project without the requirement, does not', async () => {
    const requiring = new Set(['secure']);
    const t = setup({ unsignedPush: { graceSeconds: 300 } }, async (project) => requiring.has(project));
    const verdict = (repository: string, n: number, v: string, trigger = 'push') =>
      t.send({ type: 'signature.verified', repository, digest: DIGEST(n), verdict: v, outcome: v === 'verified' ? 'success' : 'failure', reason: v === 'verified' ? undefined : 'no signature', policyVersion: 1, trigger, signatures: 0, signers: [], attestations: [], origin: origin('user', 'hank') });
    await verdict('secure/app', 1, 'unsigned'); // signed a minute later: normal cosign flow
    await verdict('secure/app', 2, 'unsigned'); // never signed
    await verdict('open/app', 3, 'unsigned'); // project does not require signatures
    t.advance(60_000);
    await verdict('secure/app', 1, 'verified');
    assert.deepEqual(await t.tick(), []);
    t.advance(241_000);
    const raised = await t.tick();
    assert.equal(raised.length, 1);
    assert.equal(raised[0]!.rule, 'unsigned-push');
    assert.equal(raised[0]!.digest, DIGEST(2));
    assert.equal(raised[0]!.subject, 'user:hank');
    assert.equal(raised[0]!.facts.graceSeconds, 300);
    assert.deepEqual(await t.tick(), []);
  });

  it('unsigned push: a failed requirement lookup keeps the case open for the next tick', async () => {
    let calls = 0;
    const t = setup({ unsignedPush: { graceSeconds: 60 } }, async () => {
      if (++calls === 1) throw new Error('database unavailable');
      return true;
    });
    await t.send({ type: 'signature.verified', repository: 'secure/app', digest: DIGEST(9), verdict: 'unsigned', outcome: 'failure', reason: 'no signature', policyVersion: 1, trigger: 'push', signatures: 0, signers: [], attestations: [], origin: origin('user', 'lee') });
    t.advance(61_000);
    await assert.rejects(t.detector.rules.find((r) => r.name === 'unsigned-push')!.tick!(t.now) as Promise<unknown>, /database unavailable/);
    const raised = await t.tick();
    assert.equal(raised.length, 1);
    assert.equal(raised[0]!.digest, DIGEST(9));
  });

  it('released tag moved: re-pointing v1.2.3 alerts; moving latest or pushing a new version does not', async () => {
    const t = setup();
    const push = (tag: string, n: number, previous?: number) =>
      t.send({ type: 'manifest.pushed', repository: 'team/app', digest: DIGEST(n), mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: undefined, subject: undefined, size: 100, created: true, tag, previousTagTarget: previous === undefined ? undefined : DIGEST(previous), origin: origin('user', 'ivan') });
    await push('v1.2.3', 1);
    await push('latest', 2, 1);
    await push('1.3.0', 2);
    await push('v1.2.3', 1, 1); // re-push of the same digest
    await push('nightly-2026.11.02', 3, 2);
    assert.equal(t.alerts.length, 0);
    await push('v1.2.3', 4, 1);
    assert.equal(t.alerts.length, 1);
    const alert = t.alerts[0]!;
    assert.equal(alert.rule, 'released-tag-moved');
    assert.equal(alert.tag, 'v1.2.3');
    assert.equal(alert.facts.from, DIGEST(1));
    assert.equal(alert.facts.to, DIGEST(4));
  });

  it('every alert is published on the bus, logged and counted', async () => {
    const t = setup({ massDeletion: { threshold: 2 } });
    for (let i = 0; i < 2; i++) await t.send({ type: 'tag.deleted', repository: 'team/app', tag: `t${i}`, digest: undefined, origin: origin('user', 'judy') });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(t.raisedOnBus.length, 1);
    const event = t.raisedOnBus[0] as Extract<RegistryEvent, { type: 'alert.raised' }>;
    assert.equal(event.rule, 'mass-deletion');
    assert.equal(event.origin?.actor.name, 'judy');
    assert.match(t.logged[0]!, /^anomaly alert: user:judy deleted 2/);
    assert.match(await t.metrics.metrics(), /portcullis_alerts_total\{rule="mass-deletion"\} 1/);
    assert.equal(t.detector.recent({ limit: 10, rule: 'mass-deletion' }).length, 1);
    assert.equal(t.detector.recent({ limit: 10, rule: 'pull-volume' }).length, 0);
  });

  it('the detector ignores its own alerts and follows the bus once started', async () => {
    const events = new EventBus();
    const detector = new AnomalyDetector({ events, now: () => 0 }, anomalySchema.parse({ massDeletion: { threshold: 1 } }));
    detector.start(0);
    const seen: string[] = [];
    events.subscribe('alert.raised', (e) => void seen.push(e.rule));
    events.publish({ type: 'tag.deleted', at: new Date(0), origin: origin('user', 'kim'), repository: 'a/b', tag: 'x', digest: undefined });
    await detector.idle();
    await new Promise((resolve) => setImmediate(resolve));
    detector.stop();
    assert.deepEqual(seen, ['mass-deletion']);
  });

  it('events that arrive while shared state is slow to answer are evaluated in bus order, pulls included', async () => {
    // State that answers after a timer, as Redis does: deletions wait for it, pulls need none of it.
    const memory = new MemoryAnomalyState(1000);
    const order: string[] = [];
    const slow = wrap(memory, {
      hit: async (key, now, windowMs) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        order.push(key);
        return memory.hit(key, now, windowMs);
      },
    });
    const t = setup({ massDeletion: { threshold: 3 }, pullVolume: { minPulls: 1, learningHours: 0 } }, undefined, slow);
    const kim = origin('user', 'kim');
    const results = [
      t.send({ type: 'tag.deleted', origin: kim, repository: 'a/b', tag: 'x1', digest: undefined }),
      t.send({ type: 'tag.deleted', origin: kim, repository: 'a/b', tag: 'x2', digest: undefined }),
      t.send(pull('a/b', kim)),
      t.send({ type: 'tag.deleted', origin: kim, repository: 'a/b', tag: 'x3', digest: undefined }),
      t.send(pull('a/b', kim)),
    ];
    const raised = await Promise.all(results);
    // The first pull waits for the deletions queued before it (its alert comes second), and the third deletion tips the rule.
    assert.deepEqual(
      raised.map((alerts) => alerts.map((a) => a.rule)),
      [[], [], ['pull-volume'], ['mass-deletion'], []],
    );
    assert.deepEqual(order, ['md:user:kim', 'md:user:kim', 'md:user:kim']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      t.raisedOnBus.map((e) => (e as { rule: string }).rule),
      ['pull-volume', 'mass-deletion'],
    );
  });

  it('pull volume: counts a flush could not send go with the next flush', async () => {
    const memory = new MemoryAnomalyState(1000);
    let failures = 1;
    const flaky = wrap(memory, {
      addPulls: async (counts, alpha) => {
        if (failures-- > 0) throw new Error('state unavailable');
        return memory.addPulls(counts, alpha);
      },
    });
    const t = setup({}, undefined, flaky);
    const olga = origin('user', 'olga');
    for (let i = 0; i < 5; i++) await t.send(pull('a/b', olga));
    await assert.rejects(t.detector.rules.find((r) => r.name === 'pull-volume')!.flush!(), /state unavailable/);
    for (let i = 0; i < 3; i++) await t.send(pull('a/b', olga));
    assert.deepEqual(await t.flush(), []);
    const hour = Math.floor(t.now / HOUR);
    assert.equal((await memory.addPulls([{ key: 'pv:user:olga', hour, pulls: 0, alertedHour: -1 }], 0.2))[0]!.count, 8);
  });

  it('a failing rule is logged and the others still run, on the quick path too', async () => {
    const errors: string[] = [];
    const events = new EventBus();
    const detector = new AnomalyDetector({ events, now: () => 0, logger: { warn: () => undefined, error: (o) => void errors.push((o as { rule: string }).rule) } }, anomalySchema.parse({ massDeletion: { threshold: 1 } }));
    const broken = { name: 'pull-volume' as const, observe: () => { throw new Error('boom'); } };
    detector.rules.unshift(broken);
    const raised = await detector.observe({ type: 'tag.deleted', at: new Date(0), origin: origin('user', 'kim'), repository: 'a/b', tag: 'x', digest: undefined });
    assert.deepEqual(raised.map((a) => a.rule), ['mass-deletion']);
    assert.deepEqual(errors, ['pull-volume']);
  });
});

/** The rules whose state may be shared (memory, or Redis for every replica). */
function sharedStateRules(name: string, makeState: () => AnomalyState | undefined) {
  describe(`anomaly rules with shared state: ${name}`, () => {
    it('failed logins: 10 failures for one account within 10 min alert (with counts and window); spread out they do not', async () => {
      const t = setup({}, undefined, makeState());
      // normal: a typo now and then, an hour apart
      for (let i = 0; i < 12; i++) {
        await t.send({ type: 'auth.failed', username: 'alice', method: 'password', reason: 'bad password', origin: origin('anonymous', undefined) });
        await t.send({ type: 'auth.succeeded', username: 'alice', method: 'password', origin: origin('user', 'alice') });
        t.advance(HOUR);
      }
      assert.equal(t.alerts.length, 0);
      // attack: 10 in a few minutes, from rotating addresses
      for (let i = 0; i < 10; i++) {
        await t.send({ type: 'auth.failed', username: 'bob', method: 'password', reason: 'bad password', origin: origin('anonymous', undefined, `198.51.100.${i}`) });
        t.advance(20_000);
      }
      assert.equal(t.alerts.length, 1);
      const [alert] = t.alerts;
      assert.equal(alert!.rule, 'failed-logins');
      assert.equal(alert!.subject, 'user:bob');
      assert.equal(alert!.facts.failures, 10);
      assert.equal(alert!.facts.windowSeconds, 600);
      assert.match(alert!.reason, /10 failed logins for account bob within 10 min \(threshold 10\)/);
      // cooldown: the 11th does not raise another one
      await t.send({ type: 'auth.failed', username: 'bob', method: 'password', reason: 'bad password', origin: origin('anonymous', undefined) });
      assert.equal(t.alerts.length, 1);
    });

    it('failed logins per address: password spraying over many accounts from one address', async () => {
      const t = setup({ failedLogins: { perAddress: 15 } }, undefined, makeState());
      for (let i = 0; i < 15; i++) await t.send({ type: 'auth.failed', username: `user${i}`, method: 'password', reason: 'unknown user', origin: origin('anonymous', undefined, '203.0.113.5') });
      assert.deepEqual(t.alerts.map((a) => a.subject), ['address:203.0.113.5']);
      assert.equal(t.alerts[0]!.facts.failures, 15);
    });

    it('new network: first network learnt silently, same /24 silent, another /24 alerts once', async () => {
      const t = setup({}, undefined, makeState());
      const login = (address: string) => t.send({ type: 'auth.succeeded', username: 'carol', method: 'password', origin: origin('user', 'carol', address) });
      await login('192.0.2.10');
      await login('192.0.2.99'); // same /24
      await login('::ffff:192.0.2.5');
      assert.equal(t.alerts.length, 0);
      await login('203.0.113.8');
      assert.equal(t.alerts.length, 1);
      assert.equal(t.alerts[0]!.rule, 'new-network');
      assert.equal(t.alerts[0]!.facts.network, '203.0.113.0/24');
      assert.deepEqual(t.alerts[0]!.facts.knownNetworks, ['192.0.2.0/24']);
      await login('203.0.113.9'); // now known
      assert.equal(t.alerts.length, 1);
      // IPv6: /64 (another identity: one alert per rule and identity per cooldown)
      const login6 = (address: string) => t.send({ type: 'auth.succeeded', username: 'carl', method: 'password', origin: origin('user', 'carl', address) });
      await login6('2001:db8:1:2::1');
      await login6('2001:db8:1:2::ffff');
      await login6('2001:db8:1:3::1');
      assert.equal(t.alerts.length, 2);
      assert.equal(t.alerts[1]!.facts.network, '2001:db8:1:3:0:0:0:0/64');
    });

    it('pull volume: steady hourly pulls build a baseline; a burst of 10x alerts once, at the pull that tips it, with the baseline', async () => {
      const t = setup({ pullVolume: { minPulls: 100, multiplier: 10, learningHours: 24 } }, undefined, makeState());
      const ci = origin('robot', 'robot$ci');
      // 30 hours of 20 to 30 pulls per hour (normal, and a busier hour of 2x)
      for (let h = 0; h < 30; h++) {
        const n = h === 20 ? 50 : 20 + (h % 10);
        for (let i = 0; i < n; i++) await t.send(pull('team/app', ci));
        await t.flush(); // the history goes through the shared state; the burst below is judged between flushes
        t.advance(HOUR);
      }
      assert.equal(t.alerts.length, 0);
      for (let i = 0; i < 300; i++) await t.send(pull(`team/app${i % 50}`, ci));
      assert.equal(t.alerts.length, 1);
      const alert = t.alerts[0]!;
      assert.equal(alert.rule, 'pull-volume');
      assert.equal(alert.subject, 'robot:robot$ci');
      const baseline = alert.facts.baselinePerHour as number;
      assert.ok(baseline > 20 && baseline < 35, `baseline ${baseline}`);
      assert.equal(alert.facts.pullsThisHour, Math.ceil(baseline * 10));
      assert.match(alert.reason, /x its baseline of/);
    });

    it('robot scope: repositories used during the learning period are fine; a new one afterwards alerts', async () => {
      const t = setup({ robotScope: { learningDays: 7 } }, undefined, makeState());
      const bot = origin('robot', 'robot$team+deploy');
      for (let day = 0; day < 10; day++) {
        await t.send(pull('team/api', bot));
        if (day < 3) await t.send(pull('team/web', bot)); // learnt in the first week
        if (day === 8) await t.send(pull('team/web', bot));
        t.advance(24 * HOUR);
      }
      assert.equal(t.alerts.length, 0);
      await t.send(pull('finance/ledger', bot));
      assert.equal(t.alerts.length, 1);
      assert.equal(t.alerts[0]!.rule, 'robot-scope');
      assert.equal(t.alerts[0]!.repository, 'finance/ledger');
      assert.deepEqual((t.alerts[0]!.facts.usualRepositories as string[]).sort(), ['team/api', 'team/web']);
      await t.send(pull('finance/ledger', bot));
      assert.equal(t.alerts.length, 1);
      // users are not subject to the rule
      await t.send(pull('elsewhere/x', origin('user', 'gina')));
      assert.equal(t.alerts.length, 1);
    });

    it('pull counts: a late count (another replica, flushed after the hour ended) lands in the baseline as if counted in time', async () => {
      const state = makeState() ?? new MemoryAnomalyState(100);
      const add = async (hour: number, pulls: number) => (await state.addPulls([{ key: 'pv:user:late', hour, pulls, alertedHour: -1 }], 0.2))[0]!;
      assert.deepEqual(await add(100, 10), { firstHour: 100, hour: 100, count: 10, baseline: 0, alertedHour: -1 });
      assert.equal((await add(101, 20)).baseline, 0.2 * 10);
      const late = await add(100, 5); // another replica's pulls of hour 100, flushed after hour 101 began
      assert.equal(late.hour, 101);
      assert.equal(late.count, 20);
      assert.ok(Math.abs(late.baseline - 0.2 * 15) < 1e-9, `baseline ${late.baseline}`);
      const rolled = await add(103, 1); // hour 101 completes, hour 102 silent
      assert.ok(Math.abs(rolled.baseline - (0.2 * 20 + 0.8 * 3) * 0.8) < 1e-9, `baseline ${rolled.baseline}`);
      assert.equal(rolled.firstHour, 100);
      });

    it('mass deletion: 25 deletes within 10 min by one identity alert; a daily clean-up of 10 does not', async () => {
      const t = setup({}, undefined, makeState());
      const del = (n: number, who: RequestOrigin) => t.send({ type: 'manifest.deleted', repository: 'team/app', digest: DIGEST(n), tags: [], origin: who });
      for (let day = 0; day < 5; day++) {
        for (let i = 0; i < 10; i++) await del(day * 100 + i, origin('robot', 'robot$team+cleanup'));
        t.advance(24 * HOUR);
      }
      // two identities deleting 20 each in the same window: no single identity crosses 25
      for (let i = 0; i < 20; i++) {
        await del(1000 + i, origin('user', 'dave'));
        await t.send({ type: 'tag.deleted', repository: 'team/app', tag: `t${i}`, digest: undefined, origin: origin('user', 'erin') });
      }
      assert.equal(t.alerts.length, 0);
      for (let i = 0; i < 5; i++) await del(2000 + i, origin('user', 'dave'));
      assert.equal(t.alerts.length, 1);
      assert.equal(t.alerts[0]!.rule, 'mass-deletion');
      assert.equal(t.alerts[0]!.subject, 'user:dave');
      assert.equal(t.alerts[0]!.facts.deletions, 25);
      assert.equal(t.alerts[0]!.severity, 'critical');
    });
  });
}

sharedStateRules('memory', () => undefined);

const skip = await redisSkip();
if (skip) describe('anomaly rules with shared state: redis', () => it('runs against Redis', { skip }, () => undefined));
else {
  const states: AnomalyState[] = [];
  const redisState = (prefix = uniquePrefix()) => {
    const state = new RedisAnomalyState(redisUrl, prefix);
    states.push(state);
    return state;
  };
  sharedStateRules('redis', () => redisState());
  describe('anomaly state in Redis', () => {
    it('two replicas share the counts: failures split between them raise one alert', async () => {
      const prefix = uniquePrefix();
      const a = setup({ failedLogins: { perAccount: 6 } }, undefined, redisState(prefix));
      const b = setup({ failedLogins: { perAccount: 6 } }, undefined, redisState(prefix));
      for (let i = 0; i < 4; i++) {
        for (const t of [a, b]) await t.send({ type: 'auth.failed', username: 'mia', method: 'password', reason: 'bad password', origin: origin('anonymous', undefined, `198.51.100.${i}`) });
      }
      assert.equal(a.alerts.length + b.alerts.length, 1, 'one alert across replicas (shared cooldown)');
      assert.equal([...a.alerts, ...b.alerts][0]!.facts.failures, 6);
      // and a network learnt by one replica is known to the other
      await a.send({ type: 'auth.succeeded', username: 'mia', method: 'password', origin: origin('user', 'mia', '192.0.2.1') });
      await b.send({ type: 'auth.succeeded', username: 'mia', method: 'password', origin: origin('user', 'mia', '192.0.2.2') });
      await b.send({ type: 'auth.succeeded', username: 'mia', method: 'password', origin: origin('user', 'mia', '203.0.113.2') });
      assert.deepEqual(b.alerts.filter((x) => x.rule === 'new-network').map((x) => x.facts.knownNetworks), [['192.0.2.0/24']]);
    });
    it('robot scope: two replicas share the repositories of a robot and when it was first seen', async () => {
      const prefix = uniquePrefix();
      const a = setup({ robotScope: { learningDays: 7 } }, undefined, redisState(prefix));
      const b = setup({ robotScope: { learningDays: 7 } }, undefined, redisState(prefix));
      const bot = origin('robot', 'robot$team+sync');
      await a.send(pull('team/api', bot)); // learnt on replica a only
      a.advance(8 * 24 * HOUR);
      b.advance(8 * 24 * HOUR);
      await b.send(pull('team/api', bot)); // replica b never saw it: known all the same
      await b.send({ type: 'blob.pulled', repository: 'team/api', digest: DIGEST(2), size: 10, range: false, origin: bot });
      assert.equal(b.alerts.length, 0);
      await b.send(pull('finance/ledger', bot));
      assert.equal(b.alerts.length, 1);
      assert.equal(b.alerts[0]!.repository, 'finance/ledger');
      assert.deepEqual(b.alerts[0]!.facts.usualRepositories, ['team/api']);
      assert.match(b.alerts[0]!.reason, /outside the 1 repositories it used since 2026-11-02T00:00:00.000Z/);
      // and what b learnt is known to a
      await a.send(pull('finance/ledger', bot));
      assert.equal(a.alerts.length, 0);
    });

    it('pull volume: a burst split over two replicas alerts on the total; normal traffic split the same way does not', async () => {
      const prefix = uniquePrefix();
      const settings = { pullVolume: { minPulls: 200, multiplier: 10, learningHours: 24 } };
      const a = setup(settings, undefined, redisState(prefix));
      const b = setup(settings, undefined, redisState(prefix));
      const ci = origin('robot', 'robot$ci');
      // 30 hours of 20 to 29 pulls per hour (one busier hour of 2x), alternately on each replica,
      // each flushing now and then and at the end of the hour, as its 1 s timer does
      for (let h = 0; h < 30; h++) {
        const n = h === 20 ? 50 : 20 + (h % 10);
        for (let i = 0; i < n; i++) {
          await (i % 2 ? b : a).send(pull('team/app', ci));
          if (i % 7 === 6) await (i % 2 ? a : b).flush();
        }
        for (const t of [a, b]) {
          await t.flush();
          t.advance(HOUR);
        }
      }
      assert.equal(a.alerts.length + b.alerts.length, 0);
      // the burst: 150 pulls on each, under minPulls (200) on either replica alone; 300 together
      for (let i = 0; i < 150; i++) for (const t of [a, b]) await t.send(pull(`team/app${i % 50}`, ci));
      assert.equal(a.alerts.length + b.alerts.length, 0);
      assert.deepEqual(await a.flush(), []);
      const raised = await b.flush();
      assert.equal(raised.length, 1);
      const alert = raised[0]!;
      assert.equal(alert.rule, 'pull-volume');
      assert.equal(alert.subject, 'robot:robot$ci');
      assert.equal(alert.facts.pullsThisHour, 300);
      // the baseline counts both replicas' pulls (one replica alone would have half of it)
      const baseline = alert.facts.baselinePerHour as number;
      assert.ok(baseline > 20 && baseline < 30, `baseline ${baseline}`);
      assert.match(alert.reason, /robot:robot\$ci pulled 300 manifests this hour, \d+(\.\d)?x its baseline of/);
      // once per hour across replicas
      for (const t of [a, b]) {
        for (let i = 0; i < 50; i++) await t.send(pull('team/app', ci));
        await t.flush();
      }
      assert.equal(a.alerts.length + b.alerts.length, 1);
    });

    after(async () => {
      for (const state of states) await state.close();
    });
  });
}

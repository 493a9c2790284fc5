import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CachedPolicyStore, MemoryPolicyStore, type PolicyStore, type StoredPolicy } from './store.ts';

/** Counts reads, and can be told to fail them, so the cache's effect is observable. */
class CountingStore implements PolicyStore {
  readonly inner = new MemoryPolicyStore();
  reads = 0;
  failing = false;
  async latest(project: string): Promise<StoredPolicy | undefined> {
    this.reads++;
    if (this.failing) throw new Error('database unavailable');
    return this.inner.latest(project);
  }
  history(project: string, limit: number): Promise<StoredPolicy[]> {
    return this.inner.history(project, limit);
  }
  append(project: string, document: string | undefined, createdBy: string | undefined): Promise<number> {
    return this.inner.append(project, document, createdBy);
  }
}

describe('CachedPolicyStore', () => {
  it('reads a project once per TTL, absent policies included', async () => {
    let now = 1_000;
    const inner = new CountingStore();
    const store = new CachedPolicyStore(inner, 5, () => now);
    assert.equal(await store.latest('team'), undefined);
    assert.equal(await store.latest('team'), undefined);
    assert.equal(inner.reads, 1);
    now += 4_999;
    await store.latest('team');
    assert.equal(inner.reads, 1);
    now += 1;
    await store.latest('team');
    assert.equal(inner.reads, 2, 'expired after cacheSeconds');
  });

  it('a write through it is seen at once; another writer only after the TTL', async () => {
    let now = 0;
    const inner = new CountingStore();
    const store = new CachedPolicyStore(inner, 5, () => now);
    assert.equal(await store.latest('team'), undefined);
    assert.equal(await store.append('team', 'doc-1', 'alice'), 1);
    assert.equal((await store.latest('team'))?.document, 'doc-1');
    await inner.append('team', 'doc-2', 'other-replica');
    assert.equal((await store.latest('team'))?.document, 'doc-1', 'stale within the TTL');
    now += 5_000;
    assert.equal((await store.latest('team'))?.version, 2);
    assert.equal((await store.latest('global')), undefined, 'projects are cached apart');
  });

  it('does not remember a failed read', async () => {
    const inner = new CountingStore();
    const store = new CachedPolicyStore(inner, 60);
    inner.failing = true;
    await assert.rejects(store.latest('team'), /unavailable/);
    inner.failing = false;
    await inner.append('team', 'doc', undefined);
    assert.equal((await store.latest('team'))?.document, 'doc');
  });

  it('with a TTL of 0 reads every time', async () => {
    const inner = new CountingStore();
    const store = new CachedPolicyStore(inner, 0);
    await store.latest('team');
    await store.latest('team');
    assert.equal(inner.reads, 2);
  });
});

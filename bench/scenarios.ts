/**
 * The comparative scenarios: each runs against Portcullis and distribution alike.
 */
import { performance } from 'node:perf_hooks';
import { setInterval as every } from 'node:timers/promises';
import { expectStatus, nextLink, request } from './lib/http.ts';
import { type LoadResult, loadTest, runOps } from './lib/load.ts';
import {
  BlobFactory,
  type Client,
  MANIFEST_ACCEPT,
  MiB,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  closeClient,
  makeClient,
  makeSmallImage,
  pullBlob,
  pushBlobChunked,
  pushBlobMonolithic,
  pushSmallBlob,
  pushSmallImage,
  putManifest,
  sha256,
} from './lib/oci.ts';
import type { Options } from './lib/options.ts';
import { type Server, type TargetName, readRss } from './lib/targets.ts';

export interface Metric {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  digits: number;
}

export interface Context {
  options: Options;
  /** Large random buffers are made once and shared by all scenarios. */
  factory: (unit: number, repeat?: number) => BlobFactory;
}

export interface Scenario<State = unknown> {
  id: string;
  title: string;
  metrics: Metric[];
  /** Measured on a registry started afresh for every sample (and stopped after it). */
  fresh?: boolean;
  /** Untimed preparation on the server; its result is handed to every measure(). */
  setup?: (server: Server, ctx: Context) => Promise<State>;
  /** One timed sample; returns a value per metric key. */
  measure: (server: Server, state: State, ctx: Context) => Promise<Record<string, number>>;
  /** A limit a target must meet: returns a message when violated. */
  check?: (target: TargetName, values: Record<string, number>) => string | undefined;
}

const mibPerSec = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

function throwIfFailed(what: string, result: { failed: number; firstError?: Error; capped: boolean; done: number }): void {
  if (result.failed > 0) throw new Error(`${what}: ${result.failed} operation(s) failed; first: ${result.firstError?.message}`);
  if (result.done === 0) throw new Error(`${what}: no operation completed within the time bound`);
}

async function withClient<T>(server: Server, sockets: number, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = makeClient(server.url, sockets);
  try {
    return await fn(client);
  } finally {
    closeClient(client);
  }
}

function pushScenario(id: string, concurrency: number): Scenario {
  return {
    id,
    title: `Monolithic blob push (POST + PUT ?digest=), concurrency ${concurrency}`,
    metrics: [{ key: 'mibps', label: 'throughput', unit: 'MiB/s', better: 'higher', digits: 1 }],
    async measure(server, _state, ctx) {
      const s = ctx.options.sizes;
      const factory = ctx.factory(s.blobSize);
      const count = concurrency === 1 ? s.pushBlobsC1 : s.pushBlobsC4;
      return withClient(server, concurrency, async (client) => {
        const result = await runOps({ count, concurrency, maxMs: s.sampleMaxMs }, () => pushBlobMonolithic(client, 'bench/push', factory.make()));
        throwIfFailed(id, result);
        return { mibps: mibPerSec(result.done * factory.size, result.elapsedMs) };
      });
    },
  };
}

const chunkedScenario: Scenario = {
  id: 'chunked',
  title: 'Chunked blob push (POST, PATCH 8 MiB chunks, PUT ?digest=), concurrency 1',
  metrics: [{ key: 'mibps', label: 'throughput', unit: 'MiB/s', better: 'higher', digits: 1 }],
  async measure(server, _state, ctx) {
    const s = ctx.options.sizes;
    const factory = ctx.factory(s.blobSize);
    return withClient(server, 1, async (client) => {
      const result = await runOps({ count: s.chunkedBlobs, concurrency: 1, maxMs: s.sampleMaxMs }, () => {
        const blob = factory.make();
        return pushBlobChunked(client, 'bench/chunked', blob.digest, blob.chunks(s.chunkSize));
      });
      throwIfFailed('chunked', result);
      return { mibps: mibPerSec(result.done * factory.size, result.elapsedMs) };
    });
  },
};

const pullBlobs = new WeakMap<Server, Promise<string[]>>();

async function pushPullBlobs(server: Server, ctx: Context): Promise<string[]> {
  const s = ctx.options.sizes;
  const factory = ctx.factory(s.blobSize);
  const digests: string[] = [];
  await withClient(server, 4, async (client) => {
    const result = await runOps({ count: s.pullBlobs, concurrency: 4, maxMs: s.setupMaxMs }, async () => {
      const blob = factory.make();
      await pushBlobMonolithic(client, 'bench/pull', blob);
      digests.push(blob.digest);
    });
    throwIfFailed('pull setup', result);
    // Untimed warm-up, as the manifest and image scenarios have: Portcullis' first pulls after a
    // burst of pushes ran slower (server CPU per 8 pulls 440-510 ms, later ~300; distribution's
    // did not), and A-B-B-A order always gave it the first sample.
    const warmup = await runOps({ count: s.pullBlobs * 2, concurrency: 1, maxMs: s.setupMaxMs }, (i) => pullBlob(client, 'bench/pull', digests[i % digests.length]!));
    throwIfFailed('pull warm-up', warmup);
  });
  return digests;
}

function pullScenario(id: string, concurrency: number): Scenario<string[]> {
  return {
    id,
    title: `Blob pull (GET, ${concurrency === 1 ? 'one at a time' : `${concurrency} in parallel`})`,
    metrics: [{ key: 'mibps', label: 'throughput', unit: 'MiB/s', better: 'higher', digits: 1 }],
    setup(server, ctx) {
      // pull-c1 and pull-c8 read the same blobs: push them once per server.
      let digests = pullBlobs.get(server);
      if (!digests) {
        digests = pushPullBlobs(server, ctx);
        pullBlobs.set(server, digests);
      }
      return digests;
    },
    async measure(server, digests, ctx) {
      const s = ctx.options.sizes;
      const count = concurrency === 1 ? s.pullsC1 : s.pullsC8;
      return withClient(server, concurrency, async (client) => {
        let bytes = 0;
        const result = await runOps({ count, concurrency, maxMs: s.sampleMaxMs }, async (i) => {
          const got = await pullBlob(client, 'bench/pull', digests[i % digests.length]!);
          if (got !== s.blobSize) throw new Error(`pulled ${got} bytes, expected ${s.blobSize}`);
          bytes += got;
        });
        throwIfFailed(id, result);
        return { mibps: mibPerSec(bytes, result.elapsedMs) };
      });
    },
  };
}

const imagesScenario: Scenario = {
  id: 'images',
  title: 'Small-image push (3 × 16 KiB layers + config + manifest), concurrency 4',
  metrics: [{ key: 'ips', label: 'images', unit: 'images/s', better: 'higher', digits: 1 }],
  // Warm-up, as for the manifest scenario: the first pushes into a fresh server measure its JIT
  // (a first 200-image sample ran at ~70% of the later ones), not the steady state.
  async setup(server, ctx) {
    const images = Array.from({ length: Math.ceil(ctx.options.sizes.images / 2) }, () => makeSmallImage(3, 16 * 1024));
    await withClient(server, 4, async (client) => {
      const result = await runOps({ count: images.length, concurrency: 4, maxMs: ctx.options.sizes.setupMaxMs }, (i) => pushSmallImage(client, `bench/warmup/${i % 16}`, images[i]!, `w-${i}`));
      throwIfFailed('images warm-up', result);
    });
  },
  async measure(server, _state, ctx) {
    const s = ctx.options.sizes;
    // Content is made before the clock starts.
    const images = Array.from({ length: s.images }, () => makeSmallImage(3, 16 * 1024));
    const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    return withClient(server, 4, async (client) => {
      const result = await runOps({ count: images.length, concurrency: 4, maxMs: s.sampleMaxMs }, (i) =>
        pushSmallImage(client, `bench/images/${i % 16}`, images[i]!, `${run}-${i}`),
      );
      throwIfFailed('images', result);
      return { ips: (result.done / result.elapsedMs) * 1000 };
    });
  },
};

interface ManifestState {
  digest: string;
  length: number;
}

const manifestsScenario: Scenario<ManifestState> = {
  id: 'manifests',
  title: 'Manifest GET by tag / GET by digest / HEAD, 32 keep-alive connections',
  metrics: [
    { key: 'tagRps', label: 'GET by tag', unit: 'req/s', better: 'higher', digits: 0 },
    { key: 'tagP99', label: 'GET by tag p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'digestRps', label: 'GET by digest', unit: 'req/s', better: 'higher', digits: 0 },
    { key: 'digestP99', label: 'GET by digest p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'headRps', label: 'HEAD by tag', unit: 'req/s', better: 'higher', digits: 0 },
    { key: 'headP99', label: 'HEAD by tag p99', unit: 'ms', better: 'lower', digits: 2 },
  ],
  async setup(server) {
    const image = makeSmallImage(3, 16 * 1024);
    await withClient(server, 1, (client) => pushSmallImage(client, 'bench/manifests', image, 'latest'));
    return { digest: image.manifestDigest, length: image.manifest.length };
  },
  async measure(server, state, ctx) {
    const s = ctx.options.sizes;
    const values: Record<string, number> = {};
    const modes: { key: string; method: 'GET' | 'HEAD'; ref: string }[] = [
      { key: 'tag', method: 'GET', ref: 'latest' },
      { key: 'digest', method: 'GET', ref: state.digest },
      { key: 'head', method: 'HEAD', ref: 'latest' },
    ];
    for (const mode of modes) {
      const result = await withClient(server, 32, async (client) => {
        const url = new URL(`/v2/bench/manifests/manifests/${mode.ref}`, client.base);
        const op = async () => {
          const res = await request({ method: mode.method, url, agent: client.agent, headers: { accept: MANIFEST_ACCEPT }, read: 'drain', timeoutMs: 30_000 });
          if (res.status !== 200) throw new Error(`${mode.method} manifest ${mode.ref}: HTTP ${res.status}`);
          if (mode.method === 'GET' && res.bytes !== state.length) throw new Error(`GET manifest: ${res.bytes} bytes, expected ${state.length}`);
          if (mode.method === 'HEAD' && res.headers['docker-content-digest'] && res.headers['docker-content-digest'] !== state.digest) {
            throw new Error('HEAD manifest: wrong Docker-Content-Digest');
          }
        };
        // Warm-up opens the connections and lets both JITs settle; not recorded.
        await loadTest({ connections: 32, durationMs: s.manifestWarmupMs, maxRequests: 1_000_000 }, op);
        return loadTest({ connections: 32, durationMs: s.manifestDurationMs, maxRequests: 2_000_000 }, op);
      });
      checkLoad(`manifest ${mode.key}`, result);
      values[`${mode.key}Rps`] = result.reqPerSec;
      values[`${mode.key}P99`] = result.p99Ms;
    }
    return values;
  },
};

function checkLoad(what: string, result: LoadResult): void {
  if (result.failed > 0) throw new Error(`${what}: ${result.failed} request(s) failed; first: ${result.firstError?.message}`);
  if (result.requests === 0) throw new Error(`${what}: no request completed`);
}

/** Follows Link rel="next" from `first`, collecting `key` arrays; bounded to `maxPages`. */
async function walkList(client: Client, first: URL, key: 'tags' | 'repositories', maxPages: number): Promise<{ items: number; pages: number }> {
  let url: URL | undefined = first;
  let items = 0;
  let pages = 0;
  while (url) {
    if (++pages > maxPages) throw new Error(`${first.pathname}: more than ${maxPages} pages (pagination loop?)`);
    const res = await request({ method: 'GET', url, agent: client.agent, timeoutMs: 60_000 });
    expectStatus(`GET ${url.pathname}${url.search}`, res, 200);
    const list = (JSON.parse(res.body.toString()) as Record<string, unknown>)[key];
    if (!Array.isArray(list)) throw new Error(`GET ${url.pathname}: no "${key}" array`);
    items += list.length;
    url = nextLink(res.headers.link, client.base);
    if (url && list.length === 0) throw new Error(`GET ${first.pathname}: empty page with a next link`);
  }
  return { items, pages };
}

async function repeatFor(ms: number, minTimes: number, maxTimes: number, fn: () => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  const end = performance.now() + ms;
  while (times.length < maxTimes && (times.length < minTimes || performance.now() < end)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

const tagsScenario: Scenario = {
  id: 'tags',
  title: 'Tag list of one repository with 1,000 tags (full list, sequential)',
  metrics: [
    { key: 'ms', label: 'full list (median)', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'rps', label: 'full lists', unit: 'lists/s', better: 'higher', digits: 0 },
  ],
  async setup(server, ctx) {
    const s = ctx.options.sizes;
    const image = makeSmallImage(1, 1024);
    await withClient(server, 8, async (client) => {
      await pushSmallImage(client, 'bench/tags', image, 'base');
      const result = await runOps({ count: s.tags, concurrency: 8, maxMs: s.setupMaxMs }, (i) => putManifest(client, 'bench/tags', `t${String(i).padStart(4, '0')}`, image.manifest));
      throwIfFailed('tags setup', result);
    });
  },
  async measure(server, _state, ctx) {
    const s = ctx.options.sizes;
    return withClient(server, 1, async (client) => {
      const first = new URL('/v2/bench/tags/tags/list', client.base);
      const t0 = performance.now();
      const times = await repeatFor(s.tagListMs, 3, 100_000, async () => {
        const { items } = await walkList(client, first, 'tags', 1_000);
        if (items !== s.tags + 1) throw new Error(`tag list has ${items} tags, expected ${s.tags + 1}`);
      });
      const total = performance.now() - t0;
      times.sort((a, b) => a - b);
      return { ms: times[times.length >> 1]!, rps: (times.length / total) * 1000 };
    });
  },
};

const catalogScenario: Scenario = {
  id: 'catalog',
  title: 'Catalog walk of 1,000 repositories, n=100, following Link headers',
  metrics: [{ key: 'ms', label: 'full walk (median)', unit: 'ms', better: 'lower', digits: 1 }],
  async setup(server, ctx) {
    const s = ctx.options.sizes;
    const layer = Buffer.alloc(1024, 7);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
      }),
    );
    await withClient(server, 8, async (client) => {
      const result = await runOps({ count: s.repos, concurrency: 8, maxMs: s.setupMaxMs }, async (i) => {
        const repo = `catalog/r${String(i).padStart(4, '0')}`;
        await pushSmallBlob(client, repo, layer);
        await pushSmallBlob(client, repo, config);
        await putManifest(client, repo, 'v1', manifest);
      });
      throwIfFailed('catalog setup', result);
    });
  },
  async measure(server, _state, ctx) {
    const s = ctx.options.sizes;
    return withClient(server, 1, async (client) => {
      const first = new URL(`/v2/_catalog?n=${s.catalogPageSize}`, client.base);
      const times = await repeatFor(s.catalogWalkMs, 3, 1_000, async () => {
        const { items, pages } = await walkList(client, first, 'repositories', 10_000);
        if (items < s.repos) throw new Error(`catalog walk found ${items} repositories, expected at least ${s.repos}`);
        if (pages < Math.ceil(s.repos / s.catalogPageSize)) throw new Error(`catalog walk took only ${pages} pages: n= ignored?`);
      });
      times.sort((a, b) => a - b);
      return { ms: times[times.length >> 1]! };
    });
  },
};

export const RSS_LIMIT_BYTES = 200 * 1000 * 1000;

const rssScenario: Scenario = {
  id: 'rss',
  title: 'Peak RSS of the server process while pushing then pulling one 1 GiB blob (fresh process)',
  fresh: true,
  metrics: [
    { key: 'hwmMB', label: 'peak RSS (VmHWM)', unit: 'MB', better: 'lower', digits: 1 },
    { key: 'idleMB', label: 'RSS before the push', unit: 'MB', better: 'lower', digits: 1 },
    { key: 'pushMibps', label: '1 GiB push', unit: 'MiB/s', better: 'higher', digits: 1 },
    { key: 'pullMibps', label: '1 GiB pull', unit: 'MiB/s', better: 'higher', digits: 1 },
  ],
  async measure(server, _state, ctx) {
    const s = ctx.options.sizes;
    const factory = ctx.factory(s.rssBlobUnit, s.rssBlobRepeat);
    const blob = factory.make();
    const idle = await readRss(server.pid);
    let maxSampled = idle.rss;
    const sampler = new AbortController();
    const sampling = (async () => {
      try {
        for await (const _ of every(50, undefined, { signal: sampler.signal })) {
          maxSampled = Math.max(maxSampled, (await readRss(server.pid)).rss);
        }
      } catch {
        // aborted, or the process is gone
      }
    })();
    try {
      return await withClient(server, 1, async (client) => {
        let t0 = performance.now();
        await pushBlobMonolithic(client, 'bench/rss', blob);
        const pushMs = performance.now() - t0;
        t0 = performance.now();
        const bytes = await pullBlob(client, 'bench/rss', blob.digest);
        const pullMs = performance.now() - t0;
        if (bytes !== factory.size) throw new Error(`pulled ${bytes} bytes, expected ${factory.size}`);
        const { hwm } = await readRss(server.pid);
        return {
          hwmMB: Math.max(hwm, maxSampled) / 1e6,
          idleMB: idle.rss / 1e6,
          pushMibps: mibPerSec(factory.size, pushMs),
          pullMibps: mibPerSec(factory.size, pullMs),
        };
      });
    } finally {
      sampler.abort();
      await sampling;
    }
  },
  check(target, values) {
    if (target === 'portcullis' && values.hwmMB! * 1e6 >= RSS_LIMIT_BYTES) return `Portcullis peak RSS ${values.hwmMB!.toFixed(1)} MB is not under the 200 MB limit`;
    return undefined;
  },
};

export const SCENARIOS: Scenario<any>[] = [
  pushScenario('push-c1', 1),
  pushScenario('push-c4', 4),
  chunkedScenario,
  pullScenario('pull-c1', 1),
  pullScenario('pull-c8', 8),
  imagesScenario,
  manifestsScenario,
  tagsScenario,
  catalogScenario,
  rssScenario,
];

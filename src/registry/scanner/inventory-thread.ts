/**
 * The inventory stage in a worker thread, so that a scan never holds the server's event loop (tar
 * parsing, analyzers and secret rules run there) and a hostile image that gets past the walker's
 * limits can at worst exhaust the worker's own heap (`resourceLimits`), not the registry's.
 *
 * The layers' bytes still come from the main thread's blob store (any backend): the worker asks for
 * a layer when the walker reaches it, the main thread streams it over with transferred buffers and
 * a small credit window (backpressure), and the result comes back by structured clone.
 *
 * A worker that finished a scan (result or walker failure) is kept for the next one: starting a
 * thread loads the analyzers into a fresh isolate, which cost ~70 ms of CPU per scan, three times
 * what the whole push of a small image costs. Every message carries its scan's number, so a late
 * chunk or acknowledgement of a finished scan never reaches the next. A worker that was aborted,
 * crashed or hit its heap limit is terminated; idle ones leave after {@link IDLE_MS}.
 *
 * This file is both sides: `inventoryInThread` (main) and the worker entry (when loaded as one).
 */
import { Readable } from 'node:stream';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { LayerError, type LayerErrorCode } from './inventory/errors.ts';
import { inventoryImage, type InventoryResult } from './inventory/inventory.ts';
import type { WalkLimits } from './inventory/limits.ts';
import type { LayerInput, LayerSource } from './inventory/walker.ts';

type ToWorker = { job: number } & (
  | { type: 'start'; layers: Array<{ digest: string; mediaType: string; diffId?: string }>; limits?: Partial<WalkLimits>; secretsKey?: string }
  | { type: 'chunk'; index: number; data: ArrayBuffer }
  | { type: 'end'; index: number }
  | { type: 'error'; index: number; message: string }
);

type FromWorker = { job: number } & (
  | { type: 'open'; index: number }
  | { type: 'ack'; index: number }
  | { type: 'done'; result: InventoryResult }
  | { type: 'failed'; error: { name: string; message: string; code?: LayerErrorCode; layerDigest?: string; layerIndex?: number; entryPath?: string } }
);

/** An idle worker leaves after this long (its heap counts in the server's RSS). */
const IDLE_MS = 30_000;
/** Idle workers kept, per heap limit. */
const IDLE_MAX = 4;
const idle = new Map<number, Array<{ worker: Worker; timer: NodeJS.Timeout }>>();
let jobs = 0;

function takeWorker(maxMemoryMb: number): Worker {
  const kept = idle.get(maxMemoryMb)?.pop();
  if (kept) {
    clearTimeout(kept.timer);
    kept.worker.ref();
    return kept.worker;
  }
  const worker = new Worker(new URL(import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: maxMemoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, maxMemoryMb / 16)) } });
  // While a scan runs its own listeners report errors; an idle worker that dies is forgotten.
  worker.on('error', () => undefined);
  worker.once('exit', () => {
    const list = idle.get(maxMemoryMb);
    const at = list?.findIndex((e) => e.worker === worker) ?? -1;
    if (at >= 0) {
      clearTimeout(list![at]!.timer);
      list!.splice(at, 1);
    }
  });
  return worker;
}

function keepWorker(worker: Worker, maxMemoryMb: number): void {
  const list = idle.get(maxMemoryMb) ?? [];
  if (list.length >= IDLE_MAX) {
    void worker.terminate();
    return;
  }
  // An idle worker must not keep the process alive.
  worker.unref();
  const entry = {
    worker,
    timer: setTimeout(() => void worker.terminate(), IDLE_MS).unref(),
  };
  list.push(entry);
  idle.set(maxMemoryMb, list);
}

/** Chunks in flight per layer before the main thread waits for the worker. */
const WINDOW = 16;

export interface ThreadOptions {
  limits?: Partial<WalkLimits>;
  secretsKey?: string;
  signal?: AbortSignal;
  /** Heap of the worker (MiB). */
  maxMemoryMb: number;
}

/** `inventoryImage` in a worker thread; rejects like it (LayerError with a code), and with `resource-limit` when the worker runs out of memory. */
export function inventoryInThread(layers: LayerInput[], options: ThreadOptions): Promise<InventoryResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new LayerError('aborted', 'the scan was aborted'));
    const worker = takeWorker(options.maxMemoryMb);
    const job = ++jobs;
    const sources = new Map<number, { stream: Readable; inflight: number }>();
    let settled = false;
    /** `reusable`: the worker finished this scan normally and may take the next. */
    const finish = (fn: () => void, reusable = false) => {
      if (settled) return;
      settled = true;
      for (const s of sources.values()) s.stream.destroy();
      options.signal?.removeEventListener('abort', onAbort);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (reusable) keepWorker(worker, options.maxMemoryMb);
      else void worker.terminate();
      fn();
    };
    const onAbort = () => finish(() => reject(new LayerError('aborted', 'the scan was aborted')));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const send = (m: ToWorker, transfer?: ArrayBuffer[]) => {
      if (!settled) worker.postMessage(m, transfer);
    };
    const open = async (index: number) => {
      const layer = layers[index];
      try {
        if (!layer) throw new Error(`no layer ${index}`);
        const source: LayerSource = layer.stream ?? (await layer.open!());
        const stream = source instanceof Readable ? source : Readable.from(source);
        const entry = { stream, inflight: 0 };
        sources.set(index, entry);
        stream.on('data', (chunk: Buffer) => {
          const data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer;
          send({ job, type: 'chunk', index, data }, [data]);
          if (++entry.inflight >= WINDOW) stream.pause();
        });
        stream.once('end', () => send({ job, type: 'end', index }));
        stream.once('error', (error) => send({ job, type: 'error', index, message: error.message }));
      } catch (error) {
        send({ job, type: 'error', index, message: (error as Error).message });
      }
    };
    const onMessage = (m: FromWorker) => {
      if (m.job !== job) return;
      switch (m.type) {
        case 'open':
          void open(m.index);
          break;
        case 'ack': {
          const s = sources.get(m.index);
          if (s && --s.inflight < WINDOW && s.stream.isPaused()) s.stream.resume();
          break;
        }
        case 'done':
          finish(() => resolve(m.result), true);
          break;
        case 'failed': {
          const e = m.error;
          finish(() =>
            reject(
              e.code
                ? new LayerError(e.code, e.message, { ...(e.layerDigest !== undefined ? { layerDigest: e.layerDigest } : {}), ...(e.layerIndex !== undefined ? { layerIndex: e.layerIndex } : {}), ...(e.entryPath !== undefined ? { entryPath: e.entryPath } : {}) })
                : new Error(e.message),
            ),
            // A walker's typed failure leaves the worker sound; anything else does not.
            e.code !== undefined,
          );
          break;
        }
      }
    };
    const onError = (error: Error & { code?: string }) => {
      const oom = error.code === 'ERR_WORKER_OUT_OF_MEMORY';
      finish(() => reject(oom ? new LayerError('retained-limit', `resource-limit: the scan needed more than ${options.maxMemoryMb} MiB of memory`) : error));
    };
    const onExit = (code: number) => finish(() => reject(new Error(`the scan thread exited (${code})`)));
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    send({
      job,
      type: 'start',
      layers: layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, ...(l.diffId !== undefined ? { diffId: l.diffId } : {}) })),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.secretsKey !== undefined ? { secretsKey: options.secretsKey } : {}),
    });
  });
}

/** The worker side: layers arrive as messages, the walk runs here. */
function serveInventory(port: NonNullable<typeof parentPort>): void {
  let streams = new Map<number, Readable>();
  /** Chunks received but not yet wanted by the walker: acknowledged when it reads on. */
  let owed = new Map<number, number>();
  let current = 0;
  port.on('message', (m: ToWorker) => {
    if (m.type === 'start') {
      // A new scan: whatever the previous one left open is dropped.
      for (const stream of streams.values()) stream.destroy();
      streams = new Map();
      owed = new Map();
      current = m.job;
      const job = m.job;
      const own = { streams, owed };
      const layers: LayerInput[] = m.layers.map((l, index) => ({
        ...l,
        open: () => {
          const stream = new Readable({
            highWaterMark: 4 * 1024 * 1024,
            read: () => {
              for (let n = own.owed.get(index) ?? 0; n > 0; n--) port.postMessage({ job, type: 'ack', index } satisfies FromWorker);
              own.owed.set(index, 0);
            },
          });
          own.streams.set(index, stream);
          port.postMessage({ job, type: 'open', index } satisfies FromWorker);
          return stream;
        },
      }));
      inventoryImage(layers, { ...(m.limits ? { limits: m.limits } : {}), secrets: m.secretsKey !== undefined ? { key: m.secretsKey } : true })
        .then((result) => port.postMessage({ job, type: 'done', result } satisfies FromWorker))
        .catch((error: unknown) => {
          const e = error as LayerError;
          port.postMessage({ job, type: 'failed', error: { name: e?.name ?? 'Error', message: e?.message ?? String(error), ...(e instanceof LayerError ? { code: e.code, ...(e.layerDigest !== undefined ? { layerDigest: e.layerDigest } : {}), ...(e.layerIndex !== undefined ? { layerIndex: e.layerIndex } : {}), ...(e.entryPath !== undefined ? { entryPath: e.entryPath } : {}) } : {}) } } satisfies FromWorker);
        });
      return;
    }
    const stream = m.job === current ? streams.get(m.index) : undefined;
    if (!stream) return;
    if (m.type === 'chunk') {
      if (stream.push(Buffer.from(m.data))) port.postMessage({ job: m.job, type: 'ack', index: m.index } satisfies FromWorker);
      else owed.set(m.index, (owed.get(m.index) ?? 0) + 1);
    } else if (m.type === 'end') stream.push(null);
    else stream.destroy(new LayerError('read-failed', `the layer could not be read: ${m.message}`));
  });
}

if (!isMainThread && parentPort) serveInventory(parentPort);

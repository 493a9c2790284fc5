/**
 * The inventory stage in a worker thread, so that a scan never holds the server's event loop (tar
 * parsing, analyzers and secret rules run there) and a hostile image that gets past the walker's
 * limits can at worst exhaust the worker's own heap (`resourceLimits`), not the registry's.
 *
 * The layers' bytes still come from the main thread's blob store (any backend): the worker asks for
 * a layer when the walker reaches it, the main thread streams it over with transferred buffers and
 * a small credit window (backpressure), and the result comes back by structured clone.
 *
 * This file is both sides: `inventoryInThread` (main) and the worker entry (when loaded as one).
 */
import { Readable } from 'node:stream';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { LayerError, type LayerErrorCode } from './inventory/errors.ts';
import { inventoryImage, type InventoryResult } from './inventory/inventory.ts';
import type { WalkLimits } from './inventory/limits.ts';
import type { LayerInput, LayerSource } from './inventory/walker.ts';

type ToWorker =
  | { type: 'start'; layers: Array<{ digest: string; mediaType: string; diffId?: string }>; limits?: Partial<WalkLimits>; secretsKey?: string }
  | { type: 'chunk'; index: number; data: ArrayBuffer }
  | { type: 'end'; index: number }
  | { type: 'error'; index: number; message: string };

type FromWorker =
  | { type: 'open'; index: number }
  | { type: 'ack'; index: number }
  | { type: 'done'; result: InventoryResult }
  | { type: 'failed'; error: { name: string; message: string; code?: LayerErrorCode; layerDigest?: string; layerIndex?: number; entryPath?: string } };

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
    const worker = new Worker(new URL(import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: options.maxMemoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, options.maxMemoryMb / 16)) } });
    const sources = new Map<number, { stream: Readable; inflight: number }>();
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const s of sources.values()) s.stream.destroy();
      options.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      fn();
    };
    const onAbort = () => finish(() => reject(new LayerError('aborted', 'the scan was aborted')));
    if (options.signal?.aborted) return onAbort();
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
          send({ type: 'chunk', index, data }, [data]);
          if (++entry.inflight >= WINDOW) stream.pause();
        });
        stream.once('end', () => send({ type: 'end', index }));
        stream.once('error', (error) => send({ type: 'error', index, message: error.message }));
      } catch (error) {
        send({ type: 'error', index, message: (error as Error).message });
      }
    };
    worker.on('message', (m: FromWorker) => {
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
          finish(() => resolve(m.result));
          break;
        case 'failed': {
          const e = m.error;
          finish(() =>
            reject(
              e.code
                ? new LayerError(e.code, e.message, { ...(e.layerDigest !== undefined ? { layerDigest: e.layerDigest } : {}), ...(e.layerIndex !== undefined ? { layerIndex: e.layerIndex } : {}), ...(e.entryPath !== undefined ? { entryPath: e.entryPath } : {}) })
                : new Error(e.message),
            ),
          );
          break;
        }
      }
    });
    worker.on('error', (error: Error & { code?: string }) => {
      const oom = error.code === 'ERR_WORKER_OUT_OF_MEMORY';
      finish(() => reject(oom ? new LayerError('retained-limit', `resource-limit: the scan needed more than ${options.maxMemoryMb} MiB of memory`) : error));
    });
    worker.on('exit', (code) => finish(() => reject(new Error(`the scan thread exited (${code})`))));
    send({
      type: 'start',
      layers: layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, ...(l.diffId !== undefined ? { diffId: l.diffId } : {}) })),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.secretsKey !== undefined ? { secretsKey: options.secretsKey } : {}),
    });
  });
}

/** The worker side: layers arrive as messages, the walk runs here. */
function serveInventory(port: NonNullable<typeof parentPort>): void {
  const streams = new Map<number, Readable>();
  /** Chunks received but not yet wanted by the walker: acknowledged when it reads on. */
  const owed = new Map<number, number>();
  port.on('message', (m: ToWorker) => {
    if (m.type === 'start') {
      const layers: LayerInput[] = m.layers.map((l, index) => ({
        ...l,
        open: () => {
          const stream = new Readable({
            highWaterMark: 4 * 1024 * 1024,
            read: () => {
              for (let n = owed.get(index) ?? 0; n > 0; n--) port.postMessage({ type: 'ack', index } satisfies FromWorker);
              owed.set(index, 0);
            },
          });
          streams.set(index, stream);
          port.postMessage({ type: 'open', index } satisfies FromWorker);
          return stream;
        },
      }));
      inventoryImage(layers, { ...(m.limits ? { limits: m.limits } : {}), secrets: m.secretsKey !== undefined ? { key: m.secretsKey } : true })
        .then((result) => port.postMessage({ type: 'done', result } satisfies FromWorker))
        .catch((error: unknown) => {
          const e = error as LayerError;
          port.postMessage({ type: 'failed', error: { name: e?.name ?? 'Error', message: e?.message ?? String(error), ...(e instanceof LayerError ? { code: e.code, ...(e.layerDigest !== undefined ? { layerDigest: e.layerDigest } : {}), ...(e.layerIndex !== undefined ? { layerIndex: e.layerIndex } : {}), ...(e.entryPath !== undefined ? { entryPath: e.entryPath } : {}) } : {}) } } satisfies FromWorker);
        });
      return;
    }
    const stream = streams.get(m.index);
    if (!stream) return;
    if (m.type === 'chunk') {
      if (stream.push(Buffer.from(m.data))) port.postMessage({ type: 'ack', index: m.index } satisfies FromWorker);
      else owed.set(m.index, (owed.get(m.index) ?? 0) + 1);
    } else if (m.type === 'end') stream.push(null);
    else stream.destroy(new LayerError('read-failed', `the layer could not be read: ${m.message}`));
  });
}

if (!isMainThread && parentPort) serveInventory(parentPort);

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Frees the buffers that streamed request bodies leave behind.
 *
 * node:http hands every body chunk over as a fresh copy of up to 64 KiB outside the V8 heap. Such
 * a copy is freed only when a scavenge collects its small wrapper object, and a blob streaming
 * into a file allocates little else, so the young generation fills slowly while the copies pile
 * up: pushing a 1 GiB blob with a 1 MiB file write buffer peaked at 243-249 MB RSS, and at
 * 178-191 MB with a scavenge after every 8 MiB received (docs/benchmarks.md). A scavenge of a
 * young generation holding almost nothing alive costs well under a millisecond.
 */
export class BodyBufferReclaimer {
  readonly #everyBytes: number;
  readonly #collect: () => void;
  #received = 0;

  /** `collect` runs one young-generation collection; the default asks V8 for one. */
  constructor(everyBytes: number, collect: () => void = scavenge) {
    this.#everyBytes = everyBytes;
    this.#collect = collect;
  }

  /** Counts `bytes` of request body received; collects once `everyBytes` have arrived. */
  received(bytes: number): void {
    this.#received += bytes;
    if (this.#received < this.#everyBytes) return;
    this.#received = 0;
    this.#collect();
  }
}

/** One per process: the buffers belong to the process, whichever upload received them. */
export const bodyBuffers = new BodyBufferReclaimer(8 * 1024 * 1024);

let minorGc: ((options: { type: 'minor'; execution: 'sync' }) => void) | null | undefined;

function scavenge(): void {
  minorGc ??= loadGc();
  minorGc?.({ type: 'minor', execution: 'sync' });
}

/**
 * V8's gc() without exposing it to the whole program: a context created while --expose-gc is
 * set gets the function (it collects the whole isolate), and the flag is cleared again at once.
 * Unavailable (null) only if V8 refuses; uploads then simply rely on V8's own heuristics.
 */
function loadGc(): typeof minorGc {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    return typeof gc === 'function' ? (gc as NonNullable<typeof minorGc>) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

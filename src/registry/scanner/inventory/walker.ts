/**
 * The layer walker: streams an image's layers in order (gzip, zstd or plain tar, sniffed from the
 * bytes), computes each layer's diff ID on the way, applies OCI whiteouts and opaque directories
 * and builds the final view of only the files analyzers asked for. Nothing touches the disk and
 * no layer is ever buffered: a file's content is read into memory only when an analyzer selected
 * its path (before reading) and it fits that analyzer's size limit; a parsed result, not the
 * content, is what the final view keeps.
 *
 * OCI rules applied (image-spec layer.md): whiteouts `.wh.<name>` and opaque markers
 * `.wh..wh..opq` apply to lower layers only, wherever they sit in the tar; an entry replaces what
 * lower layers had at its path unless both are directories; later duplicates in one layer win.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import { LayerError, type InventoryWarning, type WarningCode } from './errors.ts';
import { resolveLimits, type WalkLimits } from './limits.ts';
import { ancestors, basename, dirname, joinPath, normalizeEntryPath, resolveInRoot } from './paths.ts';
import { createDecoder, declaredCompression, sniffCompression, type Compression } from './decompress.ts';
import { TarReader, type TarEntryConsumer, type TarEntryHeader } from './tar.ts';

export type LayerSource = Readable | AsyncIterable<Uint8Array>;

export interface LayerInput {
  /** Digest of the blob as stored (manifest layer descriptor). */
  digest: string;
  /** Media type from the manifest; the content is sniffed anyway. */
  mediaType: string;
  /** Diff ID the image config declares for this layer (`rootfs.diff_ids[i]`); checked when given. */
  diffId?: string;
  /** The blob, or a function opening it (called when the walker reaches the layer). */
  stream?: LayerSource;
  open?: () => LayerSource | Promise<LayerSource>;
}

export interface EntryInfo {
  type: 'file' | 'symlink';
  size: number;
  mode: number;
}

export interface FileContext {
  /** Image-root-relative path of the file (canonical: parent symlinks resolved). */
  path: string;
  layerIndex: number;
  layerDigest: string;
  warn(code: WarningCode, message: string): void;
}

/** A streaming consumer for files that are never buffered whole (e.g. Go binaries). */
export interface FileSink {
  /** Returns false when it needs no more bytes of this file. */
  write(chunk: Buffer): boolean;
  /** The result to keep on the file's node (undefined: nothing found). */
  end(): unknown;
}

/** What an analyzer wants done with a selected file. */
export interface FileInterest {
  /** Analyzer tag under which the result is found in the final view. */
  tag: string;
  /** Largest file `parse` accepts; larger ones are skipped with a `file-too-large` warning. */
  maxSize?: number;
  /** Parses the whole content; the return value is kept on the node (the content is not). */
  parse?: (content: Buffer, ctx: FileContext) => unknown;
  /** Streaming alternative to `parse`. */
  sink?: (ctx: FileContext) => FileSink;
  /** Keep earlier layers' results for the same path (for attributing records to the layer that introduced them). */
  keepHistory?: boolean;
}

/** Looks at files of every layer, including ones a later layer deletes (secrets live on in the blob). */
export interface LayerInspector {
  select(path: string, info: EntryInfo): { maxSize: number } | undefined;
  inspect(content: Buffer, ctx: FileContext): void;
}

export interface ViewNode {
  type: 'file' | 'symlink';
  /** Canonical image-root-relative path. */
  path: string;
  layerIndex: number;
  size: number;
  mode: number;
  /** Symlink target as stored in the tar. */
  target?: string;
  tag?: string;
  result?: unknown;
  /** Set when `parse` threw; the result is then undefined. */
  error?: string;
  /** Earlier results for this path (oldest first), when the interest asked for history. */
  history?: Array<{ layerIndex: number; result: unknown }>;
  /** Approximate bytes this node keeps alive. */
  retained: number;
}

export interface LayerSummary {
  index: number;
  digest: string;
  mediaType: string;
  /** sha256 of the uncompressed tar, computed while streaming. */
  diffId: string;
  compression: Compression;
  compressedBytes: number;
  uncompressedBytes: number;
  entries: number;
}

export interface WalkOptions {
  select: (path: string, info: EntryInfo) => FileInterest | undefined;
  inspectors?: LayerInspector[];
  limits?: Partial<WalkLimits>;
  /** Also hash the compressed stream and compare it with the layer digest (sha256 only). */
  verifyDigests?: boolean;
  signal?: AbortSignal;
}

export interface TaggedFile {
  /** Path through which the file was selected (a symlink's path when reached through one). */
  path: string;
  node: ViewNode;
}

/** The final view: what is left of the selected files after all layers. */
export class ImageView {
  readonly nodes = new Map<string, ViewNode>();
  readonly layers: LayerSummary[];
  private readonly maxHops: number;

  constructor(layers: LayerSummary[], maxHops: number) {
    this.layers = layers;
    this.maxHops = maxHops;
  }

  /** Resolves a path through the image's symlinks (inside the root only). */
  resolve(path: string): { ok: true; path: string } | { ok: false; reason: string } {
    const r = resolveInRoot(path, (p) => {
      const n = this.nodes.get(p);
      return n?.type === 'symlink' ? n.target : undefined;
    }, this.maxHops);
    return r.ok ? { ok: true, path: r.path } : { ok: false, reason: `symlink loop or more than ${this.maxHops} hops resolving /${path}` };
  }

  /** The file at `path` after following symlinks, if the walker kept it. */
  file(path: string): ViewNode | undefined {
    const r = this.resolve(path);
    if (!r.ok) return undefined;
    const n = this.nodes.get(r.path);
    return n?.type === 'file' ? n : undefined;
  }

  /**
   * Files selected under `tag`, including ones reached through a tagged symlink. Symlinks that
   * cannot be resolved are reported through `warn`.
   */
  tagged(tag: string, warn?: (w: InventoryWarning) => void): TaggedFile[] {
    const out: TaggedFile[] = [];
    const seen = new Set<string>();
    for (const node of this.nodes.values()) {
      if (node.tag !== tag) continue;
      if (node.type === 'file') {
        if (!seen.has(node.path)) out.push({ path: node.path, node });
        seen.add(node.path);
        continue;
      }
      const r = this.resolve(node.path);
      if (!r.ok) {
        warn?.({ code: 'symlink-unresolved', message: r.reason, path: `/${node.path}` });
        continue;
      }
      const target = this.nodes.get(r.path);
      if (target?.type !== 'file' || (target.result === undefined && target.error === undefined)) {
        warn?.({ code: 'symlink-unresolved', message: `/${node.path} points to /${r.path}, which is missing or was not analysed`, path: `/${node.path}` });
        continue;
      }
      if (seen.has(target.path)) continue;
      seen.add(target.path);
      out.push({ path: node.path, node: target });
    }
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return out;
  }

  /** Diff ID of a layer by index. */
  diffId(layerIndex: number): string | undefined {
    return this.layers[layerIndex]?.diffId;
  }
}

export interface WalkResult {
  view: ImageView;
  layers: LayerSummary[];
  warnings: InventoryWarning[];
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Walks all layers in order and returns the final view. Rejects with {@link LayerError}. */
export async function walkLayers(layers: LayerInput[], options: WalkOptions): Promise<WalkResult> {
  const limits = resolveLimits(options.limits);
  const summaries: LayerSummary[] = [];
  const warnings: InventoryWarning[] = [];
  const view = new ImageView(summaries, limits.maxSymlinkHops);
  const state: ImageState = { limits, view, imageEntries: 0, imageBytes: 0, retained: 0, warnings, options };
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    if (options.signal?.aborted) throw new LayerError('aborted', 'scan aborted', { layerIndex: i, layerDigest: layer.digest });
    try {
      summaries.push(await walkLayer(layer, i, state));
    } catch (e) {
      throw toLayerError(e).withLayer(i, layer.digest);
    }
  }
  return { view, layers: summaries, warnings };
}

interface ImageState {
  limits: WalkLimits;
  view: ImageView;
  imageEntries: number;
  imageBytes: number;
  retained: number;
  warnings: InventoryWarning[];
  options: WalkOptions;
}

function toLayerError(e: unknown): LayerError {
  if (e instanceof LayerError) return e;
  const err = e as { code?: string; message?: string } | undefined;
  const message = err?.message ?? String(e);
  const code = err?.code ?? '';
  if (code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(message)) return new LayerError('truncated', `compressed stream ends early: ${message}`, { cause: e });
  if (code.startsWith('Z_') || code.startsWith('ERR_ZSTD') || /incorrect header check|invalid (?:block type|distances?|stored|code)|unknown compression|zstd|checksum/i.test(message)) {
    return new LayerError('corrupt-compression', `corrupt compressed stream: ${message}`, { cause: e });
  }
  if (/unexpected end of data/i.test(message)) return new LayerError('truncated', 'tar stream ends in the middle of the archive', { cause: e });
  if (/invalid tar header|header exceeds max size|invalid header/i.test(message)) return new LayerError('corrupt-tar', `malformed tar: ${message}`, { cause: e });
  return new LayerError('read-failed', `layer could not be read: ${message}`, { cause: e });
}

async function openSource(layer: LayerInput): Promise<LayerSource> {
  if (layer.stream !== undefined) return layer.stream;
  if (layer.open !== undefined) return await layer.open();
  throw new LayerError('read-failed', 'layer has neither stream nor open()');
}

function sha256Of(digest: string): string | undefined {
  return digest.startsWith('sha256:') ? digest.slice(7).toLowerCase() : undefined;
}

/** One layer's pending changes, applied to the view when the layer ends. */
interface LayerDelta {
  nodes: Map<string, ViewNode>;
  /** Paths (and their subtrees) removed from lower layers by whiteouts. */
  removed: Set<string>;
  /** Paths (and their subtrees) of lower layers replaced by entries of this layer. */
  replaced: Set<string>;
  /** Directories whose lower-layer children are hidden. */
  opaque: Set<string>;
  /** Ancestors of delta nodes (over-approximation, for dir-replaced-by-file inside one layer). */
  ancestors: Set<string>;
}

async function walkLayer(layer: LayerInput, index: number, state: ImageState): Promise<LayerSummary> {
  const { limits, options } = state;
  const source = await openSource(layer);
  const diffHash = createHash('sha256');
  const wantDigest = options.verifyDigests ? sha256Of(layer.digest) : undefined;
  const compHash: Hash | undefined = wantDigest === undefined ? undefined : createHash('sha256');
  const counters = { compressed: 0, uncompressed: 0, compression: 'none' as Compression };
  const declared = declaredCompression(layer.mediaType);

  const delta: LayerDelta = { nodes: new Map(), removed: new Set(), replaced: new Set(), opaque: new Set(), ancestors: new Set() };
  const walker = new EntryHandler(layer, index, state, delta);
  const reader = new TarReader((h) => walker.onEntry(h));
  const chunks = decodedChunks(source, counters, compHash, (kind) => {
    if (declared !== undefined && declared !== kind) {
      state.warnings.push({
        code: 'media-type-mismatch',
        message: `layer ${index} is labelled ${layer.mediaType} but holds ${kind === 'none' ? 'an uncompressed tar' : kind}; decoded as ${kind}`,
        layerDigest: layer.digest,
      });
    }
  });
  try {
    for await (const chunk of chunks) {
      counters.uncompressed += chunk.length;
      state.imageBytes += chunk.length;
      if (counters.uncompressed > limits.maxLayerBytes) {
        throw new LayerError('size-limit', `layer decompresses to more than ${limits.maxLayerBytes} bytes`);
      }
      if (state.imageBytes > limits.maxImageBytes) {
        throw new LayerError('size-limit', `image decompresses to more than ${limits.maxImageBytes} bytes`);
      }
      if (counters.compression !== 'none' && counters.uncompressed > limits.compressionRatioFloor
        && counters.uncompressed > limits.maxCompressionRatio * Math.max(counters.compressed, 1)) {
        throw new LayerError('decompression-bomb', `layer expands more than ${limits.maxCompressionRatio}x (${counters.compressed} compressed bytes gave over ${counters.uncompressed})`);
      }
      if (options.signal?.aborted) throw new LayerError('aborted', 'scan aborted');
      diffHash.update(chunk);
      await reader.write(chunk);
    }
    reader.end();
  } catch (e) {
    if (typeof (source as Readable).destroy === 'function') (source as Readable).destroy();
    throw toLayerError(e);
  }

  const diffId = `sha256:${diffHash.digest('hex')}`;
  if (layer.diffId !== undefined && layer.diffId !== diffId) {
    throw new LayerError('diffid-mismatch', `uncompressed digest ${diffId} differs from the diff ID ${layer.diffId} in the image config`);
  }
  if (compHash !== undefined && wantDigest !== undefined) {
    const got = compHash.digest('hex');
    if (got !== wantDigest) throw new LayerError('digest-mismatch', `blob digest sha256:${got} differs from ${layer.digest}`);
  }
  applyDelta(state, delta);
  return {
    index,
    digest: layer.digest,
    mediaType: layer.mediaType,
    diffId,
    compression: counters.compression,
    compressedBytes: counters.compressed,
    uncompressedBytes: counters.uncompressed,
    entries: reader.entries,
  };
}

/** Yields the decompressed bytes of a layer, sniffing the compression from its first bytes. */
async function* decodedChunks(
  source: LayerSource,
  counters: { compressed: number; compression: Compression },
  compHash: Hash | undefined,
  onKind: (kind: Compression) => void,
): AsyncGenerator<Buffer> {
  const it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const headParts: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < 6) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = toBuffer(r.value);
    headParts.push(b);
    headLen += b.length;
  }
  const head = Buffer.concat(headParts, headLen);
  counters.compressed += head.length;
  compHash?.update(head);
  const sniffed = sniffCompression(head);
  if (sniffed === 'bzip2' || sniffed === 'xz') {
    throw new LayerError('unsupported-compression', `layer is ${sniffed}-compressed; only gzip, zstd and uncompressed tar are supported`);
  }
  const kind: Compression = sniffed === 'gzip' || sniffed === 'zstd' ? sniffed : 'none';
  counters.compression = kind;
  onKind(kind);

  async function* raw(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      const b = toBuffer(r.value);
      counters.compressed += b.length;
      compHash?.update(b);
      yield b;
    }
  }

  if (kind === 'none') {
    yield* raw();
    return;
  }
  const decoder = createDecoder(kind);
  const input = Readable.from(raw(), { objectMode: false, highWaterMark: 1 << 20 });
  const out = pipeline(input, decoder, () => {});
  try {
    for await (const chunk of out) yield chunk as Buffer;
  } finally {
    input.destroy();
    decoder.destroy();
  }
}

function toBuffer(u: Uint8Array | string): Buffer {
  if (Buffer.isBuffer(u)) return u;
  if (typeof u === 'string') return Buffer.from(u);
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Per-layer entry processing. */
class EntryHandler {
  entries = 0;
  private readonly layer: LayerInput;
  private readonly index: number;
  private readonly state: ImageState;
  private readonly delta: LayerDelta;
  private readonly base: Map<string, ViewNode>;
  /** Proper ancestors of base nodes, rebuilt per layer. */
  private readonly baseAncestors: Set<string>;
  /**
   * Symlinks that may point at directories, by resolved target (`usr/lib` -> [`lib`]): a file under
   * a target is also reachable under each link, and analyzers may know it by that name.
   */
  private readonly linksByTarget: Map<string, string[]>;

  constructor(layer: LayerInput, index: number, state: ImageState, delta: LayerDelta) {
    this.layer = layer;
    this.index = index;
    this.state = state;
    this.delta = delta;
    this.base = state.view.nodes;
    this.baseAncestors = new Set();
    for (const k of this.base.keys()) for (const a of ancestors(k)) this.baseAncestors.add(a);
    this.linksByTarget = new Map();
    for (const n of this.base.values()) if (n.type === 'symlink') this.noteDirLink(n);
  }

  private ctx(path: string): FileContext {
    return {
      path,
      layerIndex: this.index,
      layerDigest: this.layer.digest,
      warn: (code, message) => this.state.warnings.push({ code, message, path: `/${path}`, layerDigest: this.layer.digest }),
    };
  }

  /** Handles one tar entry's header; returns a consumer when its bytes are wanted. */
  onEntry(h: TarEntryHeader): TarEntryConsumer | undefined {
    const { limits } = this.state;
    this.entries++;
    if (this.entries > limits.maxEntriesPerLayer) throw new LayerError('entry-limit', `more than ${limits.maxEntriesPerLayer} entries in one layer`);
    if (++this.state.imageEntries > limits.maxEntriesPerImage) throw new LayerError('entry-limit', `more than ${limits.maxEntriesPerImage} entries in the image`);
    const raw = normalizeEntryPath(h.name, limits);
    const type = h.type;
    if (raw === '') return undefined;
    const name = basename(raw);

    if (name.startsWith(WHITEOUT) && type !== 'directory') {
      const dir = this.canonical(dirname(raw));
      if (name === OPAQUE) {
        this.delta.opaque.add(dir);
      } else {
        const victim = name.slice(WHITEOUT.length);
        if (victim === '' || victim === '.' || victim === '..') throw new LayerError('invalid-whiteout', `whiteout '${raw}' names no entry`, { entryPath: raw });
        this.delta.removed.add(joinPath(dir, victim));
      }
      return undefined;
    }

    const path = this.canonical(raw);
    if (type === 'directory') {
      const prev = this.lookupLower(path);
      if (prev !== undefined) this.delta.replaced.add(path); // a directory replaces a lower file or symlink
      const own = this.delta.nodes.get(path);
      if (own !== undefined) this.dropDelta(path);
      return undefined;
    }
    this.replace(path);

    if (type === 'symlink') {
      const node: ViewNode = { type: 'symlink', path, layerIndex: this.index, size: 0, mode: h.mode, target: h.linkname, retained: path.length };
      const interest = this.select(path, { type: 'symlink', size: 0, mode: node.mode });
      if (interest !== undefined) node.tag = interest.tag;
      this.put(node);
      this.noteDirLink(node);
      return undefined;
    }
    if (type === 'link') {
      this.hardlink(path, h.linkname);
      return undefined;
    }
    if (type !== 'file' && type !== 'contiguous-file') return undefined;

    const size = h.size;
    const info: EntryInfo = { type: 'file', size, mode: h.mode };
    const interest = this.select(path, info);
    let inspectMax = -1;
    let inspectors: LayerInspector[] | undefined;
    for (const ins of this.state.options.inspectors ?? []) {
      const want = ins.select(path, info);
      if (want !== undefined && size <= want.maxSize) {
        (inspectors ??= []).push(ins);
        inspectMax = Math.max(inspectMax, want.maxSize);
      }
    }
    if (interest === undefined && inspectors === undefined) return undefined;

    const ctx = this.ctx(path);
    const node: ViewNode | undefined = interest === undefined ? undefined : { type: 'file', path, layerIndex: this.index, size, mode: h.mode, tag: interest.tag, retained: path.length + 64 };
    if (node !== undefined && interest?.keepHistory) this.inheritHistory(node);

    if (interest?.sink !== undefined && inspectors === undefined) {
      const sink = interest.sink(ctx);
      let wanted = true;
      return {
        data: (chunk) => {
          if (wanted) wanted = sink.write(chunk);
        },
        end: () => {
          node!.result = sink.end();
          this.put(node!);
        },
      };
    }

    const parseMax = interest?.parse !== undefined ? (interest.maxSize ?? 1024 * 1024) : -1;
    if (interest?.parse !== undefined && size > parseMax) {
      ctx.warn('file-too-large', `/${path} is ${size} bytes, above the ${parseMax}-byte limit of the ${interest.tag} analyzer; skipped`);
    }
    if (size > Math.max(parseMax, inspectMax)) {
      if (node !== undefined) {
        node.error = 'too large';
        this.put(node);
      }
      return undefined;
    }
    if (this.state.retained + size > this.state.limits.maxRetainedBytes) {
      throw new LayerError('retained-limit', `analysed content would exceed ${this.state.limits.maxRetainedBytes} bytes in memory`, { entryPath: raw });
    }
    // The header gives the size: one allocation, no concatenation.
    const content = Buffer.allocUnsafe(size);
    let filled = 0;
    return {
      data: (chunk) => {
        chunk.copy(content, filled);
        filled += chunk.length;
      },
      end: () => this.analyse(content, ctx, interest, node, inspectors, parseMax),
    };
  }

  private analyse(content: Buffer, ctx: FileContext, interest: FileInterest | undefined, node: ViewNode | undefined, inspectors: LayerInspector[] | undefined, parseMax: number): Promise<void> | void {
    for (const ins of inspectors ?? []) ins.inspect(content, ctx);
    if (node === undefined || interest === undefined) return;
    if (interest.sink !== undefined) {
      const sink = interest.sink(ctx);
      sink.write(content);
      node.result = sink.end();
      this.put(node);
      return;
    }
    if (interest.parse === undefined || content.length > parseMax) {
      this.put(node);
      return;
    }
    const failed = (e: unknown): void => {
      node.error = (e as Error)?.message ?? String(e);
      ctx.warn('malformed-database', `/${ctx.path}: ${node.error}`);
    };
    let result: unknown;
    try {
      result = interest.parse(content, ctx);
    } catch (e) {
      failed(e);
      this.put(node);
      return;
    }
    if (result instanceof Promise) {
      return result.then(
        (r) => {
          node.result = r;
          node.retained += resultSize(node.result, content.length);
          this.put(node);
        },
        (e) => {
          failed(e);
          this.put(node);
        },
      );
    }
    node.result = result;
    node.retained += resultSize(node.result, content.length);
    this.put(node);
  }

  private select(path: string, info: EntryInfo): FileInterest | undefined {
    const sel = this.state.options.select;
    const direct = sel(path, info);
    if (direct !== undefined || this.linksByTarget.size === 0) return direct;
    for (const dir of ancestors(path)) {
      const links = this.linksByTarget.get(dir);
      if (links === undefined) continue;
      for (const link of links) {
        const r = sel(link + path.slice(dir.length), info);
        if (r !== undefined) return r;
      }
    }
    return undefined;
  }

  private noteDirLink(node: ViewNode): void {
    if (this.linksByTarget.size >= 4096) return;
    let depth = 1;
    for (let i = node.path.indexOf('/'); i !== -1; i = node.path.indexOf('/', i + 1)) depth++;
    if (depth > 8) return;
    const t = node.target ?? '';
    if (t === '' || /\.[a-z0-9]{1,5}$/i.test(t)) return; // looks like a file
    const start = t.startsWith('/') ? t : joinPath(dirname(node.path), t);
    const r = resolveInRoot(start, (p) => this.symlinkTarget(p), this.state.limits.maxSymlinkHops);
    if (!r.ok || r.path === '' || r.path === node.path) return;
    const links = this.linksByTarget.get(r.path) ?? [];
    if (links.length >= 8 || links.includes(node.path)) return;
    links.push(node.path);
    this.linksByTarget.set(r.path, links);
  }

  /** Node at `path` as this layer sees it: its own entries first, then what lower layers left. */
  private lookup(path: string): ViewNode | undefined {
    return this.delta.nodes.get(path) ?? this.lookupLower(path);
  }

  private lookupLower(path: string, includeReplaced = true): ViewNode | undefined {
    const n = this.base.get(path);
    if (n === undefined) return undefined;
    const { removed, replaced, opaque } = this.delta;
    if (removed.has(path) || (includeReplaced && replaced.has(path))) return undefined;
    if (removed.size > 0 || opaque.size > 0 || (includeReplaced && replaced.size > 0)) {
      for (const a of ancestors(path)) {
        if (removed.has(a) || opaque.has(a) || (includeReplaced && replaced.has(a))) return undefined;
      }
    }
    return n;
  }

  private symlinkTarget(path: string): string | undefined {
    const n = this.lookup(path);
    return n?.type === 'symlink' ? n.target : undefined;
  }

  /** Resolves symlinks among the parent directories of an entry path (extraction follows them). */
  private canonical(path: string): string {
    if (path === '' || (this.base.size === 0 && this.delta.nodes.size === 0)) return path;
    let needs = false;
    for (const a of ancestors(path)) {
      if (this.lookup(a)?.type === 'symlink') {
        needs = true;
        break;
      }
    }
    if (!needs) return path;
    const r = resolveInRoot(path, (p) => this.symlinkTarget(p), this.state.limits.maxSymlinkHops, false);
    if (!r.ok) throw new LayerError('unsafe-path', `entry /${path} sits below a symlink loop`, { entryPath: path });
    return r.path;
  }

  /** A non-directory entry at `path` replaces whatever lower layers (and earlier entries) had there. */
  private replace(path: string): void {
    if (this.base.has(path) || this.baseAncestors.has(path)) this.delta.replaced.add(path);
    if (this.delta.nodes.has(path) || this.delta.ancestors.has(path)) this.dropDelta(path);
  }

  private dropDelta(path: string): void {
    const prefix = `${path}/`;
    for (const [k, n] of this.delta.nodes) {
      if (k === path || k.startsWith(prefix)) {
        this.delta.nodes.delete(k);
        this.state.retained -= n.retained;
      }
    }
  }

  private put(node: ViewNode): void {
    const prev = this.delta.nodes.get(node.path);
    if (prev !== undefined) this.state.retained -= prev.retained;
    this.delta.nodes.set(node.path, node);
    this.state.retained += node.retained;
    for (const a of ancestors(node.path)) this.delta.ancestors.add(a);
  }

  private inheritHistory(node: ViewNode): void {
    const prev = this.lookupLower(node.path, false);
    if (prev === undefined || prev.type !== 'file' || prev.tag !== node.tag || prev.result === undefined) return;
    node.history = [...(prev.history ?? []), { layerIndex: prev.layerIndex, result: prev.result }];
    node.retained += prev.retained;
  }

  private hardlink(path: string, linkname: string): void {
    let targetPath: string;
    try {
      targetPath = this.canonical(normalizeEntryPath(linkname, this.state.limits));
    } catch (e) {
      throw e instanceof LayerError ? new LayerError(e.code, `hard link /${path}: ${e.message}`, { entryPath: path }) : e;
    }
    const target = this.lookup(targetPath);
    const interest = this.select(path, { type: 'file', size: target?.size ?? 0, mode: target?.mode ?? 0o644 });
    if (interest === undefined) return;
    if (target?.type === 'file' && target.tag === interest.tag && (target.result !== undefined || target.error !== undefined)) {
      const node: ViewNode = { ...target, path, layerIndex: this.index, retained: path.length + 64 };
      if (interest.keepHistory) this.inheritHistory(node);
      this.put(node);
      return;
    }
    this.state.warnings.push({
      code: 'hardlink-unresolved',
      message: `/${path} is a hard link to /${targetPath}, whose content was not analysed`,
      path: `/${path}`,
      layerDigest: this.layer.digest,
    });
  }
}

/** Applies a finished layer: removals and opaque directories first, then its own entries. */
function applyDelta(state: ImageState, delta: LayerDelta): void {
  const base = state.view.nodes;
  const { removed, replaced, opaque } = delta;
  if (removed.size > 0 || replaced.size > 0 || opaque.size > 0) {
    for (const [k, n] of base) {
      let gone = removed.has(k) || replaced.has(k);
      if (!gone) {
        for (const a of ancestors(k)) {
          if (removed.has(a) || replaced.has(a) || opaque.has(a)) {
            gone = true;
            break;
          }
        }
      }
      if (gone) {
        base.delete(k);
        state.retained -= n.retained;
      }
    }
  }
  for (const [k, n] of delta.nodes) {
    const prev = base.get(k);
    if (prev !== undefined) state.retained -= prev.retained;
    base.set(k, n);
  }
}

/** Approximate memory a parse result keeps alive (its content is dropped; a jar's result is tiny). */
function resultSize(result: unknown, contentSize: number): number {
  if (result === undefined || result === null) return 0;
  if (typeof result === 'string') return result.length * 2;
  if (Buffer.isBuffer(result)) return result.length;
  try {
    return (JSON.stringify(result)?.length ?? 0) * 2;
  } catch {
    return contentSize;
  }
}

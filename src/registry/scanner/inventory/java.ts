/**
 * Java archives (jar, war, ear and Jenkins' jpi/hpi): Maven coordinates from every
 * `META-INF/**\/pom.properties` (a shaded jar carries one per bundled artifact), licences from the
 * embedded `pom.xml`, archives nested inside archives (`WEB-INF/lib`, `BOOT-INF/lib`,
 * `META-INF/jars`, ...) read recursively from memory. When no pom.properties describes the archive
 * itself, its identity comes from MANIFEST.MF (offline: no Maven Central look-ups).
 * Zip bombs are bounded: entry counts, per-entry and total inflated sizes, nesting depth.
 */
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import type { InventoryPackage } from '../model.ts';
import { attribution, type PackageAnalyzer } from './analyzer.ts';
import { basename } from './paths.ts';
import { mavenPurl } from './purl.ts';

export interface JavaPackage {
  groupId: string;
  artifactId: string;
  version: string;
  /** Archive the package was found in: `app.war` or `app.war/WEB-INF/lib/x.jar`. */
  path: string;
  licenses?: string[];
}

export interface JavaLimits {
  maxEntries: number;
  maxDepth: number;
  /** Inflated bytes of nested archives over the whole outer archive. */
  maxNestedBytes: number;
  maxMetadataBytes: number;
}

export const DEFAULT_JAVA_LIMITS: JavaLimits = {
  maxEntries: 200_000,
  maxDepth: 4,
  maxNestedBytes: 1024 * 1024 * 1024,
  maxMetadataBytes: 4 * 1024 * 1024,
};

const ARCHIVE = /\.(?:jar|war|ear|jpi|hpi|par|sar|rar)$/i;

export function isJavaArchive(path: string): boolean {
  return ARCHIVE.test(path);
}

const FILE_NAME = /^([A-Za-z0-9._-]*[^-*])-(\d\S*?)\.(?:jar|war|ear|jpi|hpi)$/;

/** artifactId and version from a file name like `spring-core-5.3.4-SNAPSHOT.jar`. */
export function fileNameCoordinates(path: string): { artifactId: string; version: string } | undefined {
  const m = FILE_NAME.exec(basename(path));
  return m === null ? undefined : { artifactId: m[1]!, version: m[2]! };
}

export function parsePomProperties(text: string): { groupId?: string; artifactId?: string; version?: string } {
  const out: { groupId?: string; artifactId?: string; version?: string } = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    for (const k of ['groupId', 'artifactId', 'version'] as const) {
      if (line.startsWith(`${k}=`)) out[k] = line.slice(k.length + 1).trim();
    }
  }
  return out;
}

/** Main section of a MANIFEST.MF (up to the first blank line; continuation lines start with one space). */
export function parseManifest(text: string): Map<string, string> {
  const attrs = new Map<string, string>();
  let cur = '';
  const add = (line: string): void => {
    const colon = line.indexOf(':');
    if (colon <= 0) return;
    const value = line.slice(colon + 1).trim();
    if (value === '' || value.startsWith('%')) return;
    attrs.set(line.slice(0, colon).trim(), value);
  };
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') break;
    if (line.startsWith(' ')) {
      cur += line.slice(1);
      continue;
    }
    add(cur);
    cur = line;
  }
  add(cur);
  return attrs;
}

/** Coordinates from MANIFEST.MF attributes, as far as they can be told offline. */
export function manifestCoordinates(m: Map<string, string>): { groupId: string; artifactId: string; version: string } | undefined {
  let groupId = m.get('Implementation-Vendor-Id');
  if (groupId === undefined) {
    const bsn = m.get('Bundle-SymbolicName')?.split(';')[0]?.trim();
    if (bsn !== undefined && bsn !== '') groupId = bsn.includes('.') ? bsn.slice(0, bsn.lastIndexOf('.')) : bsn;
  }
  groupId ??= m.get('Implementation-Vendor') ?? m.get('Specification-Vendor');
  const artifactId = m.get('Implementation-Title') ?? m.get('Specification-Title') ?? m.get('Bundle-Name');
  const version = m.get('Implementation-Version') ?? m.get('Specification-Version') ?? m.get('Bundle-Version');
  if (groupId === undefined || artifactId === undefined || version === undefined) return undefined;
  return { groupId: groupId.trim(), artifactId: artifactId.trim(), version: version.trim() };
}

/** `<licenses><license><name>` of an embedded pom.xml. */
export function pomLicenses(xml: string): string[] {
  const block = /<licenses>([\s\S]*?)<\/licenses>/.exec(xml)?.[1];
  if (block === undefined) return [];
  const out: string[] = [];
  for (const m of block.matchAll(/<license>[\s\S]*?<name>\s*([\s\S]*?)\s*<\/name>[\s\S]*?<\/license>/g)) {
    const name = m[1]!.replace(/<!\[CDATA\[([\s\S]*?)\]\]>/, '$1').trim();
    if (name !== '' && !out.includes(name)) out.push(name);
  }
  return out;
}

function openZip(buf: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false, decodeStrings: true }, (err, zip) => {
      if (err || zip === undefined) reject(err ?? new Error('unreadable zip'));
      else resolve(zip);
    });
  });
}

function readEntry(zip: ZipFile, entry: Entry, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (entry.uncompressedSize > max) {
      reject(new Error(`${entry.fileName} inflates to ${entry.uncompressedSize} bytes, above ${max}`));
      return;
    }
    zip.openReadStream(entry, (err, stream) => {
      if (err || stream === undefined) {
        reject(err ?? new Error('unreadable entry'));
        return;
      }
      const parts: Buffer[] = [];
      let n = 0;
      stream.on('data', (c: Buffer) => {
        n += c.length;
        if (n > max) stream.destroy(new Error(`${entry.fileName} inflates beyond ${max} bytes`));
        else parts.push(c);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(parts, n)));
    });
  });
}

async function forEachEntry(zip: ZipFile, limits: JavaLimits, fn: (e: Entry) => Promise<void>): Promise<void> {
  let count = 0;
  await new Promise<void>((resolve, reject) => {
    zip.on('error', reject);
    zip.on('end', () => resolve());
    zip.on('entry', (e: Entry) => {
      if (++count > limits.maxEntries) {
        reject(new Error(`more than ${limits.maxEntries} entries`));
        zip.close();
        return;
      }
      fn(e).then(() => zip.readEntry(), (err) => {
        reject(err);
        zip.close();
      });
    });
    zip.readEntry();
  });
}

interface Budget {
  nestedBytes: number;
  problems: string[];
}

/** All Maven packages found in a Java archive held in memory (nested archives included). */
export async function parseJavaArchive(buf: Buffer, path: string, limits: JavaLimits = DEFAULT_JAVA_LIMITS): Promise<{ packages: JavaPackage[]; problems: string[] }> {
  const budget: Budget = { nestedBytes: 0, problems: [] };
  const packages = await parseArchive(buf, path, 0, limits, budget);
  const seen = new Set<string>();
  const unique = packages.filter((p) => {
    const k = `${p.groupId}:${p.artifactId}@${p.version}|${p.path}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return { packages: unique, problems: budget.problems };
}

async function parseArchive(buf: Buffer, path: string, depth: number, limits: JavaLimits, budget: Budget): Promise<JavaPackage[]> {
  const zip = await openZip(buf);
  const own = fileNameCoordinates(path);
  const out: JavaPackage[] = [];
  const licenses = new Map<string, string[]>();
  let manifest: Map<string, string> | undefined;
  let describesItself = false;
  try {
    await forEachEntry(zip, limits, async (e) => {
      const name = e.fileName;
      if (name.endsWith('/')) return;
      const base = basename(name);
      if (base === 'pom.properties') {
        const props = parsePomProperties((await readEntry(zip, e, limits.maxMetadataBytes)).toString('utf8'));
        if (props.groupId && props.artifactId && props.version) {
          out.push({ groupId: props.groupId, artifactId: props.artifactId, version: props.version, path });
          if (own !== undefined && own.artifactId === props.artifactId && own.version === props.version) describesItself = true;
        }
      } else if (base === 'pom.xml' && name.startsWith('META-INF/maven/')) {
        const parts = name.split('/');
        if (parts.length === 5) {
          const l = pomLicenses((await readEntry(zip, e, limits.maxMetadataBytes)).toString('utf8'));
          if (l.length > 0) licenses.set(`${parts[2]}:${parts[3]}`, l);
        }
      } else if (name === 'META-INF/MANIFEST.MF') {
        manifest = parseManifest((await readEntry(zip, e, limits.maxMetadataBytes)).toString('utf8'));
      } else if (isJavaArchive(name)) {
        if (depth + 1 > limits.maxDepth) {
          budget.problems.push(`${path}/${name}: nested deeper than ${limits.maxDepth} archives; skipped`);
          return;
        }
        const remaining = limits.maxNestedBytes - budget.nestedBytes;
        if (e.uncompressedSize > remaining) {
          budget.problems.push(`${path}/${name}: nested archives inflate beyond ${limits.maxNestedBytes} bytes; skipped`);
          return;
        }
        budget.nestedBytes += e.uncompressedSize;
        const inner = await readEntry(zip, e, remaining);
        try {
          out.push(...(await parseArchive(inner, `${path}/${name}`, depth + 1, limits, budget)));
        } catch (err) {
          budget.problems.push(`${path}/${name}: ${(err as Error).message}`);
        }
      }
    });
  } finally {
    zip.close();
  }
  if (!describesItself && manifest !== undefined) {
    const m = manifestCoordinates(manifest);
    if (m !== undefined) out.push({ ...m, path });
  }
  for (const p of out) {
    const l = licenses.get(`${p.groupId}:${p.artifactId}`);
    if (l !== undefined && p.licenses === undefined && p.path === path) p.licenses = l;
  }
  return out;
}

const MB = 1024 * 1024;

export const javaAnalyzer: PackageAnalyzer = {
  name: 'java',
  select(path) {
    if (!isJavaArchive(path)) return undefined;
    return { tag: 'java', maxSize: 512 * MB, parse: (c, ctx) => parseJavaArchive(c, ctx.path) };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('java', ctx.warn)) {
      const r = f.node.result as { packages: JavaPackage[]; problems: string[] } | undefined;
      if (r === undefined) continue;
      for (const p of r.problems) ctx.warn({ code: 'malformed-database', message: `/${p}`, path: `/${f.path}` });
      for (const p of r.packages) {
        const pkg: InventoryPackage = {
          kind: 'java',
          name: `${p.groupId}:${p.artifactId}`,
          version: p.version,
          purl: mavenPurl(p.groupId, p.artifactId, p.version),
          path: `/${p.path}`,
          ...attribution(ctx, f.node.layerIndex),
        };
        if (p.licenses !== undefined) pkg.licenses = p.licenses;
        out.push(pkg);
      }
    }
    return out;
  },
};

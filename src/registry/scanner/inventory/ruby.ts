/**
 * RubyGems: installed gem specifications (`specifications/*.gemspec`, as `gem install` writes them).
 * Only the simple assignments RubyGems generates are read (`s.name = "rake".freeze`); the block
 * variable named in `Gem::Specification.new do |s|` must be the one assigned to, otherwise the file
 * is not a gemspec we understand and nothing is reported.
 */
import type { InventoryPackage } from '../model.ts';
import { attribution, text, type PackageAnalyzer } from './analyzer.ts';
import { basename, dirname } from './paths.ts';
import { purl } from './purl.ts';

export interface Gemspec {
  name: string;
  version: string;
  licenses: string[];
}

function rubyString(expr: string): string | undefined {
  const m = /^\s*(["'])((?:\\.|(?!\1).)*)\1(?:\.freeze)?\s*(?:#.*)?$/.exec(expr);
  return m === null ? undefined : m[2]!.replace(/\\(.)/g, '$1');
}

function rubyStringArray(expr: string): string[] | undefined {
  const m = /^\s*\[(.*)\](?:\.freeze)?\s*(?:#.*)?$/.exec(expr);
  if (m === null) return undefined;
  const out: string[] = [];
  for (const s of m[1]!.matchAll(/(["'])((?:\\.|(?!\1).)*)\1/g)) out.push(s[2]!);
  return out;
}

/** Parses an installed gemspec; undefined when name or version cannot be read. */
export function parseGemspec(data: string): Gemspec | undefined {
  const block = /Gem::Specification\.new\s+do\s+\|\s*([a-z_][a-z0-9_]*)\s*\|/.exec(data);
  if (block === null) return undefined;
  const v = block[1]!;
  let name: string | undefined;
  let version: string | undefined;
  let licenses: string[] = [];
  const assign = new RegExp(`^\\s*${v}\\.(name|version|licenses?)\\s*=\\s*(.*)$`);
  for (const line of data.slice(block.index).split(/\r?\n/)) {
    const m = assign.exec(line);
    if (m === null) continue;
    const [, field, expr] = m as unknown as [string, string, string];
    if (field === 'name') name = rubyString(expr);
    else if (field === 'version') {
      version = rubyString(expr) ?? rubyString(/Gem::Version\.new\((.*)\)/.exec(expr)?.[1] ?? '');
    } else if (field === 'license') {
      const s = rubyString(expr);
      if (s !== undefined) licenses = [s];
    } else {
      // `licenses` must be an array; a bare string there is invalid and ignored (as RubyGems would reject it).
      licenses = rubyStringArray(expr) ?? [];
    }
  }
  if (name === undefined || version === undefined || name === '' || version === '') return undefined;
  return { name, version, licenses };
}

const MB = 1024 * 1024;

export const rubyAnalyzer: PackageAnalyzer = {
  name: 'ruby',
  select(path) {
    if (!path.endsWith('.gemspec') || basename(dirname(path)) !== 'specifications') return undefined;
    return { tag: 'gemspec', maxSize: 4 * MB, parse: (c) => parseGemspec(text(c)) };
  },
  packages(ctx) {
    const out: InventoryPackage[] = [];
    for (const f of ctx.view.tagged('gemspec', ctx.warn)) {
      const g = f.node.result as Gemspec | undefined;
      if (g === undefined) {
        if (f.node.error === undefined) ctx.warn({ code: 'malformed-database', message: `/${f.path}: not a gemspec we can read (no name/version assignments on the block variable)`, path: `/${f.path}` });
        continue;
      }
      const pkg: InventoryPackage = { kind: 'gem', name: g.name, version: g.version, purl: purl('gem', undefined, g.name, g.version), path: `/${f.path}`, ...attribution(ctx, f.node.layerIndex) };
      if (g.licenses.length > 0) pkg.licenses = g.licenses;
      out.push(pkg);
    }
    return out;
  },
};

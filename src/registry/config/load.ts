import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type Config, configSchema } from './schema.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Tree = Record<string, unknown>;

interface Leaf {
  path: string[];
  /** Keep the raw string instead of reading JSON (for string settings that look like numbers). */
  isString: boolean;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  for (;;) {
    const def = (current as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } }).def;
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'prefault' || def.type === 'nullable') && def.innerType) current = def.innerType;
    else if (def.type === 'pipe' && def.in) current = def.in;
    else return current;
  }
}

function leaves(schema: z.ZodType, path: string[] = []): Leaf[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([key, child]) => leaves(child, [...path, key]));
  }
  return [{ path, isString: inner instanceof z.ZodString }];
}

const envLeaves = leaves(configSchema);

function envName(path: string[]): string {
  return `PORTCULLIS_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

/** Records where each key of a configuration tree came from (dotted path -> source), for error messages. */
function recordSources(node: unknown, path: string[], source: string, sources: Map<string, string>): void {
  if (path.length > 0) sources.set(path.join('.'), source);
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
  for (const [key, child] of Object.entries(node)) recordSources(child, [...path, key], source, sources);
}

/** Environment variable names, one per setting (for `--help` and the docs). */
export function environmentVariables(): string[] {
  return envLeaves.map((leaf) => envName(leaf.path));
}

/**
 * Loads the configuration: YAML file, then environment, then flags (each overriding the last),
 * validated once. Errors name the dotted path of the bad key and its source.
 */
export async function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Array<{ path: string[]; value: unknown; flag?: string }> } = {}): Promise<Config> {
  let tree: Tree = {};
  const sources = new Map<string, string>();
  if (options.file) {
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(error as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`config file ${options.file} is not valid YAML: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) throw new ConfigError(`config file ${options.file} must be a YAML mapping`);
    tree = (parsed ?? {}) as Tree;
    recordSources(tree, [], `config file ${options.file}`, sources);
  }
  const env = options.env ?? process.env;
  const known = new Set<string>();
  for (const leaf of envLeaves) {
    const name = envName(leaf.path);
    known.add(name);
    const raw = env[name];
    if (raw === undefined) continue;
    let value: unknown = raw;
    if (!leaf.isString) {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    setPath(tree, leaf.path, value);
    sources.set(leaf.path.join('.'), name);
  }
  const unknownEnv = Object.keys(env).filter((name) => name.startsWith('PORTCULLIS_') && !known.has(name) && !ignoredEnv.has(name));
  if (unknownEnv.length > 0) throw new ConfigError(`unknown environment variable ${unknownEnv[0]} (settings: ${[...known].slice(0, 5).join(', ')}, ...)`);
  for (const override of options.overrides ?? []) {
    setPath(tree, override.path, override.value);
    sources.set(override.path.join('.'), override.flag ?? 'the command line');
  }
  return validateConfig(tree, sources);
}

/**
 * The configuration with secrets masked, for printing (`config check`): the password in the
 * PostgreSQL URL (user-info or `?password=`) becomes `***`.
 */
export function redactedConfig(config: Config): Config {
  const url = config.storage.metadata.postgresUrl;
  if (url === undefined) return config;
  let shown = '***';
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    shown = parsed.href;
  } catch {
    // Not a URL: show nothing of it rather than risk the password.
  }
  return { ...config, storage: { ...config.storage, metadata: { ...config.storage.metadata, postgresUrl: shown } } };
}

/** Variables read elsewhere (secrets for later modules, test switches), not settings of this schema. */
const ignoredEnv = new Set(['PORTCULLIS_ADMIN_PASSWORD', 'PORTCULLIS_TEST_POSTGRES_URL', 'PORTCULLIS_ACCEPTANCE_TARGET', 'PORTCULLIS_HTTP_TARGET']);

/**
 * Validates a configuration tree. `sources` (dotted path -> where the value came from) lets
 * the message say which file, variable or flag to fix.
 * @throws ConfigError naming every bad key
 */
export function validateConfig(tree: unknown, sources: ReadonlyMap<string, string> = new Map()): Config {
  const result = configSchema.safeParse(tree);
  if (result.success) return result.data;
  const knownEnv = new Set(environmentVariables());
  const lines = result.error.issues.flatMap((issue) => {
    const unknown = issue.code === 'unrecognized_keys';
    const paths = unknown ? issue.keys.map((k) => [...issue.path.map(String), k]) : [issue.path.map(String)];
    return paths.map((path) => {
      const where = path.join('.') || '(root)';
      const source = sources.get(where);
      const origin = source ? [`from ${source}`] : unknown ? [] : ['not set'];
      // Say how to override a setting, unless that variable is where the value came from.
      if (!unknown && knownEnv.has(envName(path)) && source !== envName(path)) origin.push(`env ${envName(path)}`);
      return `${where}${origin.length > 0 ? ` (${origin.join('; ')})` : ''}: ${unknown ? 'unknown setting' : issue.message}`;
    });
  });
  throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
}

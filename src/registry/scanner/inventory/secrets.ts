/**
 * Secret detection in layers. Every layer is inspected, including files a later layer deletes
 * (the bytes stay in the blob and anyone who pulls the image gets them). Only files whose path
 * suggests configuration or credentials are read (never whole layers), each up to 1 MiB.
 * A finding names the rule, the file, the layer and the line — never the secret: it carries a
 * fingerprint (HMAC-SHA-256 of rule and secret, truncated) so repeated findings can be told apart
 * and suppressed without storing the value.
 */
import { createHmac } from 'node:crypto';
import type { EntryInfo, FileContext, LayerInspector } from './walker.ts';
import { basename } from './paths.ts';

export type SecretSeverity = 'critical' | 'high' | 'medium' | 'low';

export interface SecretFinding {
  rule: string;
  title: string;
  severity: SecretSeverity;
  /** Absolute path in the image. */
  path: string;
  line: number;
  layerIndex: number;
  layerDigest: string;
  /** Filled in once the layer's diff ID is known. */
  layerDiffId?: string;
  fingerprint: string;
}

interface Rule {
  id: string;
  title: string;
  severity: SecretSeverity;
  /** The first capture group (or the whole match) is the secret. */
  regex: RegExp;
  /** Only for files whose base name (lower-case) satisfies this. */
  files?: (name: string, path: string) => boolean;
  /** Rejects placeholders and other obvious non-secrets. */
  accept?: (secret: string) => boolean;
}

const notPlaceholder = (s: string): boolean => {
  const v = s.trim().replace(/^['"]|['"]$/g, '');
  if (v.length < 6) return false;
  if (/^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$/.test(v)) return false; // ${VAR}
  if (/^<.*>$/.test(v) || /^(?:x+|\*+|changeme|change_me|password|secret|example|dummy|test|none|null|true|false|your[-_].*)$/i.test(v)) return false;
  return true;
};

const isEnv = (n: string): boolean => n === '.env' || n.startsWith('.env.') || n.endsWith('.env');

export const SECRET_RULES: Rule[] = [
  { id: 'private-key', title: 'Private key', severity: 'high', regex: /-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----\s*[\r\n]+([A-Za-z0-9+/=\r\n:, -]{64,}?)[\r\n]+-----END/g },
  { id: 'aws-access-key-id', title: 'AWS access key ID', severity: 'critical', regex: /\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b/g },
  { id: 'aws-secret-access-key', title: 'AWS secret access key', severity: 'critical', regex: /aws_?secret_?access_?key\s*[=:]\s*["']?([A-Za-z0-9/+=]{40})\b/gi },
  { id: 'github-token', title: 'GitHub token', severity: 'critical', regex: /\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b/g },
  { id: 'gitlab-token', title: 'GitLab personal access token', severity: 'critical', regex: /\b(glpat-[A-Za-z0-9_-]{20})\b/g },
  { id: 'slack-token', title: 'Slack token', severity: 'high', regex: /\b(xox[abposr]-[A-Za-z0-9-]{10,72})\b/g },
  { id: 'stripe-secret-key', title: 'Stripe secret key', severity: 'critical', regex: /\b((?:sk|rk)_live_[A-Za-z0-9]{24,99})\b/g },
  { id: 'google-api-key', title: 'Google API key', severity: 'high', regex: /\b(AIza[0-9A-Za-z_-]{35})\b/g },
  { id: 'gcp-service-account-key', title: 'Google Cloud service account key', severity: 'critical', regex: /"type"\s*:\s*"service_account"[\s\S]{0,2000}?"private_key_id"\s*:\s*"([a-f0-9]{40})"/g },
  { id: 'npm-token', title: 'npm access token', severity: 'critical', regex: /\b(npm_[A-Za-z0-9]{36})\b/g },
  { id: 'pypi-token', title: 'PyPI upload token', severity: 'critical', regex: /\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})\b/g },
  {
    id: 'npmrc-auth',
    title: 'Registry credentials in .npmrc',
    severity: 'critical',
    regex: /^\s*(?:\/\/[^\s=]*:)?_(?:authToken|auth|password)\s*=\s*(\S+)/gm,
    files: (n) => n === '.npmrc' || n === 'npmrc',
    accept: notPlaceholder,
  },
  {
    id: 'pypirc-password',
    title: 'Password in .pypirc',
    severity: 'critical',
    regex: /^\s*password\s*[=:]\s*(\S+)/gm,
    files: (n) => n === '.pypirc',
    accept: notPlaceholder,
  },
  {
    id: 'netrc-password',
    title: 'Password in .netrc',
    severity: 'high',
    regex: /\bpassword\s+(\S+)/g,
    files: (n) => n === '.netrc' || n === '_netrc',
    accept: notPlaceholder,
  },
  {
    id: 'docker-config-auth',
    title: 'Registry credentials in a Docker config.json',
    severity: 'critical',
    regex: /"(?:auth|identitytoken|registrytoken)"\s*:\s*"([^"]{8,})"/g,
    files: (n, p) => n === 'config.json' && (p.includes('/.docker/') || p.startsWith('.docker/') || p.includes('containers/auth')) || n === 'auth.json' || n === '.dockercfg',
  },
  {
    id: 'git-credentials',
    title: 'Credentials in .git-credentials',
    severity: 'critical',
    regex: /https?:\/\/[^:\s/]+:([^@\s]+)@/g,
    files: (n) => n === '.git-credentials',
    accept: notPlaceholder,
  },
  {
    id: 'env-secret',
    title: 'Secret in an environment file',
    severity: 'high',
    regex: /^\s*(?:export\s+)?[A-Za-z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_]*\s*=\s*(.+?)\s*$/gim,
    files: (n) => isEnv(n),
    accept: notPlaceholder,
  },
];

/** File names worth reading for secrets (lower-case base names). */
const NAMES = new Set([
  '.npmrc', 'npmrc', '.pypirc', '.netrc', '_netrc', '.git-credentials', 'config.json', 'auth.json', '.dockercfg', 'credentials',
  'id_rsa', 'id_dsa', 'id_ecdsa', 'id_ed25519', '.s3cfg', '.pgpass', '.my.cnf', 'credentials.json', 'secrets.json', 'settings.xml',
]);
const EXT = /\.(?:pem|key|p8|env|ya?ml|json|toml|ini|conf|cfg|properties|sh|py|js|ts|rb|go|php|txt|xml)$/i;
/** Where application code and configuration live (extension-matched files are only read there). */
const APP_DIRS = /^(?:root|home\/[^/]+|app|srv|opt|usr\/src|usr\/local\/app|workspace|code|var\/www|etc)\//;
/** Directories full of third-party content, documentation and test keys. */
const NOISE = /(?:^|\/)(?:node_modules|site-packages|dist-packages|vendor|\.git|__pycache__|test|tests|testdata|fixtures|examples?|docs?|usr\/share|usr\/lib|usr\/include|etc\/ssl\/certs|etc\/ca-certificates|etc\/pki\/ca-trust|go\/pkg\/mod)\//;

const MAX = 1024 * 1024;

export function wantsSecretScan(path: string, info: EntryInfo): boolean {
  if (info.type !== 'file' || info.size === 0 || info.size > MAX) return false;
  const name = basename(path).toLowerCase();
  // Cheap name tests first: most paths of a layer fail them, and never reach the directory regexes.
  if (!(NAMES.has(name) || isEnv(name) || (EXT.test(name) && APP_DIRS.test(path)))) return false;
  return !NOISE.test(path);
}

export interface SecretScanner extends LayerInspector {
  readonly findings: SecretFinding[];
}

/** A layer inspector collecting secret findings; `key` keys the fingerprint HMAC (default: a fixed label). */
export function createSecretScanner(key = 'portcullis-secret-fingerprint-v1'): SecretScanner {
  const findings: SecretFinding[] = [];
  return {
    findings,
    select(path, info) {
      return wantsSecretScan(path, info) ? { maxSize: MAX } : undefined;
    },
    inspect(content: Buffer, ctx: FileContext) {
      if (content.includes(0)) return; // binary
      const text = content.toString('utf8');
      const name = basename(ctx.path).toLowerCase();
      // One finding per secret and line, from the first (most specific) rule that sees it.
      const seen = new Map<number, string[]>();
      for (const rule of SECRET_RULES) {
        if (rule.files !== undefined && !rule.files(name, ctx.path)) continue;
        rule.regex.lastIndex = 0;
        for (const m of text.matchAll(rule.regex)) {
          const secret = (m[1] ?? m[0]).trim();
          if (rule.accept !== undefined && !rule.accept(secret)) continue;
          const line = lineOf(text, m.index ?? 0);
          const onLine = seen.get(line) ?? [];
          if (onLine.some((o) => o.includes(secret) || secret.includes(o))) continue;
          onLine.push(secret);
          seen.set(line, onLine);
          findings.push({
            rule: rule.id,
            title: rule.title,
            severity: rule.severity,
            path: `/${ctx.path}`,
            line,
            layerIndex: ctx.layerIndex,
            layerDigest: ctx.layerDigest,
            fingerprint: createHmac('sha256', key).update(`${rule.id}\0${secret}`).digest('hex').slice(0, 32),
          });
          if (findings.length >= 10_000) return;
        }
      }
    },
  };
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** The parts of an OCI image config that can leak secrets. */
export interface ImageConfigLike {
  config?: { Env?: string[] | null; Labels?: Record<string, string> | null; Cmd?: string[] | null; Entrypoint?: string[] | null } | null;
  history?: Array<{ created_by?: string }> | null;
}

export interface ConfigSecretFinding {
  rule: string;
  title: string;
  severity: SecretSeverity;
  /** `env:NAME`, `label:NAME`, `cmd`, `entrypoint` or `history[i]`. */
  location: string;
  fingerprint: string;
}

const TOKEN_RULES = SECRET_RULES.filter((r) => r.files === undefined);
const SECRET_NAME = /(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)/i;

/**
 * Secrets in an image configuration: environment variables (by value pattern, or a secret-like
 * name with a real value), labels, the command and the build history (`ENV`/`ARG` values and
 * tokens in `RUN` lines end up there). Findings carry a fingerprint, never the value.
 */
export function findConfigSecrets(image: ImageConfigLike, key = 'portcullis-secret-fingerprint-v1'): ConfigSecretFinding[] {
  const out: ConfigSecretFinding[] = [];
  const fp = (rule: string, secret: string): string => createHmac('sha256', key).update(`${rule}\0${secret}`).digest('hex').slice(0, 32);
  const scan = (value: string, location: string, name?: string): void => {
    const found: string[] = [];
    for (const rule of TOKEN_RULES) {
      rule.regex.lastIndex = 0;
      for (const m of value.matchAll(rule.regex)) {
        const secret = (m[1] ?? m[0]).trim();
        if (found.some((f) => f.includes(secret) || secret.includes(f))) continue;
        found.push(secret);
        out.push({ rule: rule.id, title: rule.title, severity: rule.severity, location, fingerprint: fp(rule.id, secret) });
      }
    }
    const assignments: Array<[string, string]> = name !== undefined ? [[name, value]] : [...value.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g)].map((m) => [m[1]!, m[2]!] as [string, string]);
    for (const [n, v] of assignments) {
      if (!SECRET_NAME.test(n) || !notPlaceholder(v) || found.some((f) => v.includes(f))) continue;
      out.push({ rule: 'env-secret', title: 'Secret-like variable with a value', severity: 'high', location: name !== undefined ? location : `${location} (${n})`, fingerprint: fp('env-secret', v) });
    }
  };
  for (const e of image.config?.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) scan(e.slice(eq + 1), `env:${e.slice(0, eq)}`, e.slice(0, eq));
  }
  for (const [k, v] of Object.entries(image.config?.Labels ?? {})) scan(v, `label:${k}`, k);
  if (image.config?.Cmd) scan(image.config.Cmd.join(' '), 'cmd');
  if (image.config?.Entrypoint) scan(image.config.Entrypoint.join(' '), 'entrypoint');
  (image.history ?? []).forEach((h, i) => {
    if (typeof h.created_by === 'string') scan(h.created_by, `history[${i}]`);
  });
  return out;
}

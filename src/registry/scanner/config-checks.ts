/**
 * Checks of an image's configuration (the config blob): risky settings and secrets that never
 * touch a layer — environment variables, labels and the build history (`RUN` lines of the
 * Dockerfile are recorded verbatim in `history[].created_by`). Secrets are found with the same
 * curated rules as in layers and reported by fingerprint only.
 */
import { createSecretScanner, type SecretFinding } from './inventory/secrets.ts';

/** The parts of an OCI/Docker image configuration that are checked. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: { User?: string; Env?: string[]; Labels?: Record<string, string> | null; ExposedPorts?: Record<string, unknown> } | null;
  rootfs?: { diff_ids?: string[] };
  history?: Array<{ created_by?: string; empty_layer?: boolean }>;
}

export interface ConfigFinding {
  rule: 'no-user' | 'root-user' | 'secret-in-env' | 'secret-in-label' | 'secret-in-history';
  severity: 'critical' | 'high' | 'medium' | 'low';
  title: string;
  /** Where: `config.User`, `config.Env[NAME]`, `config.Labels[KEY]`, `history[3]`. Never the value. */
  location: string;
  /** For secrets: the secret rule and the fingerprint of the value. */
  secretRule?: string;
  fingerprint?: string;
}

const ROOT = /^(?:root|0)(?::.*)?$/;

export function checkImageConfig(config: ImageConfig, secretKey?: string): ConfigFinding[] {
  const out: ConfigFinding[] = [];
  const user = config.config?.User?.trim() ?? '';
  if (user === '') out.push({ rule: 'no-user', severity: 'medium', title: 'No user set: the container runs as root', location: 'config.User' });
  else if (ROOT.test(user)) out.push({ rule: 'root-user', severity: 'medium', title: `Runs as root (User "${user.slice(0, 64)}")`, location: 'config.User' });

  const scan = (lines: Array<{ text: string; location: string }>, rule: ConfigFinding['rule'], what: string): void => {
    for (const { text, location } of lines) {
      const scanner = createSecretScanner(secretKey);
      // As a `.env` file, so that the environment-file rule (NAME=value with a secret-like name) applies too.
      scanner.inspect(Buffer.from(text), { path: '.env', layerIndex: -1, layerDigest: '', warn: () => undefined });
      for (const f of scanner.findings as SecretFinding[]) {
        out.push({ rule, severity: f.severity, title: `${f.title} in ${what}`, location, secretRule: f.rule, fingerprint: f.fingerprint });
      }
    }
  };
  scan(
    (config.config?.Env ?? []).filter((e) => typeof e === 'string').map((e) => ({ text: e, location: `config.Env[${e.split('=', 1)[0]!.slice(0, 128)}]` })),
    'secret-in-env',
    'an environment variable',
  );
  scan(
    Object.entries(config.config?.Labels ?? {}).map(([k, v]) => ({ text: `${k.replace(/[^A-Za-z0-9_]/g, '_')}=${String(v)}`, location: `config.Labels[${k.slice(0, 128)}]` })),
    'secret-in-label',
    'a label',
  );
  scan(
    (config.history ?? []).map((h, i) => ({ text: (h.created_by ?? '').replace(/\s+(?=[A-Za-z_][A-Za-z0-9_]*=)/g, '\n'), location: `history[${i}]` })),
    'secret-in-history',
    'the build history',
  );
  return out;
}

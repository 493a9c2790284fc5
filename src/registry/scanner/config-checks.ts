/**
 * Checks of an image's configuration (the config blob): risky settings, and secrets that never
 * touch a layer — environment variables, labels, the command and the build history (`ENV`/`ARG`
 * values and tokens in `RUN` lines end up there). Secrets are found by the inventory stage's
 * curated rules (`findConfigSecrets`) and reported by fingerprint only, never by value.
 */
import { findConfigSecrets, type ImageConfigLike } from './inventory/secrets.ts';

/** The parts of an OCI/Docker image configuration that are read. */
export interface ImageConfig extends ImageConfigLike {
  architecture?: string;
  os?: string;
  config?: (NonNullable<ImageConfigLike['config']> & { User?: string }) | null;
  rootfs?: { diff_ids?: string[] };
}

export interface ConfigFinding {
  rule: 'no-user' | 'root-user' | 'secret-in-env' | 'secret-in-label' | 'secret-in-command' | 'secret-in-history';
  severity: 'critical' | 'high' | 'medium' | 'low';
  title: string;
  /** Where: `config.User`, `env:NAME`, `label:KEY`, `cmd`, `entrypoint`, `history[3]`. Never the value. */
  location: string;
  /** For secrets: the secret rule and the fingerprint of the value. */
  secretRule?: string;
  fingerprint?: string;
}

const ROOT = /^(?:root|0)(?::.*)?$/;

function secretRuleFor(location: string): ConfigFinding['rule'] {
  if (location.startsWith('env:')) return 'secret-in-env';
  if (location.startsWith('label:')) return 'secret-in-label';
  if (location.startsWith('history')) return 'secret-in-history';
  return 'secret-in-command';
}

export function checkImageConfig(config: ImageConfig, secretKey?: string): ConfigFinding[] {
  const out: ConfigFinding[] = [];
  const user = typeof config.config?.User === 'string' ? config.config.User.trim() : '';
  if (user === '') out.push({ rule: 'no-user', severity: 'medium', title: 'No user set: the container runs as root', location: 'config.User' });
  else if (ROOT.test(user)) out.push({ rule: 'root-user', severity: 'medium', title: `Runs as root (User "${user.slice(0, 64)}")`, location: 'config.User' });
  for (const f of findConfigSecrets(config, secretKey)) {
    out.push({ rule: secretRuleFor(f.location), severity: f.severity, title: `${f.title} in the image configuration`, location: f.location, secretRule: f.rule, fingerprint: f.fingerprint });
  }
  return out;
}

/**
 * `portcullis admin trust-rule ...` and `portcullis admin robot bind-certificate ...`: workload
 * identity trust rules and robot client-certificate bindings on the stores directly, through the
 * same administration (validation, events) as /api/v1.
 */
import { RegistryError } from '../oci/errors.ts';
import type { AccessService } from '../registry/auth/access-service.ts';
import { FederationAdministration } from '../registry/auth/federation/administration.ts';
import type { FederationStore } from '../registry/auth/federation/store.ts';
import { type Grant, cliAdministrator } from '../registry/auth/identity.ts';
import type { Config } from '../registry/config/schema.ts';
import type { EventBus } from '../registry/events/bus.ts';

export const federationUsage = `  portcullis admin trust-rule create NAME --project PROJECT --issuer URL --subject PATTERN [--audience AUD]
      [--claim NAME=PATTERN[,PATTERN...]]... --grant ACTIONS=GLOB[,GLOB...]... [--max-lifetime-seconds N]
      Workload identity federation: OIDC tokens of a configured issuer (auth.federation.issuers)
      whose sub and claims match get these grants; e.g. --issuer https://token.actions.githubusercontent.com
      --subject 'repo:org/app:ref:refs/heads/main' --grant pull,push=team-a/app
  portcullis admin trust-rule list --project PROJECT
  portcullis admin trust-rule revoke ID --project PROJECT
  portcullis admin robot bind-certificate ID [--project PROJECT] [--spki HEX] [--cert-subject DN] [--san ENTRY] [--certificate-only]
      Mutual TLS: the robot's secret is then accepted only with that client certificate (or the
      certificate alone, with --certificate-only).`;

export const federationOptions = {
  issuer: { type: 'string' },
  subject: { type: 'string' },
  audience: { type: 'string' },
  claim: { type: 'string', multiple: true },
  'max-lifetime-seconds': { type: 'string' },
  spki: { type: 'string' },
  'cert-subject': { type: 'string' },
  san: { type: 'string' },
  'certificate-only': { type: 'boolean' },
} as const;

interface Values {
  project?: string;
  issuer?: string;
  subject?: string;
  audience?: string;
  claim?: string[];
  'max-lifetime-seconds'?: string;
  spki?: string;
  'cert-subject'?: string;
  san?: string;
  'certificate-only'?: boolean;
}

/** `ref=refs/heads/main,refs/tags/*` -> [name, patterns]. */
function parseClaim(text: string): [string, string[]] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new RegistryError('INVALID_REQUEST', `--claim ${JSON.stringify(text)}: expected NAME=PATTERN[,PATTERN...]`);
  return [text.slice(0, eq), text.slice(eq + 1).split(',')];
}

/** Runs the command if it is one of these; undefined when it is not. */
export async function federationCommand(
  command: string,
  name: string | undefined,
  values: Values,
  deps: { access: AccessService; store: FederationStore | undefined; config: Config; grants: Grant[]; events?: EventBus },
): Promise<number | undefined> {
  if (!['trust-rule create', 'trust-rule list', 'trust-rule revoke', 'robot bind-certificate'].includes(command)) return undefined;
  if (!deps.store) throw new RegistryError('INVALID_REQUEST', 'this store has no federation tables');
  const federation = deps.config.auth.federation;
  const admin = new FederationAdministration(
    { access: deps.access, store: deps.store, events: deps.events },
    { issuers: () => federation.issuers.map((issuer) => issuer.issuer), defaultAudience: deps.config.auth.service, maxLifetimeSeconds: federation.maxLifetimeSeconds, defaultLifetimeSeconds: deps.config.auth.registryTokens.ttlSeconds },
  );
  const need = (value: string | undefined, what: string): string => {
    if (!value) throw new RegistryError('INVALID_REQUEST', `missing ${what}`);
    return value;
  };
  const actor = cliAdministrator;
  switch (command) {
    case 'trust-rule create': {
      const maxLifetime = values['max-lifetime-seconds'];
      const rule = await admin.createTrustRule(actor, need(values.project, '--project'), {
        name: need(name, 'NAME'),
        issuer: need(values.issuer, '--issuer'),
        subject: need(values.subject, '--subject'),
        audience: values.audience,
        claims: Object.fromEntries((values.claim ?? []).map(parseClaim)),
        grants: deps.grants,
        maxLifetimeSeconds: maxLifetime === undefined ? undefined : Number(maxLifetime),
      });
      console.log(`created trust rule ${rule.name} (id ${rule.id}) in ${rule.project}: ${rule.issuer} aud=${rule.audience} sub=${rule.subject}`);
      return 0;
    }
    case 'trust-rule list':
      for (const rule of await admin.listTrustRules(actor, need(values.project, '--project'))) {
        console.log(`${rule.id} ${rule.name}${rule.revokedAt ? ' [revoked]' : ''} ${rule.issuer} sub=${rule.subject} ${rule.grants.map((g) => `${g.actions.join(',')}=${g.repositories.join(',')}`).join(' ')}`);
      }
      return 0;
    case 'trust-rule revoke': {
      const rule = await admin.revokeTrustRule(actor, need(values.project, '--project'), need(name, 'ID'));
      console.log(`revoked trust rule ${rule.name}`);
      return 0;
    }
    default: {
      const binding = await admin.bindRobotCertificate(actor, need(name, 'ID'), values.project, { spkiSha256: values.spki, subject: values['cert-subject'], san: values.san, certificateOnly: values['certificate-only'] ?? false });
      console.log(`robot ${binding.robot} bound to a client certificate${binding.certificateOnly ? ' (certificate alone authenticates)' : ''}`);
      return 0;
    }
  }
}

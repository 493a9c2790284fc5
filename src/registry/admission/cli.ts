/**
 * `portcullis admission manifests`: prints the webhook configurations (and Service) for a cluster.
 *   --service NAME --namespace NS   the registry runs in the cluster behind this Service
 *   --url https://HOST[:PORT]       the registry runs outside the cluster
 *   --ca-bundle FILE                PEM CA of the serving certificate (caBundle)
 *   --config FILE                   failurePolicy, timeoutSeconds, namespaces from admission.*
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { webhookManifests } from './manifests.ts';

const usage = `Usage:
  portcullis admission manifests (--service NAME [--namespace NS] | --url https://HOST[:PORT]) [--ca-bundle FILE] [--name NAME] [--config FILE]
      Print the MutatingWebhookConfiguration, ValidatingWebhookConfiguration (and the Service for
      --service) as YAML, with certificate instructions. failurePolicy, timeoutSeconds and the
      namespace selector come from admission.* in the configuration.`;

export async function admissionMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { service: { type: 'string' }, namespace: { type: 'string' }, url: { type: 'string' }, 'ca-bundle': { type: 'string' }, name: { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals[0] !== 'manifests' || positionals.length !== 1) {
    console.error(usage);
    return 2;
  }
  if (values.service && values.url) {
    console.error('error: give --service or --url, not both');
    return 2;
  }
  try {
    const config = await loadConfig({ file: values.config });
    const a = config.admission;
    const listen = a.listen ?? config.server.listen;
    const caBundlePem = values['ca-bundle'] ? await readFile(values['ca-bundle'], 'utf8') : undefined;
    if (caBundlePem !== undefined && !caBundlePem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--ca-bundle ${values['ca-bundle']}: not a PEM certificate`);
    process.stdout.write(webhookManifests({
      service: values.service,
      namespace: values.namespace ?? 'portcullis',
      url: values.url,
      caBundlePem,
      targetPort: Number(listen.slice(listen.lastIndexOf(':') + 1)),
      name: values.name ?? 'portcullis',
      failurePolicy: a.failurePolicy,
      timeoutSeconds: a.timeoutSeconds,
      namespaces: a.namespaces,
    }));
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
}

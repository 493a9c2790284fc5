/**
 * `portcullis policy check|test`: for policy authors and CI, no server needed.
 *   policy check POLICY...               validate documents (exit 1 naming the bad field)
 *   policy test POLICY --input FILE      evaluate against an input document (JSON or YAML; absent
 *                                        fields take neutral values), print the decision, exit 1 on deny
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ENFORCEMENT_POINTS, type EnforcementPoint, parsePolicy, PolicyError } from './document.ts';
import { CompiledPolicy, type PolicyDecision } from './evaluate.ts';
import { completeInput } from './input.ts';
import { explainMain, remoteUsage, simulateMain } from './remote-cli.ts';

const usage = `Usage:
  portcullis policy check POLICY...
      Validate policy documents; errors name the file and field.
  portcullis policy test POLICY --input FILE [--point push|pull|promotion|admission] [--json]
      Evaluate POLICY against an input document (JSON or YAML: image, scan, signatures, request,
      admission; see docs/policy.md), print the decision; exit 1 when denied, 2 on a bad policy or input.
${remoteUsage}`;

/** Human-readable decision: the verdict, then one line per rule. */
export function formatDecision(d: PolicyDecision): string {
  const lines = [`${d.allowed ? 'ALLOWED' : 'DENIED'} ${d.repository}@${d.digest} at ${d.point} by policy ${d.policy.name} v${d.policy.version} (${d.policy.project})`];
  for (const r of d.rules) {
    lines.push(`  ${r.outcome.padEnd(7)} ${r.mode.padEnd(7)} ${r.rule} (${r.kind})${r.message ? `: ${r.message}` : ''}`);
  }
  return lines.join('\n');
}

export async function policyMain(argv: string[]): Promise<number> {
  // explain and simulate ask a registry (their own options)
  if (argv[0] === 'explain') return explainMain(argv.slice(1));
  if (argv[0] === 'simulate') return simulateMain(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { input: { type: 'string' }, point: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...files] = positionals;
  if (values.help || !command) {
    console.log(usage);
    return values.help ? 0 : 2;
  }
  try {
    if (command === 'check' && files.length > 0) {
      for (const file of files) {
        const doc = parsePolicy(await readFile(file, 'utf8'));
        console.log(`${file}: policy ${doc.metadata.name} v${doc.metadata.version} for ${doc.metadata.project}, ${doc.rules.length} rules`);
      }
      return 0;
    }
    if (command === 'test' && files.length === 1 && values.input) {
      const policy = new CompiledPolicy(parsePolicy(await readFile(files[0]!, 'utf8')));
      const raw = parseYaml(await readFile(values.input, 'utf8')) as Parameters<typeof completeInput>[0];
      if (!raw || typeof raw !== 'object' || !raw.image || typeof raw.image.digest !== 'string' || typeof raw.image.repository !== 'string') {
        throw new PolicyError([`${values.input}: the input needs image.digest and image.repository`]);
      }
      if (values.point !== undefined) {
        if (!ENFORCEMENT_POINTS.includes(values.point as EnforcementPoint)) throw new PolicyError([`--point: one of ${ENFORCEMENT_POINTS.join(', ')}`]);
        raw.request = { ...raw.request, point: values.point as EnforcementPoint };
      }
      const decision = policy.evaluate(completeInput(raw));
      console.log(values.json ? JSON.stringify(decision, null, 2) : formatDecision(decision));
      return decision.allowed ? 0 : 1;
    }
  } catch (error) {
    if (error instanceof PolicyError) {
      console.error(error.issues.map((i) => `error: ${i}`).join('\n'));
      return 2;
    }
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
  console.error(usage);
  return 2;
}

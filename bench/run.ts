/**
 * `npm run bench`: Portcullis against CNCF distribution 2.8.2, interleaved (A B B A ...), then a
 * markdown report on stdout (progress goes to stderr). See docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism, release, totalmem } from 'node:os';
import { runGcScenario, type GcReport } from './gc.ts';
import { median } from './lib/load.ts';
import { BlobFactory } from './lib/oci.ts';
import { HELP, type Options, parseOptions, selected } from './lib/options.ts';
import { cleanupAll, log, setKeepDirs } from './lib/procs.ts';
import { type Server, type TargetConfig, type TargetName, describeTarget, startTarget } from './lib/targets.ts';
import { type Context, type Scenario, SCENARIOS } from './scenarios.ts';

const NOT_STARTED = 'not started';

interface Sample {
  round: number;
  values?: Record<string, number>;
  error?: string;
}

interface ScenarioResult {
  scenario: Scenario<any>;
  samples: Record<TargetName, Sample[]>;
  setupError: Partial<Record<TargetName, string>>;
  violations: string[];
}

function machineInfo(): Record<string, string> {
  let model = 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
  } catch {
    // not Linux
  }
  let distribution = 'unknown';
  try {
    distribution = execFileSync('/usr/bin/docker-registry', ['--version'], { encoding: 'utf8', timeout: 5_000 }).trim();
  } catch {
    // not installed
  }
  return {
    cpus: String(availableParallelism()),
    model,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: release(),
    node: process.version,
    distribution,
  };
}

function fmt(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function report(options: Options, results: ScenarioResult[], gc: GcReport | undefined, notes: string[]): string {
  const info = machineInfo();
  const lines: string[] = [];
  lines.push(`# Portcullis benchmark${options.quick ? ' (quick mode: reduced sizes, not comparable with full runs)' : ''}`, '');
  lines.push(`Machine: ${info.cpus} CPUs (${info.model}), ${info.memory} RAM, Linux ${info.kernel}, Node ${info.node}; reference: ${info.distribution}.`);
  lines.push(`${options.rounds} sample(s) per registry and scenario, interleaved A-B-B-A; the table shows the median of the samples.`, '');
  if (results.length) {
    lines.push('| # | Scenario | Metric | Portcullis | distribution 2.8.2 | Ratio P/D | Better |');
    lines.push('|---|---|---|---:|---:|---:|---|');
    let n = 0;
    for (const result of results) {
      n++;
      for (const metric of result.scenario.metrics) {
        const cell = (target: TargetName) => {
          if (!options.targets.includes(target)) return 'not run';
          const setupError = result.setupError[target];
          if (setupError) return setupError === NOT_STARTED ? 'not started' : 'failed';
          const values = result.samples[target].filter((s) => s.values).map((s) => s.values![metric.key]!);
          if (values.length === 0) return result.samples[target].length ? 'failed' : 'pending';
          return fmt(median(values), metric.digits);
        };
        const med = (target: TargetName) => median(result.samples[target].filter((s) => s.values).map((s) => s.values![metric.key]!));
        const ratio = med('portcullis') / med('distribution');
        lines.push(
          `| ${n} | ${result.scenario.title} | ${metric.label} (${metric.unit}) | ${cell('portcullis')} | ${cell('distribution')} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–'} | ${metric.better} |`,
        );
      }
    }
    lines.push('', 'Ratio = Portcullis / distribution. For "higher is better" rows a ratio above 1 means Portcullis is faster; for "lower" rows (latency, time, memory) a ratio below 1 means Portcullis is better.', '');

    lines.push('## Samples', '', '| Scenario | Metric | Portcullis samples | distribution samples |', '|---|---|---|---|');
    for (const result of results) {
      for (const metric of result.scenario.metrics) {
        const list = (target: TargetName) =>
          result.samples[target].map((s) => (s.values ? fmt(s.values[metric.key], metric.digits) : 'error')).join(', ') || '–';
        lines.push(`| ${result.scenario.id} | ${metric.label} (${metric.unit}) | ${list('portcullis')} | ${list('distribution')} |`);
      }
    }
  }

  if (gc) {
    lines.push('', '## Garbage collection (Portcullis only), pushes continuing', '');
    if (gc.status === 'not-run' && gc.gcMs === 0) {
      lines.push(`Not run: ${gc.reason ?? 'unknown reason'}.`);
    } else {
      lines.push(`Status: **${gc.status}**${gc.reason ? ` (${gc.reason})` : ''}`, '');
      lines.push('| Measure | Value |', '|---|---:|');
      lines.push(`| orphaned blobs created (256 B each) | ${gc.orphansCreated.toLocaleString('en-US')} in ${(gc.createMs / 1000).toFixed(1)} s |`);
      lines.push(`| \`portcullis ${options.gcArgs.join(' ')}\` wall time (process start to exit) | ${(gc.gcMs / 1000).toFixed(2)} s (exit ${gc.gcExit}) |`);
      if (gc.gcSummary) lines.push(`| gc's own summary | ${gc.gcSummary.replaceAll('|', '/')} |`);
      lines.push(`| grace period of unreferenced blobs | ${options.gcGraceSeconds} s |`);
      lines.push(`| image pushes while gc ran | ${gc.pushesDuringGc} |`);
      lines.push(`| failed pushes (must be 0) | ${gc.pushesFailed} |`);
      lines.push(`| manifests refused after HEAD said the reused blob exists (a client's push fails; must be 0) | ${gc.reuseRefused} |`);
      lines.push(`| accepted images checked after gc / broken (must be 0) | ${gc.imagesChecked} / ${gc.imagesBroken} |`);
      lines.push(`| unreferenced orphans removed (sample) | ${gc.orphanSampleRemoved} / ${gc.orphanSample} |`);
      if (gc.firstPushError) lines.push('', `First push error: ${gc.firstPushError}`);
      if (gc.firstReuseRefusal) lines.push('', `First refusal after HEAD 200: ${gc.firstReuseRefusal}`);
      if (gc.firstBroken) lines.push('', `First broken image: ${gc.firstBroken}`);
      if (gc.status !== 'ok' && gc.gcOutputTail) lines.push('', '```', gc.gcOutputTail, '```');
    }
  }

  const problems = [
    ...notes,
    ...results.flatMap((r) => [
      ...Object.entries(r.setupError)
        .filter(([, e]) => e !== NOT_STARTED)
        .map(([t, e]) => `${r.scenario.id} setup on ${t}: ${e}`),
      ...(['portcullis', 'distribution'] as const).flatMap((t) => r.samples[t].filter((s) => s.error).map((s) => `${r.scenario.id} on ${t}, round ${s.round}: ${s.error}`)),
      ...r.violations,
    ]),
  ];
  if (problems.length) lines.push('', '## Problems', '', ...problems.map((p) => `- ${p.split('\n')[0]}`));
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const options = parsed;
  setKeepDirs(options.keep);
  const targetConfig: TargetConfig = {
    tmpParent: options.tmpParent,
    distributionBin: options.distributionBin,
    portcullisArgs: options.portcullisArgs,
    portcullisEnv: {},
  };
  const factories = new Map<string, BlobFactory>();
  const ctx: Context = {
    options,
    factory: (unit, repeat = 1) => {
      const key = `${unit}x${repeat}`;
      let factory = factories.get(key);
      if (!factory) {
        factory = new BlobFactory(unit, repeat);
        factories.set(key, factory);
      }
      return factory;
    },
  };
  const notes: string[] = [];
  const scenarios = SCENARIOS.filter((s) => selected(options, s.id));
  const results: ScenarioResult[] = scenarios.map((scenario) => ({ scenario, samples: { portcullis: [], distribution: [] }, setupError: {}, violations: [] }));
  log(`mode ${options.quick ? 'quick' : 'full'}, ${options.rounds} round(s), targets ${options.targets.join(', ')}, scenarios ${scenarios.map((s) => s.id).join(' ') || '(none)'}`);

  // One long-running server per target for the shared scenarios.
  const servers = new Map<TargetName, Server>();
  const available: TargetName[] = [];
  if (scenarios.some((s) => !s.fresh)) {
    for (const target of options.targets) {
      try {
        const server = await startTarget(target, targetConfig);
        servers.set(target, server);
        log(`${target} listening on ${server.url} (pid ${server.pid})`);
      } catch (error) {
        notes.push(`${describeTarget(target)} could not be started: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`);
        log(`${target} could not be started: ${(error as Error).message}`);
      }
    }
  }
  for (const target of options.targets) if (servers.has(target) || !scenarios.some((s) => !s.fresh)) available.push(target);

  const record = (result: ScenarioResult, target: TargetName, round: number, values: Record<string, number>) => {
    result.samples[target].push({ round, values });
    const violation = result.scenario.check?.(target, values);
    if (violation) result.violations.push(`${violation} (round ${round})`);
    log(`${result.scenario.id} ${target} round ${round}: ${Object.entries(values).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(' ')}`);
  };

  for (const result of results) {
    const { scenario } = result;
    const states = new Map<TargetName, unknown>();
    const targets = scenario.fresh ? options.targets : available;
    if (!scenario.fresh) {
      for (const target of options.targets) if (!targets.includes(target)) result.setupError[target] = NOT_STARTED;
      for (const target of targets) {
        try {
          log(`${scenario.id}: setup on ${target}`);
          states.set(target, scenario.setup ? await scenario.setup(servers.get(target)!, ctx) : undefined);
        } catch (error) {
          result.setupError[target] = (error as Error).message;
          log(`${scenario.id}: setup on ${target} failed: ${(error as Error).message}`);
        }
      }
    }
    for (let round = 1; round <= options.rounds; round++) {
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      for (const target of order) {
        if (result.setupError[target]) continue;
        let fresh: Server | undefined;
        try {
          let server = servers.get(target);
          let state = states.get(target);
          if (scenario.fresh) {
            fresh = await startTarget(target, targetConfig);
            server = fresh;
            state = scenario.setup ? await scenario.setup(fresh, ctx) : undefined;
          }
          // The other registry's writes (distribution does not fsync its blobs) must not be
          // written back to disk during this sample.
          execFileSync('sync');
          record(result, target, round, await scenario.measure(server!, state, ctx));
        } catch (error) {
          result.samples[target].push({ round, error: (error as Error).message });
          log(`${scenario.id} ${target} round ${round} failed: ${(error as Error).message}`);
        } finally {
          await fresh?.stop();
        }
      }
    }
  }
  for (const server of servers.values()) await server.stop();

  let gc: GcReport | undefined;
  if (selected(options, 'gc') && options.targets.includes('portcullis')) {
    log('gc scenario (Portcullis only)');
    gc = await runGcScenario(options, targetConfig);
  }

  const markdown = report(options, results, gc, notes);
  process.stdout.write(`\n${markdown}`);
  if (options.json) {
    await writeFile(
      options.json,
      `${JSON.stringify({ date: new Date().toISOString(), machine: machineInfo(), options, results: results.map((r) => ({ id: r.scenario.id, metrics: r.scenario.metrics, samples: r.samples, setupError: r.setupError, violations: r.violations })), gc }, null, 2)}\n`,
    );
    log(`samples written to ${options.json}`);
  }
  const failed =
    notes.length > 0 ||
    results.some((r) => Object.keys(r.setupError).length > 0 || r.violations.length > 0 || Object.values(r.samples).some((samples) => samples.some((s) => s.error))) ||
    gc?.status === 'failed';
  return failed ? 1 : 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  log(`fatal: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanupAll();
}
process.exit(exitCode);

/**
 * Per-project IP lists: what the check on every /v2/ request costs (in-process, no server, a few
 * seconds). 1,000 projects with lists; checks for a registry where no project has lists, for a
 * project without lists, and for a project with lists (IPv4 allowed and refused, IPv4-mapped
 * IPv6, IPv6), with the decision memo and without it (a `net.BlockList` check every time).
 *
 *   node bench/project-networks.ts [--checks 2000000]
 */
import { parseArgs } from 'node:util';
import { ProjectNetworks } from '../src/registry/auth/networks/project-networks.ts';
import { NetworkList } from '../src/registry/edge/networks.ts';

const { values } = parseArgs({ options: { checks: { type: 'string', default: '2000000' } } });
const checks = Number(values.checks);
const rows = Array.from({ length: 1000 }, (_, i) => ({ project: `p${i}`, allow: ['10.0.0.0/8', '2001:db8::/32', '192.168.0.0/16'], deny: ['10.6.6.0/24'], updatedBy: undefined, updatedAt: new Date() }));
const store = (records: typeof rows) => ({ listProjectNetworks: async () => records, getProjectNetworks: async () => undefined, putProjectNetworks: async () => undefined });
const none = new ProjectNetworks(store([]), { refreshMs: 0 });
const some = new ProjectNetworks(store(rows), { refreshMs: 0 });
await none.load();
await some.load();
const allow = new NetworkList(rows[0]!.allow);
const deny = new NetworkList(rows[0]!.deny);

function time(label: string, check: () => unknown): void {
  for (let i = 0; i < 100_000; i++) check();
  const start = process.hrtime.bigint();
  for (let i = 0; i < checks; i++) check();
  console.log(`${label.padEnd(58)} ${(Number(process.hrtime.bigint() - start) / checks).toFixed(1).padStart(8)} ns/check`);
}

time('no project has lists', () => none.refusal('p5', '10.1.2.3'));
time('1,000 projects with lists; a project without lists', () => some.refusal('other', '10.1.2.3'));
time('project with lists, IPv4 allowed (memo)', () => some.refusal('p5', '10.1.2.3'));
time('project with lists, IPv4 refused (memo)', () => some.refusal('p5', '172.16.0.1'));
time('project with lists, IPv4-mapped IPv6 (memo)', () => some.refusal('p5', '::ffff:10.1.2.3'));
time('project with lists, IPv6 (memo)', () => some.refusal('p5', '2001:db8::1'));
time('without the memo: BlockList deny + allow, IPv4', () => deny.contains('10.1.2.3') || !allow.contains('10.1.2.3'));
time('without the memo: BlockList deny + allow, IPv6', () => deny.contains('2001:db8::1') || !allow.contains('2001:db8::1'));

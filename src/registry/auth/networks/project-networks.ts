/**
 * Per-project IP allow/deny lists: which client addresses may reach a project's repositories
 * through `/v2/` and the token endpoint (the global lists of `edge.allow`/`edge.deny` apply
 * before, to every route).
 *
 * The request path never queries the database: every project's lists are held in memory, read
 * in one query at start and again every `refreshMs` (changes made on another replica apply within
 * that time); a change made through this process applies to its cache at once. The table holds
 * rows only for projects that have lists, so the periodic read stays small.
 *
 * Rules: deny wins over allow; an empty allow list means any address; an address that cannot be
 * parsed is refused by a project that has any list. System administrators are not exempt (the
 * lists describe where the data may go); they change the lists through /api/v1, which the lists
 * do not restrict, so nobody locks themselves out for good.
 */
import { isIP } from 'node:net';
import { RegistryError } from '../../../oci/errors.ts';
import { NetworkList, parseCidr } from '../../edge/networks.ts';
import type { EventBus, RequestOrigin } from '../../events/bus.ts';
import type { AccessService } from '../access-service.ts';
import type { Identity } from '../identity.ts';
import type { ProjectNetworkStore } from './store.ts';

/** What access control asks: why `address` may not reach `project` (safe to show), or undefined. */
export interface ProjectNetworkPolicy {
  refusal(project: string, address: string): string | undefined;
}

interface CompiledLists {
  allow: NetworkList;
  deny: NetworkList;
}

export const maxNetworksPerList = 500;

/** Parses and checks one list; the error names the field and the bad entry (400 INVALID_REQUEST). */
export function validateNetworks(field: string, entries: readonly string[]): string[] {
  if (entries.length > maxNetworksPerList) throw new RegistryError('INVALID_REQUEST', `${field}: at most ${maxNetworksPerList} entries`);
  return entries.map((entry, index) => {
    try {
      parseCidr(entry);
    } catch (error) {
      throw new RegistryError('INVALID_REQUEST', `${field}[${index}]: ${(error as Error).message} (expected e.g. 10.0.0.0/8, 2001:db8::/32 or a single address)`);
    }
    return entry.trim();
  });
}

export class ProjectNetworks implements ProjectNetworkPolicy {
  readonly #store: ProjectNetworkStore;
  readonly #refreshMs: number;
  readonly #onError: (error: unknown) => void;
  #lists = new Map<string, CompiledLists>();
  /**
   * Decisions per project and address ('' = allowed): Node's BlockList costs 1.5-4 µs a check,
   * a map lookup about 0.05 µs, and a project's clients are few. Emptied with every list change.
   */
  #decisions = new Map<string, string>();
  /** Bumped by every local change: a periodic read that started before it is discarded. */
  #generation = 0;
  #timer: NodeJS.Timeout | undefined;
  /** What the last read returned, to skip rebuilding when nothing changed. */
  #signature: string | undefined;

  constructor(store: ProjectNetworkStore, options: { refreshMs: number; onError?: (error: unknown) => void }) {
    this.#store = store;
    this.#refreshMs = options.refreshMs;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Reads every project's lists (at start: a failure fails the start). */
  async load(): Promise<void> {
    const generation = this.#generation;
    const records = await this.#store.listProjectNetworks();
    if (generation !== this.#generation) return;
    // Unchanged (the usual periodic read): keep the compiled lists and the decisions.
    const signature = JSON.stringify(records.map((record) => [record.project, record.allow, record.deny]));
    if (signature === this.#signature) return;
    const lists = new Map<string, CompiledLists>();
    for (const record of records) {
      try {
        lists.set(record.project, { allow: new NetworkList(record.allow), deny: new NetworkList(record.deny) });
      } catch (error) {
        // A row that no longer parses must not open the project: refuse every address.
        this.#onError(error);
        lists.set(record.project, { allow: new NetworkList([]), deny: new NetworkList(['0.0.0.0/0', '::/0']) });
      }
    }
    this.#lists = lists;
    this.#signature = signature;
    this.#decisions = new Map();
  }

  /** A deleted project's rows go with it (ON DELETE CASCADE): forget its lists at once, not at the next read. */
  observe(events: EventBus): () => void {
    return events.subscribe('access.changed', (event) => {
      if (event.change !== 'project.deleted' || !this.#lists.has(event.target.name)) return;
      const next = new Map(this.#lists);
      next.delete(event.target.name);
      this.#generation++;
      this.#lists = next;
      this.#signature = undefined;
      this.#decisions = new Map();
    });
  }

  /** Re-reads the lists every `refreshMs`; a failed read keeps the previous lists. */
  start(): void {
    if (this.#timer || this.#refreshMs <= 0) return;
    this.#timer = setInterval(() => void this.load().catch(this.#onError), this.#refreshMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  refusal(project: string, address: string): string | undefined {
    if (this.#lists.size === 0) return undefined;
    const lists = this.#lists.get(project);
    if (!lists) return undefined;
    const key = `${project}\0${address}`;
    let decision = this.#decisions.get(key);
    if (decision === undefined) {
      decision = decide(project, lists, address) ?? '';
      if (this.#decisions.size >= DECISION_LIMIT) this.#decisions.clear();
      this.#decisions.set(key, decision);
    }
    return decision === '' ? undefined : decision;
  }

  /** Stores new lists and applies them to this process at once. */
  async put(project: string, lists: { allow: string[]; deny: string[] }, updatedBy: string | undefined): Promise<void> {
    const compiled = { allow: new NetworkList(lists.allow), deny: new NetworkList(lists.deny) };
    this.#generation++;
    await this.#store.putProjectNetworks(project, lists, updatedBy);
    this.#generation++;
    const next = new Map(this.#lists);
    if (lists.allow.length === 0 && lists.deny.length === 0) next.delete(project);
    else next.set(project, compiled);
    this.#lists = next;
    this.#signature = undefined;
    this.#decisions = new Map();
  }
}

const DECISION_LIMIT = 50_000;

/** Why `address` may not reach `project` under `lists` (safe to show: it never names the lists). */
function decide(project: string, lists: CompiledLists, address: string): string | undefined {
  const why = `requests from this address to project ${JSON.stringify(project)} are refused by the project's network rules`;
  if (!address || isIP(address) === 0) return why;
  if (lists.deny.contains(address)) return `${why} (the address is in a denied network)`;
  if (lists.allow.size > 0 && !lists.allow.contains(address)) return `${why} (the address is not in an allowed network)`;
  return undefined;
}

export interface ProjectNetworksView {
  project: string;
  allow: string[];
  deny: string[];
  updatedBy?: string;
  updatedAt?: string;
}

/**
 * Reading and changing a project's lists: `project.update` (project admins and system
 * administrators), validated, published as `access.changed` (`project.networks.updated`).
 */
export class ProjectNetworkAdministration {
  readonly #access: AccessService;
  readonly #store: ProjectNetworkStore;
  readonly #networks: ProjectNetworks | undefined;
  readonly #events: EventBus | undefined;

  /** `networks`: the running cache to update at once (absent in the CLI: servers see the change at their next read). */
  constructor(deps: { access: AccessService; store: ProjectNetworkStore; networks?: ProjectNetworks; events?: EventBus }) {
    this.#access = deps.access;
    this.#store = deps.store;
    this.#networks = deps.networks;
    this.#events = deps.events;
  }

  async #require(actor: Identity, project: string): Promise<void> {
    if (!(await this.#access.can(actor, 'project.update', { kind: 'project', name: project }))) throw new RegistryError('DENIED', 'requested access to the resource is denied');
    if (!(await this.#access.store.getProject(project))) throw new RegistryError('NOT_FOUND', `project ${JSON.stringify(project)} not found`);
  }

  async get(actor: Identity, project: string): Promise<ProjectNetworksView> {
    await this.#require(actor, project);
    const record = await this.#store.getProjectNetworks(project);
    if (!record) return { project, allow: [], deny: [] };
    return { project, allow: record.allow, deny: record.deny, ...(record.updatedBy ? { updatedBy: record.updatedBy } : {}), updatedAt: record.updatedAt.toISOString() };
  }

  /** Replaces both lists (an omitted list becomes empty; two empty lists remove the rules). */
  async put(actor: Identity, project: string, input: { allow?: string[]; deny?: string[] }, origin?: RequestOrigin): Promise<ProjectNetworksView> {
    await this.#require(actor, project);
    const lists = { allow: validateNetworks('allow', input.allow ?? []), deny: validateNetworks('deny', input.deny ?? []) };
    const by = actor.kind === 'anonymous' ? undefined : actor.name;
    if (this.#networks) await this.#networks.put(project, lists, by);
    else await this.#store.putProjectNetworks(project, lists, by);
    this.#events?.publish({ type: 'access.changed', at: new Date(), origin, change: 'project.networks.updated', target: { kind: 'project', name: project }, detail: { allow: lists.allow, deny: lists.deny } });
    return this.get(actor, project);
  }
}

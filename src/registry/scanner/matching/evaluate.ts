/**
 * Whether one installed version is affected by one OSV `affected[]` entry, following the schema's
 * evaluation pseudocode: listed in `versions[]`, or inside an `ECOSYSTEM`/`SEMVER` range — events
 * walked in version order (introduced: vulnerable from here; fixed: not from here; last_affected: not
 * above here), subject to `limit` events. Also yields the fix of the interval that contains the version.
 */
import type { Affected } from '../vulndb/osv.ts';
import { rangeComparator } from '../vulndb/osv.ts';
import { schemeForEcosystem } from '../versions/index.ts';

export interface Evaluation {
  affected: boolean;
  /** The `fixed` versions closing the interval(s) the version lies in. */
  fixed: string[];
}

const NOT_AFFECTED: Evaluation = Object.freeze({ affected: false, fixed: [] }) as Evaluation;

const versionSets = new WeakMap<Affected, Set<string>>();

function inVersionList(affected: Affected, version: string): boolean {
  if (affected.versions.length === 0) return false;
  let set = versionSets.get(affected);
  if (!set) versionSets.set(affected, (set = new Set(affected.versions)));
  if (set.has(version)) return true;
  // Equal under the ecosystem's order (e.g. PEP 440 `1.0` == `1.0.0`), checked only without ranges
  // to keep the common path a hash lookup; ranges already cover listed versions when present.
  if (affected.ranges.length > 0) return false;
  const cmp = schemeForEcosystem(affected.ecosystem)?.compare;
  return cmp !== undefined && affected.versions.some((v) => cmp(v, version) === 0);
}

export function evaluateAffected(affected: Affected, version: string): Evaluation {
  let hit = inVersionList(affected, version);
  const fixed: string[] = [];
  for (const range of affected.ranges) {
    const cmp = rangeComparator(affected.ecosystem, range.type);
    if (!cmp) continue;
    if (range.limits.length > 0 && !range.limits.some((l) => l === '*' || cmp(version, l) < 0)) continue;
    let vulnerable = false;
    let openedAt = -1;
    const events = range.events;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.kind === 'introduced') {
        if (e.version === '0' || cmp(version, e.version) >= 0) {
          vulnerable = true;
          openedAt = i;
        }
      } else if (e.kind === 'fixed') {
        if (cmp(version, e.version) >= 0) vulnerable = false;
      } else if (cmp(version, e.version) > 0) {
        vulnerable = false;
      }
    }
    if (!vulnerable) continue;
    hit = true;
    for (let i = openedAt + 1; i < events.length; i++) {
      const e = events[i]!;
      if (e.kind === 'fixed') {
        fixed.push(e.version);
        break;
      }
      if (e.kind === 'last_affected') break;
    }
  }
  if (!hit) return NOT_AFFECTED;
  return { affected: true, fixed };
}

/**
 * What a re-evaluation reports as changed: the merge walk over stored references and new template
 * lists (diffGroups) and the change event it becomes (changeOf), on hand-made findings.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changeOf, diffGroups, evaluationOf, templatesOf } from '../../src/registry/scanner/evaluation.ts';
import type { FindingTemplate } from '../../src/registry/scanner/matching/matcher.ts';

const t = (id: string, severity: FindingTemplate['severity'], fixedVersions: string[] = []): FindingTemplate =>
  Object.freeze({ id, aliases: [], cves: [], ecosystem: 'npm', matchedName: 'x', installedVersion: '1.0.0', fixedVersions, fixAvailable: fixedVersions.length > 0, severity, severitySource: 'cvss', malicious: id.startsWith('MAL-') });
const db = { hash: 'h', updatedAt: 0 };
const names = ['a', 'b', 'c', 'd', 'e'];

describe('re-evaluation change detection', () => {
  const kept = Object.freeze([t('GHSA-kept', 'high')]);
  const before = evaluationOf(
    [
      { packageIndex: 0, findings: kept },
      { packageIndex: 2, findings: Object.freeze([t('GHSA-sev', 'low'), t('GHSA-gone', 'medium')]) },
      { packageIndex: 3, findings: Object.freeze([t('GHSA-all-gone', 'high')]) },
    ],
    db,
  );
  const after = evaluationOf(
    [
      { packageIndex: 0, findings: kept },
      { packageIndex: 1, findings: Object.freeze([t('MAL-new', 'critical'), t('GHSA-new', 'critical', ['2.0.0'])]) },
      { packageIndex: 2, findings: Object.freeze([t('GHSA-sev', 'high'), t('GHSA-added', 'low')]) },
    ],
    db,
  );

  test('unchanged packages are skipped; new, gone and differing packages are listed, those with findings before first', () => {
    const diffs = diffGroups(before.refs, after);
    assert.deepEqual(
      diffs.map((d) => [d.packageIndex, d.removed.length, d.added.map((x) => x.id)]),
      [
        [2, 2, ['GHSA-sev', 'GHSA-added']],
        [3, 1, []],
        [1, 0, ['MAL-new', 'GHSA-new']],
      ],
    );
    assert.deepEqual(diffGroups(after.refs, after), [], 'nothing differs from itself');
  });

  test('the change: other severity is a changed finding, new critical and malicious ones are counted, lists are cut at the limit', () => {
    const templates = templatesOf(before);
    const change = changeOf(diffGroups(before.refs, after), templates, (i) => names[i]!);
    assert.deepEqual(
      change.changed.map((c) => `${c.id}@${c.package}:${c.severity}`),
      ['GHSA-sev@c:high'],
    );
    assert.deepEqual(
      change.added.map((c) => `${c.id}@${c.package}`),
      ['GHSA-added@c', 'MAL-new@b', 'GHSA-new@b'],
    );
    assert.deepEqual(
      change.removed.map((c) => `${c.id}@${c.package}`),
      ['GHSA-gone@c', 'GHSA-all-gone@d'],
    );
    assert.equal(change.newCritical, 2);
    const cut = changeOf(diffGroups(before.refs, after), templates, (i) => names[i]!, 1);
    assert.equal(cut.added.length, 1);
    assert.equal(cut.newCritical, 2, 'counted whole');
  });

  test('references not in package order (never written so) give the same answer', () => {
    const shuffled = before.refs.split(';').reverse().join(';');
    assert.deepEqual(diffGroups(shuffled, after), diffGroups(before.refs, after));
  });
});

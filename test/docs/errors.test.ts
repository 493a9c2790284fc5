/**
 * docs/errors.md documents every entry of the error catalogue (src/oci/errors.ts): this test
 * parses its table and fails when the two differ, in either direction.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { type ErrorCode, errorCatalogue, wireCodeOf } from '../../src/oci/errors.ts';
import { ociSpecCodes } from '../support/oci-spec-codes.ts';

interface Row {
  code: string;
  status: number;
  wire: string;
  definedBy: string;
  when: string;
}

const header = ['Code', 'HTTP', 'On the wire', 'Defined by', 'When it is returned'];

/** The rows of the table whose header is {@link header}; throws if the table is missing or malformed. */
function parseErrorTable(markdown: string): Row[] {
  const lines = markdown.split('\n');
  const cells = (line: string): string[] => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim());
  const start = lines.findIndex((line) => line.trim().startsWith('|') && JSON.stringify(cells(line)) === JSON.stringify(header));
  if (start === -1) throw new Error(`no table with the header | ${header.join(' | ')} |`);
  const rows: Row[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.trim().startsWith('|')) break;
    const [code, status, wire, definedBy, when, ...rest] = cells(line);
    if (rest.length > 0 || when === undefined) throw new Error(`malformed row: ${line}`);
    const unquote = (cell: string): string => {
      const match = /^`([A-Z_]+)`$/.exec(cell);
      if (!match) throw new Error(`expected a code in backticks, not ${JSON.stringify(cell)}: ${line}`);
      return match[1]!;
    };
    rows.push({ code: unquote(code!), status: Number(status), wire: unquote(wire!), definedBy: definedBy!, when: when });
  }
  return rows;
}

const markdown = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('docs/errors.md', () => {
  const rows = parseErrorTable(markdown);
  const documented = new Map(rows.map((row) => [row.code, row]));
  const catalogue = Object.keys(errorCatalogue) as ErrorCode[];

  test('lists each code once', () => {
    assert.equal(documented.size, rows.length, `duplicate rows: ${rows.map((r) => r.code).filter((c, i, all) => all.indexOf(c) !== i).join(', ')}`);
  });

  test('documents every code of the catalogue', () => {
    const missing = catalogue.filter((code) => !documented.has(code));
    assert.deepEqual(missing, [], `add a row to docs/errors.md for: ${missing.join(', ')}`);
  });

  test('documents no code the catalogue does not have', () => {
    const extra = rows.map((row) => row.code).filter((code) => !(code in errorCatalogue));
    assert.deepEqual(extra, [], `remove from docs/errors.md (not in src/oci/errors.ts): ${extra.join(', ')}`);
  });

  test('gives each code the status, the wire code and the origin of the catalogue', () => {
    for (const code of catalogue) {
      const row = documented.get(code);
      if (!row) continue; // reported above
      assert.equal(row.status, errorCatalogue[code].status, `${code}: HTTP status`);
      assert.equal(row.wire, wireCodeOf(code), `${code}: code on the wire`);
      assert.equal(row.definedBy, code in ociSpecCodes ? 'OCI' : 'Portcullis', `${code}: defined by`);
      assert.ok(row.when.length >= 20, `${code}: say when it is returned`);
    }
  });

  test('the parser notices a missing, an extra and a wrong row', () => {
    const table = [
      `| ${header.join(' | ')} |`,
      '| --- | --- | --- | --- | --- |',
      '| `BLOB_UNKNOWN` | 404 | `BLOB_UNKNOWN` | OCI | The blob is not in the repository. |',
      '| `NO_SUCH_CODE` | 400 | `NO_SUCH_CODE` | Portcullis | Made up for this test only. |',
      '',
      'prose after the table | with a pipe',
    ].join('\n');
    assert.deepEqual(
      parseErrorTable(table).map((row) => [row.code, row.status, row.wire, row.definedBy]),
      [
        ['BLOB_UNKNOWN', 404, 'BLOB_UNKNOWN', 'OCI'],
        ['NO_SUCH_CODE', 400, 'NO_SUCH_CODE', 'Portcullis'],
      ],
    );
    assert.throws(() => parseErrorTable('| Code | HTTP |\n| --- | --- |\n'), /no table/);
    assert.throws(() => parseErrorTable(`| ${header.join(' | ')} |\n| --- |\n| BLOB_UNKNOWN | 404 | x | OCI | when |\n`), /backticks/);
  });
});

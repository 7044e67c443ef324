import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { renderErrorsDoc, ERRORS_DOC_PATH } from '../../scripts/gen-errors-doc.js';
import { CATALOGUE } from '../../src/core/catalogue.js';
import { ERROR_CODES } from '../../src/core/codes.js';

test('docs/errors.md is the generated catalogue (run: node --import tsx scripts/gen-errors-doc.ts)', () => {
  const committed = readFileSync(ERRORS_DOC_PATH, 'utf8');
  assert.equal(committed, renderErrorsDoc(), 'docs/errors.md is stale: regenerate it with `node --import tsx scripts/gen-errors-doc.ts`');
  for (const e of CATALOGUE) assert.ok(committed.includes(`| ${e.id} |`), `${e.id} listed`);
  for (const code of Object.keys(ERROR_CODES)) assert.ok(committed.includes(`| ${code} |`), `${code} listed`);
});

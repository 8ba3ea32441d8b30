// The shared corpus decided through the JavaScript binding gives exactly the verdicts of
// bindings/shared/expected.json (written by the native Rust rules), field for field.
// Floats are compared with strict equality: the same WebAssembly code computes them, and JSON
// carries each f64 in its shortest round-trip form, so they must be bit-identical.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';

import { sbd } from './binding.mjs';

const { PolicyComponent, requestFromJson, verdictToJson } = sbd;

const shared = new URL('../../shared/', import.meta.url);
const corpus = JSON.parse(readFileSync(new URL('requests.json', shared), 'utf8'));
const expected = JSON.parse(readFileSync(new URL('expected.json', shared), 'utf8'));
const configs = Object.fromEntries(
  Object.entries(corpus.configs).map(([name, file]) => [name, readFileSync(new URL(file, shared))]),
);

function mismatches(got, indices) {
  const bad = [];
  got.forEach((verdict, k) => {
    const i = indices[k];
    try {
      assert.deepStrictEqual(verdict, expected[i]);
    } catch {
      bad.push(`case ${i}:\n  js       ${JSON.stringify(verdict)}\n  expected ${JSON.stringify(expected[i])}`);
    }
  });
  return bad;
}

describe('cross-language corpus', () => {
  let component;
  before(async () => {
    component = await PolicyComponent.load();
  });

  it('is large and aligned', () => {
    assert.ok(corpus.cases.length >= 200, `${corpus.cases.length} cases`);
    assert.equal(corpus.cases.length, expected.length);
  });

  it('gives the expected verdict for every case, one by one', () => {
    const policies = Object.fromEntries(Object.entries(configs).map(([n, b]) => [n, component.instantiate(b)]));
    const got = corpus.cases.map((c) => verdictToJson(policies[c.config].evaluate(requestFromJson(c.request))));
    const bad = mismatches(got, got.map((_, i) => i));
    assert.equal(bad.length, 0, `${bad.length} of ${got.length} verdicts differ:\n${bad.slice(0, 5).join('\n')}`);
  });

  it('gives the expected verdicts for each configuration in one batch', () => {
    for (const [name, bytes] of Object.entries(configs)) {
      const indices = corpus.cases.flatMap((c, i) => (c.config === name ? [i] : []));
      assert.ok(indices.length > 0, `no case uses configuration ${name}`);
      const policy = component.instantiate(bytes);
      const got = policy.evaluateBatch(indices.map((i) => requestFromJson(corpus.cases[i].request))).map(verdictToJson);
      const bad = mismatches(got, indices);
      assert.equal(bad.length, 0, `configuration ${name}: ${bad.length} verdicts differ:\n${bad.slice(0, 5).join('\n')}`);
    }
  });
});

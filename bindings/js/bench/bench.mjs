// Per-decision time of the JavaScript binding over the cross-language corpus
// (bindings/shared/requests.json), measured the way the Rust and Python benchmarks measure it.
//
//   node bench/bench.mjs [MIN_SECONDS]
//
// Prints one JSON object per line, {"language", "path", "ns_per_decision", "decisions",
// "rounds"}. Each measurement decides the whole corpus once per round, in file order, after 0.5 s
// of warm-up, until MIN_SECONDS (default 2) have passed and at least 5 rounds ran, and
// reports the median round: one `evaluate` call per decision, or one `evaluateBatch` call per
// configuration. Requests are parsed beforehand; checking and converting them to jco's values
// and the verdicts back is part of every decision, as it is for a caller.
import { readFileSync } from 'node:fs';

import { PolicyComponent, requestFromJson } from '../src/index.js';

const MIN_ROUNDS = 5;
const WARM_UP_MS = 500;
const limitMs = 1000 * Number(process.argv[2] ?? 2);
const shared = new URL('../../shared/', import.meta.url);
const corpus = JSON.parse(readFileSync(new URL('requests.json', shared), 'utf8'));
const component = await PolicyComponent.load();
const policies = Object.fromEntries(
  Object.entries(corpus.configs).map(([name, file]) => [name, component.instantiate(readFileSync(new URL(file, shared)))]),
);
const cases = corpus.cases.map((c) => [c.config, requestFromJson(c.request)]);
const texts = corpus.cases.map((c) => [c.config, JSON.stringify(c.request)]);
const byConfig = Object.keys(policies).map((name) => [name, cases.filter(([c]) => c === name).map(([, r]) => r)]);

function measure(round) {
  const warmUp = performance.now();
  do round();
  while (performance.now() - warmUp < WARM_UP_MS);
  const start = performance.now();
  const rounds = [];
  while (rounds.length < MIN_ROUNDS || performance.now() - start < limitMs) {
    const t = process.hrtime.bigint();
    round();
    rounds.push(Number(process.hrtime.bigint() - t) / cases.length);
  }
  rounds.sort((a, b) => a - b);
  return [rounds[Math.floor(rounds.length / 2)], rounds.length];
}

const paths = [
  ['jco typed evaluate', () => cases.forEach(([config, request]) => policies[config].evaluate(request))],
  ['jco typed evaluate-batch', () => byConfig.forEach(([config, requests]) => policies[config].evaluateBatch(requests))],
  ['jco JSON evaluateJson (evaluate-json + check-verdict)', () => texts.forEach(([config, text]) => policies[config].evaluateJson(text))],
];
for (const [path, round] of paths) {
  const [ns, rounds] = measure(round);
  console.log(JSON.stringify({ language: 'javascript', path, ns_per_decision: ns, decisions: cases.length, rounds }));
}

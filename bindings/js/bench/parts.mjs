// Where one Node decision's time goes: the binding's own input conversion and checks, jco's
// glue and the component, one call per request or one batch. Interleaved rounds over the
// default-configuration requests of bindings/shared/requests.json for SECONDS (default 10);
// prints the median and 10th percentile per request of each part.
//
//   node bench/parts.mjs [SECONDS]
import { readFileSync } from 'node:fs';

import { PolicyComponent, requestFromJson } from '../src/index.js';
import { liftVerdict, lowerRequest } from '../src/convert.js';
import { contractViolation } from '../src/verify.js';

const seconds = Number(process.argv[2] ?? 10);
const shared = new URL('../../shared/', import.meta.url);
const corpus = JSON.parse(readFileSync(new URL('requests.json', shared), 'utf8'));
const requests = corpus.cases.filter((c) => c.config === 'default').map((c) => requestFromJson(c.request));
const config = readFileSync(new URL(corpus.configs.default, shared));
const component = await PolicyComponent.load();
const raw = component.instance().DelegationPolicy.create(new Uint8Array(config)); // jco's resource, no binding around it
const policy = component.instantiate(config);
const lowered = requests.map((r) => lowerRequest(r, 'request'));
const answers = lowered.map((l) => raw.evaluate(l));
const texts = corpus.cases.filter((c) => c.config === 'default').map((c) => JSON.stringify(c.request));

const parts = {
  'binding: convert and check the input': () => { for (const r of requests) lowerRequest(r, 'request'); },
  'binding: lift and re-check the verdict': () => answers.forEach((v, i) => contractViolation(lowered[i], liftVerdict(v))),
  'jco + component: evaluate': () => { for (const l of lowered) raw.evaluate(l); },
  'jco + component: evaluate-batch': () => { raw.evaluateBatch(lowered); },
  'binding: Policy.evaluate': () => { for (const r of requests) policy.evaluate(r); },
  'binding: Policy.evaluateBatch': () => { policy.evaluateBatch(requests); },
  'binding: Policy.evaluateJson (JSON path, checked by the component)': () => { for (const t of texts) policy.evaluateJson(t); },
  'jco + component: evaluate-json': () => { for (const t of texts) raw.evaluateJson(t); },
};
const rounds = Object.fromEntries(Object.keys(parts).map((k) => [k, []]));
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  for (const [name, run] of Object.entries(parts)) {
    const t = process.hrtime.bigint();
    run();
    rounds[name].push(Number(process.hrtime.bigint() - t) / requests.length / 1000);
  }
}
for (const [name, r] of Object.entries(rounds)) {
  r.sort((a, b) => a - b);
  console.log(`${name.padEnd(42)} median ${r[r.length >> 1].toFixed(2)} us, p10 ${r[Math.floor(r.length / 10)].toFixed(2)} us`);
}

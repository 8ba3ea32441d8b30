// Three lines decide a delegation: the package carries the transpiled policy component and the
// default policy, so no Rust toolchain is needed (`npm install ./bindings/js`).
import { Policy, requestFromJson, verdictToJson } from 'sbd-policy';

const request = {
  from: { id: 'orchestrator', trust: 900 },
  to: { id: 'refund-agent', trust: 700 },
  task: { id: 'refund-4821', action_kind: 'payment.refund', risk: 'low', value: 5_000_000_000 },
  parent_mandate: { action_kinds: ['payment.*'], budgets: [{ amount: 500_000_000, unit: 'USD_MICROCENTS' }],
    counterparties: [], expires_at: 1_790_003_600_000, remaining_depth: 3, value_ceiling: 50_000_000_000 },
  requested_mandate: { action_kinds: ['payment.refund'], budgets: [{ amount: 200_000_000, unit: 'USD_MICROCENTS' }],
    counterparties: [], expires_at: 1_790_003_600_000, remaining_depth: 2, value_ceiling: 50_000_000_000 },
  state: [0.1],
  now: 1_790_000_000_000,
};

// The three lines:
const policy = await Policy.load(); // the default policy; or Policy.load('my-policy.json')
const verdict = policy.evaluate(requestFromJson(request));
console.log(JSON.stringify(verdictToJson(verdict), null, 2));

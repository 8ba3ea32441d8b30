// A plain Node.js agent loop whose every hand-off is gated by the sbd policy.
//
// An orchestrator works through a queue of tasks. For each one it picks a worker agent, asks
// the policy whether it may delegate, and then: on `allow`, hands the task over with the
// *child* mandate from the grant (never its own) and records the hop in the chain; on
// `escalate`, parks the task for the human or the more trusted agent the policy names; on
// `deny`, never contacts the worker and logs the reason code. When a delegated task ends,
// `trustDeltas` says how every agent's trust score changes.
//
//   npm run example [-- --config path/to/config.postcard]

import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Policy } from '../src/index.js';

/** @typedef {import('../src/index.js').Agent} Agent */
/** @typedef {import('../src/index.js').Link} Link */
/** @typedef {import('../src/index.js').Mandate} Mandate */
/** @typedef {import('../src/index.js').Task} Task */
/** @typedef {{ holder: Agent, mandate: Mandate, chain: Link[] }} Hop where a task is: who holds it, under which mandate */
/** @typedef {{ id: string, trust: number, subcontractTo?: string, fails?: boolean }} Worker */

const USD = 100_000_000n; // USD microcents per dollar
/** @param {bigint | number} microcents */
const dollars = (microcents) => (Number(microcents) / Number(USD)).toFixed(2);

const { values: args } = parseArgs({
  options: { config: { type: 'string', default: fileURLToPath(new URL('../../shared/configs/default.postcard', import.meta.url)) } },
});

/**
 * Asks the policy before contacting `worker`; returns the worker's hop if allowed.
 * @param {Policy} policy
 * @param {Hop} hop
 * @param {Worker} worker
 * @param {Task} task
 * @param {Mandate} wanted
 * @param {bigint} now
 * @returns {Hop | null}
 */
function delegate(policy, hop, worker, task, wanted, now) {
  const verdict = policy.evaluate({
    from: hop.holder,
    to: { id: worker.id, trust: worker.trust },
    task,
    parentMandate: hop.mandate,
    // Ask for no more than the task needs; the policy checks it lies within our own mandate.
    requestedMandate: policy.narrow(hop.mandate, wanted),
    chain: hop.chain,
    state: [0.12], // e.g. the 30-day annualised volatility the SBD safe set looks at
    now,
  });
  const arrow = `${hop.holder.id} -> ${worker.id}`;
  switch (verdict.kind) {
    case 'allow': {
      const { grant } = verdict;
      console.log(
        `  ALLOW    ${arrow}: alpha ${grant.alpha.toFixed(2)}, depth ${grant.depth}/${grant.maxDepth}, ` +
          `child ceiling $${dollars(grant.childMandate.valueCeiling)}`,
      );
      for (const w of grant.warnings) console.log(`           warning ${w.name} (${w.code}): ${w.message}`);
      const link = { from: hop.holder.id, to: worker.id, depth: grant.depth, alpha: grant.alpha, at: now, reason: task.id };
      return { holder: { id: worker.id, trust: worker.trust }, mandate: grant.childMandate, chain: [...hop.chain, link] };
    }
    case 'escalate': {
      const to = verdict.target.kind === 'human' ? `human \`${verdict.target.who}\`` : `agent \`${verdict.target.agentId}\``;
      console.log(`  ESCALATE ${arrow}: to ${to}, ${verdict.name} (${verdict.code}); task parked`);
      return null;
    }
    case 'deny':
      console.log(`  DENY     ${arrow}: ${verdict.name} (${verdict.code}): ${verdict.message}`);
      return null;
  }
}

const policy = await Policy.fromFiles(args.config);
console.log(`policy \`${policy.info.name}\` ${policy.info.version} (config ${policy.info.configDigest.slice(0, 12)})`);
const now = BigInt(Date.now());
/** @type {Hop} */
const orchestrator = {
  holder: { id: 'orchestrator', trust: 900 },
  mandate: {
    valueCeiling: 500n * USD,
    actionKinds: ['payment.*', 'crm.*'],
    counterparties: ['acme', 'globex'],
    budgets: [{ unit: 'usd-microcents', amount: 50n * USD }],
    remainingDepth: 4,
    expiresAt: now + 3_600_000n,
  },
  chain: [],
};
/** @type {Record<string, Worker>} */
const workers = {
  'refund-agent': { id: 'refund-agent', trust: 720, subcontractTo: 'ledger-agent' },
  'ledger-agent': { id: 'ledger-agent', trust: 680, subcontractTo: 'refund-agent' }, // would close a cycle
  'intern-bot': { id: 'intern-bot', trust: 150 },
  'crm-agent': { id: 'crm-agent', trust: 610, fails: true },
};
/** @type {[Task, string][]} */
const queue = [
  [{ id: 'refund-4821', actionKind: 'payment.refund', risk: 'medium', value: 87n * USD, counterparty: 'acme' }, 'refund-agent'],
  [{ id: 'wire-9000', actionKind: 'payment.wire', risk: 'high', value: 400n * USD, counterparty: 'globex' }, 'intern-bot'],
  [{ id: 'lookup-17', actionKind: 'crm.read', risk: 'low', value: 0n, counterparty: 'acme' }, 'crm-agent'],
  [{ id: 'refund-big', actionKind: 'payment.refund', risk: 'low', value: 900n * USD, counterparty: 'acme' }, 'refund-agent'],
];
/** @type {Record<string, number>} */
const trust = Object.fromEntries([...Object.values(workers).map((w) => [w.id, w.trust]), ['orchestrator', 900]]);

for (const [task, first] of queue) {
  console.log(`task \`${task.id}\` (${task.actionKind}, ${task.risk}, $${dollars(task.value ?? 0)})`);
  const taskValue = BigInt(task.value ?? 0);
  /** @type {Mandate} */
  const wanted = {
    valueCeiling: taskValue > 0n ? taskValue : 1n,
    actionKinds: [task.actionKind],
    counterparties: task.counterparty ? [task.counterparty] : [],
    budgets: [{ unit: 'usd-microcents', amount: 5n * USD }],
    remainingDepth: 2,
    expiresAt: now + 600_000n,
  };
  let hop = orchestrator;
  /** @type {Worker | undefined} */
  let worker = workers[first];
  while (worker) {
    const next = delegate(policy, hop, worker, task, wanted, now);
    if (!next) break; // the current holder keeps the task
    hop = next;
    worker = worker.subcontractTo ? workers[worker.subcontractTo] : undefined;
  }
  if (hop === orchestrator) continue; // nothing was handed over
  const executor = hop.holder.id;
  const agents = [...hop.chain.map((l) => l.from), executor];
  const failed = Boolean(workers[executor].fails);
  /** @type {import('../src/index.js').Outcome} */
  const outcome = failed ? { kind: 'failure', penalty: 40 } : { kind: 'success', gain: 5 };
  for (const d of policy.trustDeltas(agents, outcome)) trust[d.agent] += d.delta;
  console.log(`  ${failed ? 'FAILED' : 'DONE'} by ${executor}; trust now ${agents.map((a) => `${a} ${trust[a].toFixed(0)}`).join(', ')}`);
}
policy.close();

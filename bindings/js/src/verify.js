// Defence in depth, as the Rust host has it (host/runtime/src/verify.rs): an allow is
// re-checked against the request it answers before it is trusted. A component that returns an
// allow breaking the contract (a widened mandate, a degree outside [0, 1], weights that do not
// partition the chain, a wrong depth) is treated as faulty, and the binding fails closed.
// `request` is the lowered request (jco's values: `u64` as `bigint`).

const WEIGHT_SUM_TOLERANCE = 1e-9;
const TIER_FLOORS = [
  [951, 't7'],
  [876, 't6'],
  [800, 't5'],
  [650, 't4'],
  [500, 't3'],
  [350, 't2'],
  [200, 't1'],
  [0, 't0'],
];

const tierOf = (score) => TIER_FLOORS.find(([floor]) => score >= floor)[1];

/** `a.*` covers names strictly under `a.`; `*` covers all; a name covers itself. */
function covers(outer, inner) {
  if (outer === '*') return true;
  if (outer.endsWith('.*')) {
    const family = outer.slice(0, -1); // keeps the dot: `a.`
    return inner.startsWith(family) && inner.length > family.length;
  }
  return outer === inner;
}

/** Why `child` is not within `parent` (`attenuation::check_within`), or null. */
function widening(parent, child) {
  for (const budget of child.budgets) {
    const held = parent.budgets.filter((b) => b.unit === budget.unit).map((b) => b.amount);
    if (held.length === 0 || held.some((amount) => budget.amount > amount)) {
      return `\`budgets\`: ${budget.amount} ${budget.unit} is more than the parent holds`;
    }
  }
  const kind = child.actionKinds.find((k) => !parent.actionKinds.some((p) => covers(p, k)));
  if (kind !== undefined) return `\`action_kinds\`: \`${kind}\` is not within the parent's`;
  const party = child.counterparties.find((c) => !parent.counterparties.some((p) => p === '*' || p === c));
  if (party !== undefined) return `\`counterparties\`: \`${party}\` is not within the parent's`;
  if (child.valueCeiling > parent.valueCeiling) return "`value_ceiling` exceeds the parent's";
  if (child.expiresAt > parent.expiresAt) return "`expires_at` is later than the parent's";
  if (child.remainingDepth >= parent.remainingDepth) return "`remaining_depth` is not smaller than the parent's";
  return null;
}

const inUnit = (x) => x >= 0 && x <= 1;

/**
 * Why `verdict` (the package's form) breaks the contract for the lowered `request`; null for
 * every refusal and escalation, and for an allow that keeps it.
 */
export function contractViolation(request, verdict) {
  if (verdict.kind !== 'allow') return null;
  const g = verdict.grant;
  for (const [name, x] of [['alpha', g.alpha], ['lambda', g.lambda], ['accountability_ceiling', g.accountabilityCeiling]]) {
    if (!inUnit(x)) return `\`${name}\` is ${x}, outside [0, 1]`;
  }
  const hop = request.chain.length + 1;
  if (g.depth !== hop) return `\`depth\` is ${g.depth} for hop ${hop}`;
  if (g.depth > g.maxDepth) return `\`depth\` ${g.depth} exceeds \`max_depth\` ${g.maxDepth}`;
  if (g.subAgent === request.from.id || request.chain.some((l) => l.from === g.subAgent)) {
    return `\`sub_agent\` \`${g.subAgent}\` is already in the chain`;
  }
  if (g.effectiveTrust !== request.to.trust || g.effectiveTier !== tierOf(g.effectiveTrust)) {
    return "the effective trust is not the executor's own";
  }
  const wider = widening(request.parentMandate, g.childMandate);
  if (wider !== null) return `the child mandate is wider than the parent's: ${wider}`;
  if (g.remainingDepth !== g.childMandate.remainingDepth) return '`remaining_depth` disagrees with the child mandate';
  if (g.accountability.length !== request.chain.length + 2) {
    return `${g.accountability.length} accountability shares for a chain of ${request.chain.length + 2} agents`;
  }
  if (g.accountability.some((s) => !inUnit(s.weight))) return 'an accountability weight is outside [0, 1]';
  const sum = g.accountability.reduce((total, s) => total + s.weight, 0);
  if (Math.abs(sum - 1) > WEIGHT_SUM_TOLERANCE) return `accountability weights sum to ${sum}, not 1`;
  return null;
}

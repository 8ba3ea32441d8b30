// The JSON forms the Rust side uses: requests as `sbd eval --request` reads them, verdicts as
// `sbd eval` prints them (snake_case fields, Cycles unit names such as `USD_MICROCENTS`, trust
// tiers `T0`..`T7`). `verdictToJson` gives the shape of `bindings/shared/expected.json`, which
// every language's test compares against. Optional request fields take the Rust defaults and
// unknown fields are refused (a `TypeError` naming the field), as serde does on the Rust side.

import { u64 } from './convert.js';

const UNIT_TO_JSON = {
  'usd-microcents': 'USD_MICROCENTS',
  tokens: 'TOKENS',
  credits: 'CREDITS',
  'risk-points': 'RISK_POINTS',
};
const UNIT_FROM_JSON = Object.fromEntries(Object.entries(UNIT_TO_JSON).map(([k, v]) => [v, k]));

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function object(value, at, keys) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${at}: expected a JSON object, got ${typeName(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (keys && !keys.includes(key)) {
      throw new TypeError(`${at}: unknown field \`${key}\`, expected one of ${keys.map((k) => `\`${k}\``).join(', ')}`);
    }
  }
  return value;
}

function field(obj, name, at, read, fallback) {
  const value = obj[name];
  if (value === undefined) {
    if (fallback === undefined) throw new RangeError(`${at}: missing field \`${name}\``);
    return fallback();
  }
  return read(value, `${at}.${name}`);
}

function integer(value, at) {
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    throw new TypeError(`${at}: expected an integer, got ${typeName(value)}`);
  }
  return value;
}

function number(value, at) {
  if (typeof value !== 'number') throw new TypeError(`${at}: expected a number, got ${typeName(value)}`);
  return value;
}

function string(value, at) {
  if (typeof value !== 'string') throw new TypeError(`${at}: expected a string, got ${typeName(value)}`);
  return value;
}

function boolean(value, at) {
  if (typeof value !== 'boolean') throw new TypeError(`${at}: expected a boolean, got ${typeName(value)}`);
  return value;
}

function list(read) {
  return (value, at) => {
    if (!Array.isArray(value)) throw new TypeError(`${at}: expected an array, got ${typeName(value)}`);
    return value.map((item, i) => read(item, `${at}[${i}]`));
  };
}

const nullable = (read) => (value, at) => (value === null ? undefined : read(value, at));
const U64 = (value, at) => u64(integer(value, at), at);

function agent(value, at) {
  const o = object(value, at, ['id', 'trust']);
  return { id: field(o, 'id', at, string), trust: field(o, 'trust', at, integer) };
}

function budget(value, at) {
  const o = object(value, at, ['unit', 'amount']);
  const unit = field(o, 'unit', at, (v, where) => {
    const name = string(v, where);
    if (!(name in UNIT_FROM_JSON)) {
      throw new RangeError(`${where}: '${name}' is not a budget unit (${Object.keys(UNIT_FROM_JSON).join(', ')})`);
    }
    return UNIT_FROM_JSON[name];
  });
  return { unit, amount: field(o, 'amount', at, U64) };
}

/** A mandate from its JSON form. */
export function mandateFromJson(value, at = 'mandate') {
  const o = object(value, at, ['value_ceiling', 'action_kinds', 'counterparties', 'budgets', 'remaining_depth', 'expires_at']);
  return {
    valueCeiling: field(o, 'value_ceiling', at, U64),
    actionKinds: field(o, 'action_kinds', at, list(string)),
    counterparties: field(o, 'counterparties', at, list(string)),
    budgets: field(o, 'budgets', at, list(budget)),
    remainingDepth: field(o, 'remaining_depth', at, integer),
    expiresAt: field(o, 'expires_at', at, U64),
  };
}

function link(value, at) {
  const o = object(value, at, ['from', 'to', 'depth', 'alpha', 'at', 'reason']);
  return {
    from: field(o, 'from', at, string),
    to: field(o, 'to', at, string),
    depth: field(o, 'depth', at, integer),
    alpha: field(o, 'alpha', at, number),
    at: field(o, 'at', at, U64),
    reason: field(o, 'reason', at, string, () => ''),
  };
}

function task(value, at) {
  const o = object(value, at, ['id', 'action_kind', 'risk', 'value', 'counterparty', 'completable_locally']);
  return {
    id: field(o, 'id', at, string),
    actionKind: field(o, 'action_kind', at, string),
    risk: field(o, 'risk', at, string),
    value: field(o, 'value', at, U64, () => 0n),
    counterparty: field(o, 'counterparty', at, nullable(string), () => undefined),
    completableLocally: field(o, 'completable_locally', at, boolean, () => true),
  };
}

function depthException(value, at) {
  const o = object(value, at, ['approved_by', 'justification', 'extra_depth', 'expires_at']);
  return {
    approvedBy: field(o, 'approved_by', at, string),
    justification: field(o, 'justification', at, string),
    extraDepth: field(o, 'extra_depth', at, integer),
    expiresAt: field(o, 'expires_at', at, U64),
  };
}

/**
 * A request from its JSON form (a parsed object). JSON numbers above 2^53 - 1 are not exact in
 * JavaScript: such a `u64` field throws a `RangeError` rather than decide on a rounded value.
 */
export function requestFromJson(value, at = 'request') {
  const o = object(value, at, ['from', 'to', 'task', 'parent_mandate', 'requested_mandate', 'chain', 'state', 'depth_exception', 'now']);
  return {
    from: field(o, 'from', at, agent),
    to: field(o, 'to', at, agent),
    task: field(o, 'task', at, task),
    parentMandate: field(o, 'parent_mandate', at, mandateFromJson),
    requestedMandate: field(o, 'requested_mandate', at, mandateFromJson),
    chain: field(o, 'chain', at, list(link), () => []),
    state: field(o, 'state', at, list(number), () => []),
    depthException: field(o, 'depth_exception', at, nullable(depthException), () => undefined),
    now: field(o, 'now', at, U64),
  };
}

/** A `bigint` as a JSON number when it is exact there; otherwise left a `bigint`. */
function jsonInteger(value) {
  return typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** The JSON form of a mandate. */
export function mandateToJson(m) {
  return {
    value_ceiling: jsonInteger(m.valueCeiling),
    action_kinds: [...m.actionKinds],
    counterparties: [...m.counterparties],
    budgets: m.budgets.map((b) => ({ unit: UNIT_TO_JSON[b.unit], amount: jsonInteger(b.amount) })),
    remaining_depth: m.remainingDepth,
    expires_at: jsonInteger(m.expiresAt),
  };
}

/**
 * The JSON form of a verdict, as `sbd eval` prints it. Integers above 2^53 - 1 stay `bigint`
 * (give `JSON.stringify` a replacer for them).
 */
export function verdictToJson(verdict) {
  switch (verdict?.kind) {
    case 'allow': {
      const g = verdict.grant;
      return {
        allow: {
          alpha: g.alpha,
          lambda: g.lambda,
          sub_agent: g.subAgent,
          effective_trust: g.effectiveTrust,
          effective_tier: g.effectiveTier.toUpperCase(),
          child_mandate: mandateToJson(g.childMandate),
          depth: g.depth,
          remaining_depth: g.remainingDepth,
          max_depth: g.maxDepth,
          accountability: g.accountability.map((s) => ({ agent: s.agent, weight: s.weight })),
          accountability_ceiling: g.accountabilityCeiling,
          warnings: g.warnings.map((w) => ({ code: w.code, reason: w.name, message: w.message })),
        },
      };
    }
    case 'escalate': {
      const t = verdict.target;
      const target = t.kind === 'human' ? { human: t.who } : { agent: t.agentId };
      return { escalate: { target, code: verdict.code, reason: verdict.name, message: verdict.reason } };
    }
    case 'deny':
      return { deny: { code: verdict.code, reason: verdict.name, message: verdict.message } };
    default:
      throw new TypeError(`expected a verdict (kind 'allow', 'escalate' or 'deny'), got ${JSON.stringify(verdict?.kind)}`);
  }
}

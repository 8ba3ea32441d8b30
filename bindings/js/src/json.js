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

function actionMask(value, at) {
  const o = object(value, at, ['toolsets', 'cost']);
  const toolset = (v, where) => {
    const t = object(v, where, ['toolset', 'remaining']);
    return { toolset: field(t, 'toolset', where, string), remaining: field(t, 'remaining', where, U64) };
  };
  return { toolsets: field(o, 'toolsets', at, list(toolset)), cost: field(o, 'cost', at, U64) };
}

function registry(value, at) {
  const o = object(value, at, ['delegator_registered', 'delegate_registered', 'unregistered', 'reviewer', 'explicit_delegation', 'delegate_listed']);
  return {
    delegatorRegistered: field(o, 'delegator_registered', at, boolean),
    delegateRegistered: field(o, 'delegate_registered', at, boolean),
    unregistered: field(o, 'unregistered', at, string, () => 'deny'),
    reviewer: field(o, 'reviewer', at, string),
    explicitDelegation: field(o, 'explicit_delegation', at, boolean, () => false),
    delegateListed: field(o, 'delegate_listed', at, boolean, () => false),
  };
}

/**
 * A request from its JSON form (a parsed object). JSON numbers above 2^53 - 1 are not exact in
 * JavaScript: such a `u64` field throws a `RangeError` rather than decide on a rounded value.
 */
export function requestFromJson(value, at = 'request') {
  const o = object(value, at, ['from', 'to', 'task', 'parent_mandate', 'requested_mandate', 'chain', 'state', 'depth_exception', 'action_mask', 'registry', 'now']);
  return {
    from: field(o, 'from', at, agent),
    to: field(o, 'to', at, agent),
    task: field(o, 'task', at, task),
    parentMandate: field(o, 'parent_mandate', at, mandateFromJson),
    requestedMandate: field(o, 'requested_mandate', at, mandateFromJson),
    chain: field(o, 'chain', at, list(link), () => []),
    state: field(o, 'state', at, list(number), () => []),
    depthException: field(o, 'depth_exception', at, nullable(depthException), () => undefined),
    actionMask: field(o, 'action_mask', at, nullable(actionMask), () => undefined),
    registry: field(o, 'registry', at, nullable(registry), () => undefined),
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

// ---- JSON text with exact u64 integers ----------------------------------------------------
//
// `JSON.stringify` cannot write a `bigint` and `JSON.parse` rounds integers above 2^53 - 1,
// while amounts, value ceilings and timestamps are `u64`. These two keep every integer exact.

/** JSON text for `value`: `bigint`s written as integers, non-finite numbers refused. */
export function writeJson(value, at = '$') {
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError(`${at}: ${value} cannot be written as JSON`);
      return JSON.stringify(value);
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'undefined':
      return 'null';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((v, i) => writeJson(v, `${at}[${i}]`)).join(',')}]`;
      return `{${Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${JSON.stringify(k)}:${writeJson(v, `${at}.${k}`)}`)
        .join(',')}}`;
    default:
      throw new TypeError(`${at}: a ${typeof value} cannot be written as JSON`);
  }
}

/** Parses JSON text; an integer that a `number` cannot hold exactly becomes a `bigint`. */
export function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at position ${i} of the JSON text`);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      const out = {};
      space();
      if (text[i] === '}') return i++, out;
      for (;;) {
        space();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        space();
        if (text[i++] !== ':') fail('expected `:`');
        out[key] = value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return i++, out;
        else fail('expected `,` or `}`');
      }
    }
    if (c === '[') {
      i++;
      const out = [];
      space();
      if (text[i] === ']') return i++, out;
      for (;;) {
        out.push(value());
        space();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return i++, out;
        else fail('expected `,` or `]`');
      }
    }
    if (c === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!literal) fail('expected a value');
    i += literal[0].length;
    const token = literal[0];
    if (token === 'true') return true;
    if (token === 'false') return false;
    if (token === 'null') return null;
    const n = Number(token);
    return /^-?\d+$/.test(token) && !Number.isSafeInteger(n) ? BigInt(token) : n;
  };
  const string = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const out = value();
  space();
  if (i !== text.length) fail('trailing characters');
  return out;
}

function mandateOf(value, at) {
  return mandateFromJson(value, at);
}

/**
 * The package's verdict for the JSON form of one (what the component's `evaluate-json`
 * answers): `{ kind: 'allow', grant }`, `{ kind: 'escalate', ... }` or `{ kind: 'deny', ... }`,
 * `u64` fields as `bigint`. Anything else throws, naming the field.
 */
export function verdictFromJson(value, at = 'verdict') {
  const o = object(value, at, ['allow', 'escalate', 'deny']);
  const cases = Object.keys(o);
  if (cases.length !== 1) throw new TypeError(`${at}: expected exactly one of allow, escalate, deny`);
  const kind = cases[0];
  const where = `${at}.${kind}`;
  if (kind === 'allow') {
    const g = object(o.allow, where, [
      'alpha', 'lambda', 'sub_agent', 'effective_trust', 'effective_tier', 'child_mandate', 'depth',
      'remaining_depth', 'max_depth', 'accountability', 'accountability_ceiling', 'warnings',
    ]);
    const share = (v, w) => {
      const s = object(v, w, ['agent', 'weight']);
      return { agent: field(s, 'agent', w, string), weight: field(s, 'weight', w, number) };
    };
    const warning = (v, w) => {
      const s = object(v, w, ['code', 'reason', 'message']);
      return { code: field(s, 'code', w, integer), name: field(s, 'reason', w, string), message: field(s, 'message', w, string) };
    };
    return {
      kind: 'allow',
      grant: {
        alpha: field(g, 'alpha', where, number),
        lambda: field(g, 'lambda', where, number),
        subAgent: field(g, 'sub_agent', where, string),
        effectiveTrust: field(g, 'effective_trust', where, integer),
        effectiveTier: field(g, 'effective_tier', where, string).toLowerCase(),
        childMandate: field(g, 'child_mandate', where, mandateOf),
        depth: field(g, 'depth', where, integer),
        remainingDepth: field(g, 'remaining_depth', where, integer),
        maxDepth: field(g, 'max_depth', where, integer),
        accountability: field(g, 'accountability', where, list(share)),
        accountabilityCeiling: field(g, 'accountability_ceiling', where, number),
        warnings: field(g, 'warnings', where, list(warning)),
      },
    };
  }
  if (kind === 'escalate') {
    const e = object(o.escalate, where, ['target', 'code', 'reason', 'message']);
    const t = field(e, 'target', where, (v, w) => object(v, w, ['human', 'agent']));
    const target = 'human' in t ? { kind: 'human', who: string(t.human, `${where}.target.human`) } : { kind: 'agent', agentId: string(t.agent, `${where}.target.agent`) };
    return { kind: 'escalate', target, code: field(e, 'code', where, integer), name: field(e, 'reason', where, string), reason: field(e, 'message', where, string) };
  }
  const d = object(o.deny, where, ['code', 'reason', 'message']);
  return { kind: 'deny', code: field(d, 'code', where, integer), name: field(d, 'reason', where, string), message: field(d, 'message', where, string) };
}

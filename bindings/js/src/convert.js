// Lowering the package's types to the values jco's glue passes into the component, and lifting
// what it returns. jco represents records as objects with camelCase fields, enums as their
// case names, options as the value or `undefined`, variants as `{ tag, val }`, and `u64` as
// `bigint`; it converts some wrong values silently (a `number` for a `u64`, a lone surrogate in
// a string). So every value is checked here first, and the error names the field.

const U8 = 0xff;
const U16 = 0xffff;
const U64 = (1n << 64n) - 1n;

const RISK_LEVELS = new Set(['low', 'medium', 'high', 'critical']);
const BUDGET_UNITS = new Set(['usd-microcents', 'tokens', 'credits', 'risk-points']);
const UNREGISTERED_RULES = new Set(['deny', 'escalate']);

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function object(value, at, keys) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${at}: expected an object, got ${typeName(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (keys && !keys.includes(key)) {
      // A snake_case key (the JSON form's spelling) is the likely mistake: name the camelCase one.
      const camel = key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      const hint = camel !== key && keys.includes(camel) ? ` (this API spells it '${camel}')` : '';
      throw new TypeError(`${at}: unknown field '${key}'${hint}; expected one of ${keys.join(', ')}`);
    }
  }
  return value;
}

function array(value, at) {
  if (!Array.isArray(value)) throw new TypeError(`${at}: expected an array, got ${typeName(value)}`);
  return value;
}

function smallUint(value, max, wit, at) {
  if (typeof value !== 'number') throw new TypeError(`${at}: expected a number (${wit}), got ${typeName(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${at}: ${value} is not an integer in the ${wit} range 0..=${max}`);
  }
  return value;
}

const u8 = (value, at) => smallUint(value, U8, 'u8', at);
const u16 = (value, at) => smallUint(value, U16, 'u16', at);

/** A `u64`: a `bigint` in range, or a `number` that is a safe non-negative integer. */
export function u64(value, at) {
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64) throw new RangeError(`${at}: ${value} is outside the u64 range 0..=${U64}`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`${at}: ${value} is not a non-negative integer (u64)`);
    }
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`${at}: ${value} is above 2^53 - 1, where a number is not exact: pass a bigint`);
    }
    return BigInt(value);
  }
  throw new TypeError(`${at}: expected a bigint or a number (u64), got ${typeName(value)}`);
}

function f64(value, at) {
  if (typeof value !== 'number') throw new TypeError(`${at}: expected a number, got ${typeName(value)}`);
  return value;
}

function string(value, at) {
  if (typeof value !== 'string') throw new TypeError(`${at}: expected a string, got ${typeName(value)}`);
  if (!value.isWellFormed()) throw new RangeError(`${at}: not well-formed Unicode (a lone surrogate)`);
  return value;
}

function boolean(value, at) {
  if (typeof value !== 'boolean') throw new TypeError(`${at}: expected a boolean, got ${typeName(value)}`);
  return value;
}

function oneOf(value, cases, what, at) {
  if (typeof value !== 'string') throw new TypeError(`${at}: expected a ${what} string, got ${typeName(value)}`);
  if (!cases.has(value)) throw new RangeError(`${at}: '${value}' is not a ${what} (${[...cases].join(', ')})`);
  return value;
}

function optional(value, lower, at) {
  return value === undefined || value === null ? undefined : lower(value, at);
}

function lowerAgent(value, at) {
  const a = object(value, at, ['id', 'trust']);
  return { id: string(a.id, `${at}.id`), trust: u16(a.trust, `${at}.trust`) };
}

export function lowerMandate(value, at) {
  const m = object(value, at, ['valueCeiling', 'actionKinds', 'counterparties', 'budgets', 'remainingDepth', 'expiresAt']);
  return {
    valueCeiling: u64(m.valueCeiling, `${at}.valueCeiling`),
    actionKinds: array(m.actionKinds, `${at}.actionKinds`).map((s, i) => string(s, `${at}.actionKinds[${i}]`)),
    counterparties: array(m.counterparties, `${at}.counterparties`).map((s, i) => string(s, `${at}.counterparties[${i}]`)),
    budgets: array(m.budgets, `${at}.budgets`).map((b, i) => {
      const where = `${at}.budgets[${i}]`;
      const budget = object(b, where, ['unit', 'amount']);
      return {
        unit: oneOf(budget.unit, BUDGET_UNITS, 'budget unit', `${where}.unit`),
        amount: u64(budget.amount, `${where}.amount`),
      };
    }),
    remainingDepth: u8(m.remainingDepth, `${at}.remainingDepth`),
    expiresAt: u64(m.expiresAt, `${at}.expiresAt`),
  };
}

function lowerLink(value, at) {
  const l = object(value, at, ['from', 'to', 'depth', 'alpha', 'at', 'reason']);
  return {
    from: string(l.from, `${at}.from`),
    to: string(l.to, `${at}.to`),
    depth: u8(l.depth, `${at}.depth`),
    alpha: f64(l.alpha, `${at}.alpha`),
    at: u64(l.at, `${at}.at`),
    reason: l.reason === undefined ? '' : string(l.reason, `${at}.reason`),
  };
}

function lowerTask(value, at) {
  const t = object(value, at, ['id', 'actionKind', 'risk', 'value', 'counterparty', 'completableLocally']);
  return {
    id: string(t.id, `${at}.id`),
    actionKind: string(t.actionKind, `${at}.actionKind`),
    risk: oneOf(t.risk, RISK_LEVELS, 'risk level', `${at}.risk`),
    value: t.value === undefined ? 0n : u64(t.value, `${at}.value`),
    counterparty: optional(t.counterparty, string, `${at}.counterparty`),
    completableLocally: t.completableLocally === undefined ? true : boolean(t.completableLocally, `${at}.completableLocally`),
  };
}

function lowerException(value, at) {
  const e = object(value, at, ['approvedBy', 'justification', 'extraDepth', 'expiresAt']);
  return {
    approvedBy: string(e.approvedBy, `${at}.approvedBy`),
    justification: string(e.justification, `${at}.justification`),
    extraDepth: u8(e.extraDepth, `${at}.extraDepth`),
    expiresAt: u64(e.expiresAt, `${at}.expiresAt`),
  };
}

function lowerMask(value, at) {
  const m = object(value, at, ['toolsets', 'cost']);
  return {
    toolsets: array(m.toolsets, `${at}.toolsets`).map((t, i) => {
      const where = `${at}.toolsets[${i}]`;
      const b = object(t, where, ['toolset', 'remaining']);
      return { toolset: string(b.toolset, `${where}.toolset`), remaining: u64(b.remaining, `${where}.remaining`) };
    }),
    cost: u64(m.cost, `${at}.cost`),
  };
}

function lowerRegistry(value, at) {
  const f = object(value, at, ['delegatorRegistered', 'delegateRegistered', 'unregistered', 'reviewer', 'explicitDelegation', 'delegateListed']);
  const flag = (v, name) => (v === undefined ? false : boolean(v, `${at}.${name}`));
  return {
    delegatorRegistered: boolean(f.delegatorRegistered, `${at}.delegatorRegistered`),
    delegateRegistered: boolean(f.delegateRegistered, `${at}.delegateRegistered`),
    unregistered: f.unregistered === undefined ? 'deny' : oneOf(f.unregistered, UNREGISTERED_RULES, 'unregistered-agent rule', `${at}.unregistered`),
    reviewer: string(f.reviewer, `${at}.reviewer`),
    explicitDelegation: flag(f.explicitDelegation, 'explicitDelegation'),
    delegateListed: flag(f.delegateListed, 'delegateListed'),
  };
}

/** The jco value of a WIT `request`; `TypeError`/`RangeError` name the offending field. */
export function lowerRequest(value, at = 'request') {
  const r = object(value, at, ['from', 'to', 'task', 'parentMandate', 'requestedMandate', 'chain', 'state', 'depthException', 'actionMask', 'registry', 'now']);
  return {
    from: lowerAgent(r.from, `${at}.from`),
    to: lowerAgent(r.to, `${at}.to`),
    task: lowerTask(r.task, `${at}.task`),
    parentMandate: lowerMandate(r.parentMandate, `${at}.parentMandate`),
    requestedMandate: lowerMandate(r.requestedMandate, `${at}.requestedMandate`),
    chain: r.chain === undefined ? [] : array(r.chain, `${at}.chain`).map((l, i) => lowerLink(l, `${at}.chain[${i}]`)),
    state: r.state === undefined ? [] : array(r.state, `${at}.state`).map((x, i) => f64(x, `${at}.state[${i}]`)),
    depthException: optional(r.depthException, lowerException, `${at}.depthException`),
    actionMask: optional(r.actionMask, lowerMask, `${at}.actionMask`),
    registry: optional(r.registry, lowerRegistry, `${at}.registry`),
    now: u64(r.now, `${at}.now`),
  };
}

export function lowerOutcome(value, at = 'outcome') {
  const o = object(value, at);
  if (o.kind === 'success') return { tag: 'success', val: f64(o.gain, `${at}.gain`) };
  if (o.kind === 'failure') return { tag: 'failure', val: f64(o.penalty, `${at}.penalty`) };
  throw new RangeError(`${at}.kind: expected 'success' or 'failure', got ${JSON.stringify(o.kind)}`);
}

export function lowerChain(value, at = 'chain') {
  return array(value, at).map((s, i) => string(s, `${at}[${i}]`));
}

// ---- WIT -> JS ----------------------------------------------------------------------------

export function liftMandate(m) {
  return {
    valueCeiling: m.valueCeiling,
    actionKinds: m.actionKinds,
    counterparties: m.counterparties,
    budgets: m.budgets.map((b) => ({ unit: b.unit, amount: b.amount })),
    remainingDepth: m.remainingDepth,
    expiresAt: m.expiresAt,
  };
}

function liftTarget(t) {
  if (t.tag === 'human') return { kind: 'human', who: t.val };
  if (t.tag === 'agent') return { kind: 'agent', agentId: t.val };
  throw new Error(`unknown escalation target '${t.tag}'`);
}

/** The package's verdict for jco's `{ tag, val }` verdict. */
export function liftVerdict(v) {
  const p = v.val;
  switch (v.tag) {
    case 'allow':
      return {
        kind: 'allow',
        grant: {
          alpha: p.alpha,
          lambda: p.lambda,
          subAgent: p.subAgent,
          effectiveTrust: p.effectiveTrust,
          effectiveTier: p.effectiveTier,
          childMandate: liftMandate(p.childMandate),
          depth: p.depth,
          remainingDepth: p.remainingDepth,
          maxDepth: p.maxDepth,
          accountability: p.accountability.map((s) => ({ agent: s.agent, weight: s.weight })),
          accountabilityCeiling: p.accountabilityCeiling,
          warnings: p.warnings.map((w) => ({ code: w.code, name: w.name, message: w.message })),
        },
      };
    case 'escalate':
      return { kind: 'escalate', target: liftTarget(p.target), code: p.code, name: p.name, reason: p.reason };
    case 'deny':
      return { kind: 'deny', code: p.code, name: p.name, message: p.message };
    default:
      throw new Error(`unknown verdict case '${v.tag}'`);
  }
}

export function liftTrustDelta(d) {
  return { agent: d.agent, delta: d.delta };
}

export function liftInfo(i) {
  return {
    name: i.name,
    version: i.version,
    configDigest: i.configDigest,
    maxDepth: i.maxDepth,
    wireVersion: i.wireVersion,
  };
}

// The JavaScript API: loading, every export, typed results, and the errors bad input throws.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { sbd } from './binding.mjs';

const {
  ConfigError,
  POLICY_FAULT_CODE,
  Policy,
  PolicyComponent,
  requestFromJson,
  verdictToJson,
} = sbd;

const repo = new URL('../../../', import.meta.url);
const defaultConfig = readFileSync(new URL('bindings/shared/configs/default.postcard', repo));
const faultyComponent =
  process.env.SBD_FAULTY_COMPONENT ??
  fileURLToPath(new URL('target/guest-build/fault-injection/wasm32-wasip2/guest/sbd_component.wasm', repo));
const NOW = 1_790_000_000_000n;
const U64_MAX = (1n << 64n) - 1n;

const mandate = (ceiling, depth, actions) => ({
  valueCeiling: ceiling,
  actionKinds: actions,
  counterparties: ['acme'],
  budgets: [
    { unit: 'usd-microcents', amount: 5_000n },
    { unit: 'tokens', amount: 100_000n },
  ],
  remainingDepth: depth,
  expiresAt: NOW + 3_600_000n,
});

/** The originator hands a small, low-risk refund to a trusted agent. */
const allowedRequest = () => ({
  from: { id: 'orchestrator', trust: 900 },
  to: { id: 'refund-agent', trust: 720 },
  task: { id: 'refund-1', actionKind: 'payment.refund', risk: 'low', value: 100n, counterparty: 'acme' },
  parentMandate: mandate(500n, 3, ['payment.*']),
  requestedMandate: mandate(200, 2, ['payment.refund']), // numbers are accepted for u64 inputs
  state: [0.12], // feature 0 (volatility) under the default safe set's 0.25 threshold
  now: NOW,
});

describe('Policy', () => {
  let component;
  let policy;
  before(async () => {
    component = await PolicyComponent.load();
    policy = component.instantiate(defaultConfig);
  });

  it('reports the configuration it was built from', () => {
    assert.equal(policy.info.name, 'default');
    assert.equal(policy.info.version, '0.1.0');
    assert.equal(policy.info.maxDepth, 5);
    assert.equal(policy.info.wireVersion, 3);
    assert.equal(policy.info.configDigest, createHash('sha256').update(defaultConfig).digest('hex'));
  });

  it('allows a valid delegation with a typed grant', () => {
    const verdict = policy.evaluate(allowedRequest());
    assert.equal(verdict.kind, 'allow');
    const { grant } = verdict;
    assert.equal(grant.subAgent, 'refund-agent');
    assert.equal(grant.effectiveTier, 't4');
    assert.equal(grant.depth, 1);
    assert.equal(grant.childMandate.valueCeiling, 200n);
    assert.deepEqual(grant.childMandate.actionKinds, ['payment.refund']);
    assert.deepEqual(grant.accountability.map((s) => s.agent), ['orchestrator', 'refund-agent']);
    assert.ok(Math.abs(grant.accountability.reduce((sum, s) => sum + s.weight, 0) - 1) < 1e-12);
  });

  it('denies self-delegation with its code', () => {
    const verdict = policy.evaluate({ ...allowedRequest(), to: { id: 'orchestrator', trust: 900 } });
    assert.deepEqual(verdictToJson(verdict), {
      deny: { code: 1001, reason: 'self-delegation', message: verdict.message },
    });
  });

  it('types escalation targets', () => {
    const request = allowedRequest();
    const verdict = policy.evaluate({ ...request, to: { id: 'intern-bot', trust: 100 }, task: { ...request.task, risk: 'high' } });
    assert.equal(verdict.kind, 'escalate');
    assert.equal(verdict.name, 'trust-escalation');
    assert.deepEqual(verdict.target, { kind: 'agent', agentId: 'supervisor-bot' });
  });

  it('answers a batch in order', () => {
    const requests = [allowedRequest(), { ...allowedRequest(), to: { id: 'orchestrator', trust: 900 } }];
    const verdicts = policy.evaluateBatch(requests);
    assert.deepEqual(verdicts.map((v) => v.kind), ['allow', 'deny']);
    assert.deepEqual(verdicts, requests.map((r) => policy.evaluate(r)));
    assert.deepEqual(policy.evaluateBatch([]), []);
  });

  it('keeps u64 values exact as bigint', () => {
    const wide = { ...mandate(U64_MAX, 3, ['*']), budgets: [{ unit: 'credits', amount: U64_MAX }] };
    const narrowed = policy.narrow(wide, { ...wide, valueCeiling: U64_MAX - 1n, remainingDepth: 1 });
    assert.equal(narrowed.valueCeiling, U64_MAX - 1n);
    assert.deepEqual(narrowed.budgets, [{ unit: 'credits', amount: U64_MAX }]);
    assert.equal(narrowed.remainingDepth, 1);
  });

  it('penalises the chain on failure and rewards the executor on success', () => {
    assert.deepEqual(policy.trustDeltas(['a', 'b', 'c'], { kind: 'failure', penalty: 25 }), [
      { agent: 'a', delta: -25 },
      { agent: 'b', delta: -25 },
      { agent: 'c', delta: -25 },
    ]);
    assert.deepEqual(policy.trustDeltas(['a', 'b', 'c'], { kind: 'success', gain: 5 }), [{ agent: 'c', delta: 5 }]);
  });

  const bad = [
    ['a trust score that is a string', (r) => ({ ...r, from: { id: 'a', trust: 'high' } }), TypeError, 'request.from.trust'],
    ['a trust score beyond u16', (r) => ({ ...r, to: { id: 'b', trust: 70_000 } }), RangeError, 'request.to.trust'],
    ['a negative timestamp', (r) => ({ ...r, now: -1 }), RangeError, 'request.now'],
    ['a fractional timestamp', (r) => ({ ...r, now: 1.5 }), RangeError, 'request.now'],
    ['an inexact number for a u64', (r) => ({ ...r, now: 2 ** 60 }), RangeError, 'request.now'],
    ['a u64 beyond 2^64 - 1', (r) => ({ ...r, now: 1n << 64n }), RangeError, 'request.now'],
    ['a string timestamp', (r) => ({ ...r, now: '1000' }), TypeError, 'request.now'],
    ['a state entry that is a string', (r) => ({ ...r, state: [0.1, 'x'] }), TypeError, 'request.state[1]'],
    ['an unknown risk level', (r) => ({ ...r, task: { ...r.task, risk: 'extreme' } }), RangeError, 'request.task.risk'],
    ['a lone surrogate', (r) => ({ ...r, task: { ...r.task, id: '\ud800' } }), RangeError, 'request.task.id'],
    ['a chain that is not an array', (r) => ({ ...r, chain: 'none' }), TypeError, 'request.chain'],
    ['a missing mandate', (r) => ({ ...r, parentMandate: undefined }), TypeError, 'request.parentMandate'],
    [
      'an unknown budget unit',
      (r) => ({ ...r, requestedMandate: { ...r.requestedMandate, budgets: [{ unit: 'gold', amount: 1n }] } }),
      RangeError,
      'request.requestedMandate.budgets[0].unit',
    ],
  ];
  for (const [what, change, error, field] of bad) {
    it(`throws ${error.name} naming the field for ${what}`, () => {
      assert.throws(() => policy.evaluate(change(allowedRequest())), (e) => e instanceof error && e.message.startsWith(`${field}:`));
      assert.equal(policy.evaluate(allowedRequest()).kind, 'allow', 'the policy is still usable');
    });
  }

  it('throws the normal errors for bad arguments', () => {
    assert.throws(() => policy.evaluate(null), TypeError);
    assert.throws(() => policy.evaluateBatch(allowedRequest()), TypeError);
    assert.throws(() => policy.trustDeltas(['a'], 1), TypeError);
    assert.throws(() => policy.trustDeltas(['a'], { kind: 'draw' }), RangeError);
    assert.throws(() => component.instantiate('default.postcard'), TypeError);
    assert.throws(
      () => component.instantiate(new Uint8Array([0, 1])),
      (e) => e instanceof ConfigError && e instanceof RangeError && /not a postcard policy configuration/.test(e.message),
    );
  });

  it('refuses unknown fields in the typed and the JSON form, naming them', () => {
    // A snake_case key in the typed (camelCase) API was silently ignored before.
    const typo = { ...allowedRequest(), task: { ...allowedRequest().task, completable_locally: false } };
    assert.throws(
      () => policy.evaluate(typo),
      (e) => e instanceof TypeError && e.message.startsWith("request.task: unknown field 'completable_locally' (this API spells it 'completableLocally')"),
    );
    assert.throws(() => policy.evaluate({ ...allowedRequest(), frmo: 1 }), (e) => e instanceof TypeError && /unknown field 'frmo'/.test(e.message));
    const json = { from: { id: 'a', trust: 1 }, to: { id: 'b', trust: 1 }, task: { id: 't', action_kind: 'x', risk: 'low', completable_localy: true } };
    assert.throws(() => requestFromJson(json), (e) => e instanceof TypeError && e.message.startsWith('request.task: unknown field `completable_localy`'));
  });

  it('reads the JSON form, naming the field of a bad document', () => {
    assert.throws(() => requestFromJson({ from: { id: 'a', trust: 1 } }), (e) => e instanceof RangeError && /missing field `to`/.test(e.message));
    assert.throws(
      () => requestFromJson({ from: { id: 'a', trust: 1 }, to: { id: 'b', trust: 1 }, task: { id: 't', action_kind: 'x', risk: 3 } }),
      (e) => e instanceof TypeError && e.message.startsWith('request.task.risk:'),
    );
    const request = requestFromJson({
      from: { id: 'a', trust: 1 },
      to: { id: 'b', trust: 1 },
      task: { id: 't', action_kind: 'x', risk: 'low' },
      parent_mandate: { value_ceiling: 1, action_kinds: [], counterparties: [], budgets: [], remaining_depth: 1, expires_at: 2 },
      requested_mandate: { value_ceiling: 1, action_kinds: [], counterparties: [], budgets: [], remaining_depth: 0, expires_at: 2 },
      now: 1,
    });
    assert.deepEqual([request.chain, request.state, request.depthException], [[], [], undefined]);
    assert.deepEqual([request.task.value, request.task.counterparty, request.task.completableLocally], [0n, undefined, true]);
  });

  it('refuses calls once closed', () => {
    const closing = component.instantiate(defaultConfig);
    closing.close();
    assert.throws(() => closing.evaluate(allowedRequest()), /closed/);
  });

  it('loads from files', async () => {
    const fromFiles = await Policy.fromFiles(new URL('bindings/shared/configs/default.postcard', repo));
    assert.equal(fromFiles.evaluate(allowedRequest()).kind, 'allow');
  });
});

describe('failing closed (the fault-injection build of the component)', () => {
  let out;
  let faulty;
  before(async () => {
    assert.ok(existsSync(faultyComponent), `${faultyComponent} is missing: \`cargo test --release\` builds it`);
    out = mkdtempSync(join(tmpdir(), 'sbd-faulty-'));
    execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url)), '--out', out], {
      env: { ...process.env, SBD_COMPONENT: faultyComponent },
      stdio: 'ignore',
    });
    faulty = await PolicyComponent.load(out);
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  const faults = [
    ['trap', 'it trapped: wasm `unreachable`'],
    ['panic', 'it trapped: wasm `unreachable`'],
    ['stack-overflow', 'it trapped'],
    ['alpha-out-of-range', 'malformed answer: `alpha` is 1.5, outside [0, 1]'],
    ['widened-mandate', "malformed answer: the child mandate is wider than the parent's: `budgets`"],
  ];
  for (const [kind, why] of faults) {
    it(`answers a ${kind} with a policy-fault denial and goes on with a fresh instance`, () => {
      const policy = faulty.instantiate(new TextEncoder().encode(`fault:${kind}`));
      const request = allowedRequest();
      const verdict = policy.evaluate({ ...request, task: { ...request.task, id: 'inject-fault' } });
      assert.equal(verdict.kind, 'deny');
      assert.equal(verdict.code, POLICY_FAULT_CODE);
      assert.equal(verdict.name, 'policy-fault');
      assert.ok(verdict.message.includes(`failed closed: ${why}`), verdict.message);
      const batch = policy.evaluateBatch([request, { ...request, task: { ...request.task, id: 'inject-fault' } }]);
      assert.deepEqual(batch.map((v) => v.name ?? v.kind), ['policy-fault', 'policy-fault']);
      assert.equal(policy.evaluate(request).kind, 'allow');
    });
  }

  it('answers a batch answered short with policy-fault denials', () => {
    const policy = faulty.instantiate(new TextEncoder().encode('fault:short-batch'));
    const request = allowedRequest();
    const batch = policy.evaluateBatch([request, { ...request, task: { ...request.task, id: 'inject-fault' } }, request]);
    assert.deepEqual(
      batch.map((v) => v.message),
      Array(3).fill('policy `faulty` failed closed: malformed answer: 2 verdicts for 3 requests'),
    );
  });
});

// The package as installed: it carries the component and the default policy, builds policies
// from their TOML or JSON text inside the component (`create-from-text`, the Rust reader: the
// same digests `sbd info` prints), and decides with three lines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { modulePath, sbd } from './binding.mjs';

const { Policy, PolicyComponent, ConfigError, requestFromJson } = sbd;
const repo = new URL('../../../', import.meta.url);
const digests = JSON.parse(readFileSync(new URL('bindings/python/tests/configs/digests.json', repo), 'utf8'));

// One hop on the default policy, as the README's quickstart sends it.
const REQUEST = {
  from: { id: 'orchestrator', trust: 900 },
  to: { id: 'refund-agent', trust: 700 },
  task: { id: 'refund-4821', action_kind: 'payment.refund', risk: 'low', value: 5_000_000_000 },
  parent_mandate: {
    action_kinds: ['payment.*'],
    budgets: [{ amount: 500_000_000, unit: 'USD_MICROCENTS' }],
    counterparties: [],
    expires_at: 1_790_003_600_000,
    remaining_depth: 3,
    value_ceiling: 50_000_000_000,
  },
  requested_mandate: {
    action_kinds: ['payment.refund'],
    budgets: [{ amount: 200_000_000, unit: 'USD_MICROCENTS' }],
    counterparties: [],
    expires_at: 1_790_003_600_000,
    remaining_depth: 2,
    value_ceiling: 50_000_000_000,
  },
  state: [0.1],
  now: 1_790_000_000_000,
};

describe('the installed package', () => {
  it('is what the tests import when npm test runs them', { skip: process.env.SBD_POLICY_MODULE ? false : 'run from the source tree (npm run test:source)' }, () => {
    const path = fileURLToPath(modulePath);
    assert.ok(!path.startsWith(fileURLToPath(new URL('bindings/js/src/', repo))), `imported from the source tree: ${path}`);
    assert.ok(path.includes('/node_modules/sbd-policy/'), path);
  });

  it('decides a delegation in three lines, with no Rust build', async () => {
    const policy = await Policy.load();
    const verdict = policy.evaluate(requestFromJson(REQUEST));
    assert.equal(verdict.kind, 'allow', JSON.stringify(verdict, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
    assert.equal(policy.info.configDigest, digests['policies/default.toml']);
    policy.close();
    assert.equal(await PolicyComponent.bundled(), await PolicyComponent.bundled());
  });
});

describe('policies from JSON', () => {
  it('gives the digest sbd prints for a configuration using every value type', async () => {
    const json = JSON.parse(readFileSync(new URL('partial-policy.json', import.meta.url), 'utf8'));
    const policy = await Policy.load(json);
    assert.equal(policy.info.configDigest, digests['bindings/python/tests/configs/partial.toml']);
    policy.close();
  });

  it('fills every default as the Rust side does', async () => {
    const policy = await Policy.load({ name: 'minimal', version: '1' });
    assert.equal(policy.info.configDigest, digests['bindings/python/tests/configs/minimal.toml']);
    policy.close();
  });

  for (const [config, message] of [
    [{ name: 'x', version: '1', frmo: 1 }, '$.frmo: unknown field `frmo`'],
    [{ name: 'x', version: '1', depth: { max_dept: 3 } }, '$.depth.max_dept: unknown field `max_dept`'],
    [{ name: 'x' }, '$: missing field `version`'],
    [{ name: 'x', version: '1', depth: { max_depth: 300 } }, '$.depth.max_depth: invalid value: integer `300`, expected u8'],
    [{ name: 'x', version: '1', trust: { on_insufficient: 'ignore' } }, '$.trust.on_insufficient: unknown variant `ignore`'],
    [{ name: 'x', version: '1', sbd: { alpha_caps: [{ feature: 0, above: 'high', alpha_max: 0.2 }] } }, '$.sbd.alpha_caps[0].above: invalid type: string "high", expected f64'],
    [{ name: 'x', version: '1', escalation: { agents: [{ id: 'a', trust: 2 ** 53 }] } }, '$.escalation.agents[0].trust: invalid value: integer `9007199254740992`, expected u16'],
    [{ name: 'x', version: '1', depth: { max_depth: 0 } }, 'max_depth'],
  ]) {
    it(`refuses ${JSON.stringify(config)} naming the path`, async () => {
      await assert.rejects(Policy.load(config), (e) => e instanceof ConfigError && e.message.includes(message));
    });
  }
});

describe('policies from TOML', () => {
  // Every TOML policy the Python binding and `sbd info` are checked against, the trained
  // finance policy (with its model_file) included.
  for (const path of Object.keys(digests).filter((p) => p.endsWith('.toml'))) {
    it(`gives the digest sbd prints for ${path}`, async () => {
      const policy = await Policy.load(new URL(path, repo));
      assert.equal(policy.info.configDigest, digests[path]);
      policy.close();
    });
  }

  it('builds a policy from a TOML file, its model read beside it', async () => {
    const policy = await Policy.load(fileURLToPath(new URL('policies/finance/policy.toml', repo)));
    assert.equal(policy.info.name, 'finance-sbd');
    assert.equal(policy.info.configDigest, digests['policies/finance/policy.toml']);
    policy.close();
  });

  it('needs the model bytes exactly when the configuration names a model_file', async () => {
    const component = await PolicyComponent.bundled();
    const text = readFileSync(new URL('policies/finance/policy.toml', repo), 'utf8');
    assert.throws(() => component.instantiateText(text), (e) => e instanceof ConfigError && e.message.includes('pass the bytes of that file'));
    assert.throws(
      () => component.instantiateText('name = "x"\nversion = "1"', { model: new Uint8Array([0]) }),
      (e) => e instanceof ConfigError && e.message.includes('names no `sbd.model_file`'),
    );
  });

  for (const [toml, message] of [
    ['name = "x"\nversion = "1"\nfrmo = 1', '$.frmo: unknown field `frmo`'],
    ['name = "x"\nversion = "1"\n[depth]\nmax_depth = 300', '$.depth.max_depth: invalid value: integer `300`, expected u8'],
    ['name = "x"\nversion = "1"\n[trust.required_tier]\nlow = "T1"', '$.trust.required_tier: missing field `medium`'],
    ['name = "x"\nversion = "1"\n[sbd]\nmodel_file = 3', '`sbd.model_file` must be a string'],
    ['name = ', 'at line 1, column'],
  ]) {
    it(`refuses ${JSON.stringify(toml)} naming the path`, async () => {
      const component = await PolicyComponent.bundled();
      assert.throws(() => component.instantiateText(toml), (e) => e instanceof ConfigError && e.message.includes(message));
    });
  }
});

describe('requests as JSON text', () => {
  it('decides an object and an array, and denies what it cannot read naming the path', async () => {
    const policy = await Policy.load();
    const text = JSON.stringify(REQUEST);
    assert.equal(policy.evaluateJson(text).kind, 'allow');
    assert.deepEqual(policy.evaluateJson(`[${text},${text}]`).map((v) => v.kind), ['allow', 'allow']);
    const bad = policy.evaluateJson(JSON.stringify({ ...REQUEST, task: { ...REQUEST.task, risk: 'hgh' } }));
    assert.equal(bad.name, 'request-malformed');
    assert.ok(bad.message.startsWith('$.task.risk: unknown variant `hgh`'), bad.message);
    // One request the component cannot read (a lone surrogate) is denied alone, not the batch.
    const surrogate = JSON.stringify({ ...REQUEST, task: { ...REQUEST.task, id: 'x\ud800' } });
    const mixed = policy.evaluateJson(`[${text},${surrogate},${text}]`);
    assert.deepEqual(mixed.map((v) => v.kind), ['allow', 'deny', 'allow']);
    assert.equal(mixed[1].name, 'request-malformed');
    // u64 values past 2^53 come back exact (as bigint), not rounded by JSON.parse
    const big = policy.evaluateJson(JSON.stringify(REQUEST).replaceAll('"expires_at":1790003600000', '"expires_at":18446744073709551615'));
    assert.equal(big.kind, 'allow');
    assert.equal(big.grant.childMandate.expiresAt, 18446744073709551615n);
    policy.close();
  });
});

// The package as installed: it carries the component and the default policy, builds policies
// from their JSON form with the Rust encoder's bytes, and decides with three lines.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { modulePath, sbd } from './binding.mjs';

const { Policy, PolicyComponent, ConfigError, configFromJson, requestFromJson } = sbd;
const repo = new URL('../../../', import.meta.url);
const digests = JSON.parse(readFileSync(new URL('bindings/python/tests/configs/digests.json', repo), 'utf8'));
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

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
  it('encodes the default policy to the committed Rust bytes', () => {
    const json = readFileSync(new URL('policy/default.json', new URL('.', new URL(modulePath)).href.replace(/src\/$/, '')), 'utf8');
    const expected = readFileSync(new URL('bindings/shared/configs/default.postcard', repo));
    assert.deepEqual(Buffer.from(configFromJson(json)), expected);
  });

  it('gives the digest sbd prints for a configuration using every value type', async () => {
    const json = JSON.parse(readFileSync(new URL('partial-policy.json', import.meta.url), 'utf8'));
    assert.equal(sha256(configFromJson(json)), digests['bindings/python/tests/configs/partial.toml']);
    const policy = await Policy.load(json);
    assert.equal(policy.info.configDigest, digests['bindings/python/tests/configs/partial.toml']);
    policy.close();
  });

  it('fills every default as the Rust side does', () => {
    assert.equal(sha256(configFromJson({ name: 'minimal', version: '1' })), digests['bindings/python/tests/configs/minimal.toml']);
  });

  for (const [config, error, message] of [
    [{ name: 'x', version: '1', frmo: 1 }, RangeError, '$: unknown field `frmo`'],
    [{ name: 'x', version: '1', depth: { max_dept: 3 } }, RangeError, '$.depth: unknown field `max_dept`'],
    [{ name: 'x' }, RangeError, '$: missing field `version`'],
    [{ name: 'x', version: '1', depth: { max_depth: 300 } }, RangeError, '$.depth.max_depth: expected an integer 0-255, got 300'],
    [{ name: 'x', version: '1', trust: { on_insufficient: 'ignore' } }, RangeError, '$.trust.on_insufficient: expected one of deny, escalate, got "ignore"'],
    [{ name: 'x', version: '1', sbd: { alpha_caps: [{ feature: 0, above: 'high', alpha_max: 0.2 }] } }, TypeError, '$.sbd.alpha_caps[0].above: expected a number, got "high"'],
    [{ name: 'x', version: '1', escalation: { agents: [{ id: 'a', trust: 2 ** 53 }] } }, RangeError, '$.escalation.agents[0].trust: expected an integer 0-65535'],
  ]) {
    it(`refuses ${JSON.stringify(config)} naming the path`, () => {
      assert.throws(() => configFromJson(config), (e) => e instanceof error && e.message.includes(message));
    });
  }

  it('leaves range checks to the component (ConfigError)', async () => {
    await assert.rejects(Policy.load({ name: 'x', version: '1', depth: { max_depth: 0 } }), ConfigError);
  });
});

describe('policies from TOML', () => {
  const { configFromToml, loadConfig } = sbd;

  // Every TOML policy the Python binding and `sbd info` are checked against, the trained
  // finance policy (with its model_file) included.
  for (const path of Object.keys(digests).filter((p) => p.endsWith('.toml'))) {
    it(`gives the digest sbd prints for ${path}`, () => {
      assert.equal(sha256(loadConfig(new URL(path, repo))), digests[path]);
    });
  }

  it('builds a policy from a TOML file, its model read beside it', async () => {
    const policy = await Policy.load(fileURLToPath(new URL('policies/finance/policy.toml', repo)));
    assert.equal(policy.info.name, 'finance-sbd');
    assert.equal(policy.info.configDigest, digests['policies/finance/policy.toml']);
    policy.close();
  });

  it('reads model_file relative to baseDir', () => {
    const text = readFileSync(new URL('policies/finance/policy.toml', repo), 'utf8');
    assert.throws(() => configFromToml(text, { baseDir: fileURLToPath(new URL('bindings/', repo)) }), (e) => e.code === 'ENOENT');
    const bytes = configFromToml(text, { baseDir: fileURLToPath(new URL('policies/finance/', repo)) });
    assert.equal(sha256(bytes), digests['policies/finance/policy.toml']);
  });

  for (const [toml, error, message] of [
    ['name = "x"\nversion = "1"\nfrmo = 1', RangeError, '$: unknown field `frmo`'],
    ['name = "x"\nversion = "1"\n[depth]\nmax_depth = 300', RangeError, '$.depth.max_depth: expected an integer 0-255, got 300'],
    ['name = "x"\nversion = "1"\n[trust.required_tier]\nlow = "T1"', RangeError, '$.trust.required_tier: missing field `medium`'],
    ['name = "x"\nversion = "1"\n[sbd]\nmodel_file = 3', TypeError, '$.sbd.model_file: expected a string'],
    ['name = ', SyntaxError, 'not a valid TOML document'],
  ]) {
    it(`refuses ${JSON.stringify(toml)} naming the path`, () => {
      assert.throws(() => configFromToml(toml), (e) => e instanceof error && e.message.includes(message));
    });
  }
});

// The sbd delegation policy in Node.js: the policy component, transpiled by jco into
// `generated/` (`npm run build`), wrapped in plain objects with checked inputs.
//
// Types are in index.d.ts. Integers that are `u64` in WIT (timestamps, amounts, value
// ceilings) come back as `bigint`; inputs take a `bigint` or a safe-integer `number`.

import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { lowerChain, lowerMandate, lowerOutcome, lowerRequest, liftInfo, liftMandate, liftTrustDelta, liftVerdict } from './convert.js';
import { contractViolation } from './verify.js';

import { configFromJson, configFromObject, loadConfig } from './config.js';

export { requestFromJson, mandateFromJson, verdictToJson, mandateToJson } from './json.js';
export { configFromJson, configFromObject, configFromToml, loadConfig } from './config.js';

/** The code of the `policy-fault` denial a failed evaluation is answered with. */
export const POLICY_FAULT_CODE = 9001;

const TYPES_INTERFACE = 'sbd:delegation/types@0.1.0';
const POLICY_INTERFACE = 'sbd:delegation/policy@0.1.0';
const DEFAULT_DIR = new URL('../generated/', import.meta.url);
const DEFAULT_POLICY = new URL('../policy/default.json', import.meta.url);
let bundled = null;

/** The component rejected the configuration bytes (the message names the field). */
export class ConfigError extends RangeError {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The component failed a call that has no verdict to fail closed with (`narrow`,
 * `trustDeltas`, `info`, building the policy). `evaluate` never throws it: it answers with a
 * `policy-fault` denial instead.
 */
export class PolicyFault extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PolicyFault';
  }
}

/** The transpiled component: its core modules compiled once, instantiated per policy. */
export class PolicyComponent {
  #instantiate;
  #modules;

  /** Use `PolicyComponent.load`. */
  constructor(instantiate, modules) {
    this.#instantiate = instantiate;
    this.#modules = modules;
  }

  /**
   * Loads the jco output in `dir` (default: this package's `generated/`, written by
   * `npm run build`) and compiles its core WebAssembly modules.
   */
  static async load(dir = DEFAULT_DIR) {
    const base = dir instanceof URL ? dir : pathToFileURL(String(dir).endsWith('/') ? String(dir) : `${dir}/`);
    const glue = new URL('sbd_component.js', base);
    let module;
    try {
      module = await import(glue.href);
    } catch (cause) {
      throw new Error(
        `cannot load the transpiled component ${fileURLToPath(glue)}: run \`npm run build\` first`,
        { cause },
      );
    }
    if (typeof module.instantiate !== 'function') {
      throw new TypeError(`${fileURLToPath(glue)} was not transpiled with \`--instantiation\` (no instantiate export)`);
    }
    const modules = new Map();
    const compile = (path) => {
      if (!modules.has(path)) {
        modules.set(path, new WebAssembly.Module(readFileSync(new URL(path, base))));
      }
      return modules.get(path);
    };
    const component = new PolicyComponent(module.instantiate, compile);
    component.instance(); // compiles every core module now, and proves the exports are there
    return component;
  }

  /**
   * The component this package carries (`generated/`: jco's transpilation of the release
   * component, committed; CI fails unless it is what jco makes of the bytes `cargo build
   * --release` produces), loaded once per process and shared.
   */
  static async bundled() {
    bundled ??= PolicyComponent.load(DEFAULT_DIR);
    return bundled;
  }

  /** A fresh instance of the component: its `delegation-policy` resource class. */
  instance() {
    const root = this.#instantiate(this.#modules, { [TYPES_INTERFACE]: {} }, (m, imports) => new WebAssembly.Instance(m, imports));
    const policy = root[POLICY_INTERFACE] ?? root.policy;
    if (!policy || typeof policy.DelegationPolicy?.create !== 'function') {
      throw new TypeError(`the component does not export \`${POLICY_INTERFACE}\``);
    }
    return policy.DelegationPolicy;
  }

  /**
   * A policy built from `config`: postcard bytes of an `sbd_policy::PolicyConfig`
   * (`bindings/shared/configs/default.postcard` is `policies/default.toml`).
   * Throws `ConfigError` (a `RangeError`) if the component rejects them.
   */
  instantiate(config) {
    return new Policy(this, config);
  }
}

/**
 * A delegation policy: the component instantiated with one configuration. A trap during
 * `evaluate` is answered with a `policy-fault` denial, and the instance is replaced, never
 * reused (as the Rust host does).
 */
export class Policy {
  #component;
  #config;
  #resource = null;
  #info;
  #closed = false;

  constructor(component, config) {
    if (!(component instanceof PolicyComponent)) {
      throw new TypeError('component: expected a PolicyComponent (PolicyComponent.load())');
    }
    if (!(config instanceof Uint8Array)) {
      throw new TypeError(`config: expected a Uint8Array of postcard bytes, got ${describe(config)}`);
    }
    this.#component = component;
    this.#config = new Uint8Array(config);
    this.#resource = this.#create();
    this.#info = this.#callOrThrow('info', (p) => liftInfo(p.info()));
  }

  /**
   * A policy from a configuration as people write it, on the bundled component: `config` is
   * omitted (the default policy, `policies/default.toml`, which this package carries as
   * `policy/default.json`), a path to a policy file (`.json` as JSON, anything else as TOML,
   * such as the `policy.toml` that `sbd train` writes, its `model_file` read beside it), the
   * policy's JSON form as an object (`schema/policy.schema.json`), or postcard bytes (a
   * `Uint8Array`). Throws `SyntaxError` for a file that does not parse,
   * `TypeError`/`RangeError` naming the bad field, or `ConfigError` if the component rejects a
   * value.
   * @param {string | URL | object | Uint8Array} [config]
   */
  static async load(config) {
    let bytes;
    if (config === undefined) {
      bytes = configFromJson(readFileSync(DEFAULT_POLICY, 'utf8'));
    } else if (config instanceof Uint8Array) {
      bytes = config;
    } else if (typeof config === 'string' || config instanceof URL) {
      bytes = loadConfig(config);
    } else {
      bytes = configFromObject(config);
    }
    const component = await PolicyComponent.bundled();
    return component.instantiate(bytes);
  }

  /** Loads the transpiled component (`componentDir`, default `generated/`) and a configuration file. */
  static async fromFiles(configPath, componentDir = DEFAULT_DIR) {
    const component = await PolicyComponent.load(componentDir);
    return component.instantiate(readFileSync(configPath));
  }

  /** Name, version and configuration digest, as the component reported them at load. */
  get info() {
    return this.#info;
  }

  /**
   * Decides one delegation. Throws `TypeError` or `RangeError` (naming the field) when
   * `request` cannot be represented in WIT; a policy failure is a `policy-fault` denial.
   */
  evaluate(request) {
    const lowered = lowerRequest(request, 'request');
    return this.#decide((p) => checked([lowered], [liftVerdict(p.evaluate(lowered))]), 1)[0];
  }

  /** Decides many delegations in one call; verdict i answers request i. */
  evaluateBatch(requests) {
    if (!Array.isArray(requests)) {
      throw new TypeError(`requests: expected an array, got ${describe(requests)}`);
    }
    const lowered = requests.map((r, i) => lowerRequest(r, `requests[${i}]`));
    if (lowered.length === 0) return [];
    return this.#decide((p) => {
      const verdicts = p.evaluateBatch(lowered).map(liftVerdict);
      if (verdicts.length !== lowered.length) {
        throw new Error(`${verdicts.length} verdicts for ${lowered.length} requests`);
      }
      return checked(lowered, verdicts);
    }, lowered.length);
  }

  /** The narrowest child mandate that lies within `parent` and `requested`. */
  narrow(parent, requested) {
    const p = lowerMandate(parent, 'parent');
    const r = lowerMandate(requested, 'requested');
    return this.#callOrThrow('narrow', (policy) => liftMandate(policy.narrow(p, r)));
  }

  /** Trust changes for `chain` (originator first, executor last) after a task ends. */
  trustDeltas(chain, outcome) {
    const c = lowerChain(chain, 'chain');
    const o = lowerOutcome(outcome, 'outcome');
    return this.#callOrThrow('trustDeltas', (policy) => policy.trustDeltas(c, o).map(liftTrustDelta));
  }

  /** Releases the instance; later calls throw. */
  close() {
    this.#drop();
    this.#closed = true;
  }

  [Symbol.dispose]() {
    this.close();
  }

  #create() {
    const DelegationPolicy = this.#component.instance();
    try {
      return DelegationPolicy.create(this.#config);
    } catch (error) {
      // jco throws a ComponentError whose payload is the WIT `config-error` record.
      if (error?.payload && typeof error.payload.message === 'string') {
        throw new ConfigError(`configuration rejected: ${error.payload.message}`);
      }
      throw new PolicyFault(`the component failed while building the policy: ${error?.message ?? error}`, { cause: error });
    }
  }

  #checkout() {
    if (this.#closed) throw new Error('the policy is closed');
    if (this.#resource === null) this.#resource = this.#create();
    return this.#resource;
  }

  #drop() {
    if (this.#resource !== null) {
      try {
        this.#resource[Symbol.dispose]?.();
      } catch {
        // the instance is being discarded either way
      }
    }
    this.#resource = null;
  }

  #decide(call, count) {
    if (this.#closed) throw new Error('the policy is closed');
    try {
      return call(this.#checkout());
    } catch (error) {
      // After a trap the instance's state is unknown: drop it, deny, start afresh next time.
      // Dispose of it now (its destructor may trap too, which #drop swallows): left to the
      // garbage collector, jco's finalizer would run that destructor later and throw outside
      // any caller.
      this.#drop();
      const denial = {
        kind: 'deny',
        code: POLICY_FAULT_CODE,
        name: 'policy-fault',
        message: `policy \`${this.#info?.name ?? '?'}\` failed closed: ${faultMessage(error)}`,
      };
      return Array.from({ length: count }, () => ({ ...denial }));
    }
  }

  #callOrThrow(what, call) {
    const resource = this.#checkout();
    try {
      return call(resource);
    } catch (error) {
      this.#drop();
      throw new PolicyFault(`\`${what}\` failed: ${faultMessage(error)}`, { cause: error });
    }
  }
}

/** `verdicts`, after re-checking every allow against its request (as the Rust host does). */
function checked(requests, verdicts) {
  verdicts.forEach((verdict, i) => {
    const violation = contractViolation(requests[i], verdict);
    if (violation !== null) throw new Error(violation);
  });
  return verdicts;
}

function faultMessage(error) {
  if (error instanceof WebAssembly.RuntimeError) return `it trapped: ${error.message.replace(/^wasm trap: /, '')}`;
  if (error instanceof PolicyFault) return error.message;
  return `malformed answer: ${error?.message ?? error}`;
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

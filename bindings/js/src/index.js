// The sbd delegation policy in Node.js: the policy component, transpiled by jco into
// `generated/` (`npm run build`), wrapped in plain objects with checked inputs.
//
// Types are in index.d.ts. Integers that are `u64` in WIT (timestamps, amounts, value
// ceilings) come back as `bigint`; inputs take a `bigint` or a safe-integer `number`.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { parse as parseToml } from 'smol-toml';

import { lowerChain, lowerMandate, lowerOutcome, lowerRequest, liftInfo, liftMandate, liftTrustDelta, liftVerdict } from './convert.js';
import { parseJson, verdictFromJson, writeJson } from './json.js';
import { contractViolation } from './verify.js';

export { requestFromJson, mandateFromJson, verdictFromJson, verdictToJson, mandateToJson } from './json.js';

/** The code of the `policy-fault` denial a failed evaluation is answered with. */
export const POLICY_FAULT_CODE = 9001;

const TYPES_INTERFACE = 'sbd:delegation/types@0.1.0';
const POLICY_INTERFACE = 'sbd:delegation/policy@0.1.0';
const DEFAULT_DIR = new URL('../generated/', import.meta.url);
const DEFAULT_POLICY = new URL('../policy/default.json', import.meta.url);
const CHECK_VERDICT = Symbol('checkVerdict');
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

  /**
   * A fresh instance of the component: its `delegation-policy` resource class, with the
   * instance's `check-verdict` export attached.
   */
  instance() {
    const root = this.#instantiate(this.#modules, { [TYPES_INTERFACE]: {} }, (m, imports) => new WebAssembly.Instance(m, imports));
    const policy = root[POLICY_INTERFACE] ?? root.policy;
    if (!policy || typeof policy.DelegationPolicy?.createFromText !== 'function' || typeof policy.checkVerdict !== 'function') {
      throw new TypeError(`the component does not export \`${POLICY_INTERFACE}\` with \`create-from-text\` and \`check-verdict\``);
    }
    return { DelegationPolicy: policy.DelegationPolicy, [CHECK_VERDICT]: policy.checkVerdict };
  }

  /**
   * A policy built from `config`: postcard bytes of an `sbd_policy::PolicyConfig`
   * (`bindings/shared/configs/default.postcard` is `policies/default.toml`).
   * Throws `ConfigError` (a `RangeError`) if the component rejects them.
   */
  instantiate(config) {
    return new Policy(this, config);
  }

  /**
   * A policy built from configuration text as people write it: TOML (`policies/*.toml`) or
   * JSON (`schema/policy.schema.json`), read strictly by the component; `ConfigError` names the
   * field (`$.depth.max_dept: unknown field`). When the configuration names `sbd.model_file`,
   * `model` is that file's bytes.
   * @param {string} text
   * @param {{ format?: 'toml' | 'json', model?: Uint8Array }} [options]
   */
  instantiateText(text, { format = 'toml', model } = {}) {
    if (typeof text !== 'string') throw new TypeError(`text: expected a string, got ${describe(text)}`);
    if (format !== 'toml' && format !== 'json') throw new RangeError(`format: '${format}' is not 'toml' or 'json'`);
    if (model !== undefined && !(model instanceof Uint8Array)) {
      throw new TypeError(`model: expected a Uint8Array, got ${describe(model)}`);
    }
    return new Policy(this, { text, format, model });
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
    const text = config !== null && typeof config === 'object' && typeof config.text === 'string';
    if (!(config instanceof Uint8Array) && !text) {
      throw new TypeError(`config: expected a Uint8Array of postcard bytes, got ${describe(config)}`);
    }
    this.#component = component;
    this.#config = text ? { ...config } : new Uint8Array(config);
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
    const component = await PolicyComponent.bundled();
    if (config === undefined) {
      return component.instantiateText(readFileSync(DEFAULT_POLICY, 'utf8'), { format: 'json' });
    }
    if (config instanceof Uint8Array) return component.instantiate(config);
    if (typeof config === 'string' || config instanceof URL) {
      const path = config instanceof URL ? fileURLToPath(config) : config;
      const text = readFileSync(path, 'utf8');
      const format = path.toLowerCase().endsWith('.json') ? 'json' : 'toml';
      const parsed = format === 'json' ? JSON.parse(text) : parseToml(text);
      return component.instantiateText(text, { format, model: modelBytes(parsed, dirname(path), path) });
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError(`config: expected a path, an object, postcard bytes or nothing, got ${describe(config)}`);
    }
    return component.instantiateText(writeJson(config), { format: 'json', model: modelBytes(config, process.cwd(), 'config') });
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

  /**
   * Decides requests given as JSON text (`schema/request.schema.json`; an object, or an array
   * of them) with the component's `evaluate-json`, and returns the package's verdicts (one, or
   * an array). A request the component cannot read is denied `request-malformed`, naming its
   * JSON path. The answer is checked by the component's own `check-verdict` export; a fault or
   * a malformed answer is a `policy-fault` denial for every request.
   * @param {string} text
   */
  evaluateJson(text) {
    if (typeof text !== 'string') throw new TypeError(`text: expected a string, got ${describe(text)}`);
    // The component's test for a batch: `[` after JSON whitespace only (RFC 8259), which is not
    // what String.prototype.trimStart strips.
    const batch = /^[ \t\n\r]*\[/.test(text);
    let items = null;
    if (batch) {
      try {
        items = parseJson(text);
      } catch {
        items = null; // text that opens an array but is none is answered with one denial
      }
    }
    const count = Array.isArray(items) ? items.length : 1;
    const decideText = (p, t, isBatch) => {
      const answer = p.evaluateJson(t);
      try {
        this.#checkVerdict(t, answer);
      } catch (error) {
        if (error instanceof WebAssembly.RuntimeError) throw error;
        throw new Error(typeof error?.payload === 'string' ? error.payload : String(error?.message ?? error));
      }
      const parsed = parseJson(answer);
      return (isBatch ? parsed : [parsed]).map((v) => verdictFromJson(v));
    };
    const verdicts = this.#decide((p) => {
      const answers = decideText(p, text, batch);
      if (!batch || answers.length === count) return answers;
      if (Array.isArray(items) && answers.length === 1) {
        // JavaScript read the array but the component did not (a lone surrogate, a number past
        // f64, nesting past 128): decide each request on its own, so each gets its verdict.
        return items.flatMap((item) => decideText(p, writeJson(item), false));
      }
      throw new Error(`${answers.length} verdicts for ${count} requests`);
    }, count);
    return batch ? verdicts : verdicts[0];
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

  #checkVerdict = null;

  #create() {
    const instance = this.#component.instance();
    const { DelegationPolicy } = instance;
    this.#checkVerdict = instance[CHECK_VERDICT];
    try {
      if (this.#config instanceof Uint8Array) return DelegationPolicy.create(this.#config);
      const { text, format, model } = this.#config;
      return DelegationPolicy.createFromText(text, format, model);
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

/**
 * `verdicts`, after re-checking every allow against its request (as the Rust host does). The
 * typed path keeps this JavaScript copy of the check (`verify.js`, 0.2 us a decision) because
 * the component's `check-verdict` needs a JSON round trip: measured in Node, 25 us for the
 * check and 45 us for a decision on the JSON path, against 12 us typed (`node bench/parts.mjs`).
 * `evaluateJson` uses the export.
 */
function checked(requests, verdicts) {
  verdicts.forEach((verdict, i) => {
    const violation = contractViolation(requests[i], verdict);
    if (violation !== null) throw new Error(violation);
  });
  return verdicts;
}

/** The bytes of the trained model `sbd.model_file` names (relative to `baseDir`), if any. */
function modelBytes(config, baseDir, origin) {
  const name = config?.sbd?.model_file;
  if (name === undefined) return undefined;
  if (typeof name !== 'string') throw new TypeError(`${origin}: \`sbd.model_file\` must be a string (a file path)`);
  return new Uint8Array(readFileSync(resolve(baseDir, name)));
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

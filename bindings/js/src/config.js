// Policy configurations from TOML or JSON, as the component's `create` takes them.
//
// The component is built from the postcard encoding of `sbd_policy::PolicyConfig` (the WIT
// `create` takes `list<u8>`). Until the component takes TOML or JSON itself, this module writes
// those bytes from the TOML `sbd` reads (parsed with smol-toml, a TOML 1.0 parser without
// dependencies) or its JSON form (`schema/policy.schema.json`), with the Rust side's rules: unknown fields are refused, a missing optional
// field takes the Rust default, a wrong type or an integer out of range is refused naming its
// path (`$.depth.max_depth: expected an integer 0-255, got 300`). The component then checks the
// ranges it documents (`ConfigError`). The Python twin is `sbd_policy/config.py`; both are
// checked byte for byte against the Rust encoder (`bindings/shared/configs/default.postcard`,
// and the digests `sbd info` prints, in bindings/python/tests/configs/digests.json).

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parse as parseToml } from 'smol-toml';

const MISSING = Symbol('missing');

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

class Writer {
  constructor() {
    this.bytes = [];
  }
  varint(n) {
    let v = BigInt(n);
    for (;;) {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) {
        this.bytes.push(byte | 0x80);
      } else {
        this.bytes.push(byte);
        return;
      }
    }
  }
  float(value, width) {
    const view = new DataView(new ArrayBuffer(width));
    if (width === 4) view.setFloat32(0, value, true);
    else view.setFloat64(0, value, true);
    for (let i = 0; i < width; i++) this.bytes.push(view.getUint8(i));
  }
}

const uint = (bits) => {
  const top = (1n << BigInt(bits)) - 1n;
  return (value, at, out) => {
    const ok =
      (typeof value === 'bigint' && value >= 0n && value <= top) ||
      (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && BigInt(value) <= top);
    if (!ok) throw new RangeError(`${at}: expected an integer 0-${top}, got ${typeName(value)}`);
    if (bits === 8) out.bytes.push(Number(value));
    else out.varint(value);
  };
};

const float = (width) => (value, at, out) => {
  if (typeof value !== 'number') throw new TypeError(`${at}: expected a number, got ${typeName(value)}`);
  if (width === 4 && Number.isFinite(value) && Math.abs(value) > 3.4028234663852886e38) {
    throw new RangeError(`${at}: ${value} does not fit a 32-bit float`);
  }
  out.float(value, width);
};

const string = (value, at, out) => {
  if (typeof value !== 'string') throw new TypeError(`${at}: expected a string, got ${typeName(value)}`);
  if (!value.isWellFormed()) throw new RangeError(`${at}: contains a lone surrogate`);
  const data = new TextEncoder().encode(value);
  out.varint(data.length);
  for (const b of data) out.bytes.push(b);
};

const bool = (value, at, out) => {
  if (typeof value !== 'boolean') throw new TypeError(`${at}: expected true or false, got ${typeName(value)}`);
  out.bytes.push(value ? 1 : 0);
};

const enumOf = (...names) => (value, at, out) => {
  const index = typeof value === 'string' ? names.indexOf(value) : -1;
  if (index < 0) throw new RangeError(`${at}: expected one of ${names.join(', ')}, got ${typeName(value)}`);
  out.varint(index);
};

const list = (item) => (value, at, out) => {
  if (!Array.isArray(value)) throw new TypeError(`${at}: expected an array, got ${typeName(value)}`);
  out.varint(value.length);
  value.forEach((element, i) => item(element, `${at}[${i}]`, out));
};

const option = (inner) => (value, at, out) => {
  if (value === null || value === undefined) {
    out.bytes.push(0);
  } else {
    out.bytes.push(1);
    inner(value, at, out);
  }
};

const struct = (fields) => {
  const known = new Set(fields.map(([name]) => name));
  return (value, at, out) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new TypeError(`${at}: expected an object, got ${typeName(value)}`);
    }
    for (const key of Object.keys(value)) {
      if (!known.has(key)) {
        throw new RangeError(`${at}: unknown field \`${key}\`, expected one of ${[...known].sort().join(', ')}`);
      }
    }
    for (const [name, encode, fallback] of fields) {
      if (Object.hasOwn(value, name)) encode(value[name], `${at}.${name}`, out);
      else if (fallback === MISSING) throw new RangeError(`${at}: missing field \`${name}\``);
      else encode(fallback, `${at}.${name}`, out);
    }
  };
};

const RISKS = ['low', 'medium', 'high', 'critical'];
const riskTable = (item) => struct(RISKS.map((r) => [r, item, MISSING]));
const byRisk = (values) => Object.fromEntries(RISKS.map((r, i) => [r, values[i]]));

const U8 = uint(8);
const U16 = uint(16);
const U32 = uint(32);
const U64 = uint(64);
const F32 = float(4);
const F64 = float(8);
const TIER = enumOf('T0', 'T1', 'T2', 'T3', 'T4', 'T5', 'T6', 'T7');

// The Rust defaults (`impl Default` in guest/policy/src/config.rs and learned.rs).
const DEPTH = struct([
  ['max_depth', U8, 5],
  ['max_depth_by_risk', riskTable(U8), byRisk([5, 4, 3, 2])],
  ['warning_ratio', F64, 0.75],
  ['max_exception_extra', U8, 2],
  ['exception_approvers', list(string), []],
  ['chain_deadline_ms', U64, 15 * 60 * 1000],
]);
const TRUST = struct([
  ['required_tier', riskTable(TIER), byRisk(['T1', 'T3', 'T4', 'T5'])],
  ['on_insufficient', enumOf('deny', 'escalate'), 'escalate'],
  ['penalty_propagation', bool, true],
]);
const ESCALATION = struct([
  ['human', string, 'human-oversight'],
  ['agents', list(struct([['id', string, MISSING], ['trust', U16, MISSING]])), []],
]);
const ALPHA_CAP = struct([['feature', U32, MISSING], ['above', F64, MISSING], ['alpha_max', F64, MISSING]]);
const RISK_BAND = struct([['at_least', F64, MISSING], ['max_depth', option(U8), null], ['review_threshold', option(F64), null]]);
const DENSE = struct([
  ['inputs', U32, MISSING],
  ['outputs', U32, MISSING],
  ['weights', list(F32), MISSING],
  ['bias', list(F32), MISSING],
]);
const MLP = struct([['layers', list(DENSE), MISSING]]);
const PROVENANCE = struct([['domain', string, ''], ['seed', U64, 0], ['outer_steps', U32, 0], ['test_safety_rate', F64, 0]]);
const MODEL = struct([
  ['state_dim', U32, MISSING],
  ['state_shift', list(F32), MISSING],
  ['state_scale', list(F32), MISSING],
  ['sub_agents', list(string), MISSING],
  ['meta_weight', MLP, MISSING],
  ['delegation', MLP, MISSING],
  ['provenance', PROVENANCE, {}],
]);
/** A model already in postcard form (`sbd.model_file`), spliced in as it is. */
class ModelBytes {
  constructor(bytes) {
    this.bytes = bytes;
  }
}
const MODEL_OR_FILE = (value, at, out) => {
  if (value instanceof ModelBytes) {
    for (const b of value.bytes) out.bytes.push(b);
  } else {
    MODEL(value, at, out);
  }
};
const SBD = struct([
  ['alpha', riskTable(F64), byRisk([0.9, 0.7, 0.5, 0.3])],
  ['lambda', riskTable(F64), byRisk([0.2, 0.4, 0.7, 0.9])],
  ['review_threshold', F64, 0.25],
  ['state_dim', option(U32), null],
  ['alpha_caps', list(ALPHA_CAP), []],
  ['model', option(MODEL_OR_FILE), null],
  ['risk_bands', list(RISK_BAND), []],
]);
const CONFIG = struct([
  ['name', string, MISSING],
  ['version', string, MISSING],
  ['depth', DEPTH, {}],
  ['trust', TRUST, {}],
  ['escalation', ESCALATION, {}],
  ['sbd', SBD, {}],
]);

/**
 * The component's configuration bytes for a configuration already parsed into an object (the
 * JSON form, or a parsed TOML table). `sbd.model_file` (a postcard model `sbd train` wrote) is
 * read relative to `baseDir` (default: the working directory), as `sbd` reads it. Throws
 * `TypeError`/`RangeError` naming the path of the first bad field, or the file system's error
 * if the model file cannot be read.
 * @param {object} config
 * @param {{ baseDir?: string }} [options]
 * @returns {Uint8Array}
 */
export function configFromObject(config, { baseDir } = {}) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError(`$: expected an object, got ${typeName(config)}`);
  }
  let document = config;
  const sbd = config.sbd;
  if (sbd !== null && typeof sbd === 'object' && !Array.isArray(sbd) && Object.hasOwn(sbd, 'model_file')) {
    const { model_file: modelFile, ...rest } = sbd;
    if (typeof modelFile !== 'string') {
      throw new TypeError(`$.sbd.model_file: expected a string (a file path), got ${typeName(modelFile)}`);
    }
    if (Object.hasOwn(rest, 'model')) throw new RangeError('$.sbd: `model` and `model_file` are both given');
    const path = resolve(baseDir ?? '.', modelFile);
    document = { ...config, sbd: { ...rest, model: new ModelBytes(readFileSync(path)) } };
  }
  const out = new Writer();
  CONFIG(document, '$', out);
  return Uint8Array.from(out.bytes);
}

/**
 * The component's configuration bytes for a policy in its JSON form (an object, or a JSON
 * string). Throws `TypeError`/`RangeError` naming the path of the first bad field.
 * @param {object | string} config
 * @param {{ baseDir?: string }} [options]
 * @returns {Uint8Array}
 */
export function configFromJson(config, options) {
  let document = config;
  if (typeof config === 'string') {
    try {
      document = JSON.parse(config);
    } catch (error) {
      throw new SyntaxError(`not a valid JSON document: ${error.message}`);
    }
  }
  return configFromObject(document, options);
}

/**
 * The component's configuration bytes for a TOML policy (the format of
 * `policies/default.toml` and of the `policy.toml` that `sbd train` writes). Throws
 * `SyntaxError` on a TOML syntax error, else as `configFromObject`.
 * @param {string} text
 * @param {{ baseDir?: string }} [options]
 * @returns {Uint8Array}
 */
export function configFromToml(text, options) {
  if (typeof text !== 'string') throw new TypeError(`toml: expected a string, got ${typeName(text)}`);
  let table;
  try {
    // Integers past 2^53 stay exact (as BigInt), as the Rust reader keeps them.
    table = parseToml(text, { integersAsBigInt: 'asNeeded' });
  } catch (error) {
    throw new SyntaxError(`not a valid TOML document: ${error.message}`);
  }
  return configFromObject(table, options);
}

/**
 * Reads a policy file: `.json` as JSON, anything else as TOML (`sbd.model_file` relative to
 * the file's directory).
 * @param {string | URL} path
 * @returns {Uint8Array}
 */
export function loadConfig(path) {
  const file = path instanceof URL ? fileURLToPath(path) : String(path);
  const text = readFileSync(file, 'utf8');
  const options = { baseDir: dirname(resolve(file)) };
  return file.toLowerCase().endsWith('.json') ? configFromJson(text, options) : configFromToml(text, options);
}

// Transpiles the policy component into `generated/` with jco: core WebAssembly modules plus the
// JavaScript glue for the component model, instantiated by `src/index.js`.
//
//   npm run build                          the committed release component (bindings/python/src/
//                                          sbd_policy/data/sbd_component.wasm) into generated/,
//                                          which is committed too: the package needs no Rust
//   SBD_COMPONENT=path/to/c.wasm npm run build
//   node scripts/build.mjs --out DIR       into DIR instead of generated/ (the tests transpile the
//                                          fault-injection build of the component this way)
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const component =
  process.env.SBD_COMPONENT ??
  resolve(root, '../python/src/sbd_policy/data/sbd_component.wasm');
if (!existsSync(component)) {
  console.error(`error: ${component} is missing: run \`cargo build --release\` first, or set SBD_COMPONENT`);
  process.exit(1);
}
const outFlag = process.argv.indexOf('--out');
const out = outFlag > 0 && process.argv[outFlag + 1] ? resolve(process.argv[outFlag + 1]) : join(root, 'generated');
rmSync(out, { recursive: true, force: true });
// `--instantiation async` exports an `instantiate` function instead of instantiating at import:
// each Policy gets its own instance, so a trapped one can be thrown away and replaced.
const jco = join(root, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js');
if (!existsSync(jco)) {
  console.error('error: jco is not installed: run `npm install` first');
  process.exit(1);
}
execFileSync(
  process.execPath,
  [jco, 'transpile', component, '--out-dir', out, '--name', 'sbd_component', '--instantiation', 'async', '--quiet'],
  { stdio: 'inherit' },
);
// The generated glue is an ES module.
writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
console.log(`transpiled ${component} -> ${out}`);

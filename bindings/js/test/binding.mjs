// The binding under test: the installed package when SBD_POLICY_MODULE names its entry point
// (`npm test` packs and installs it first: scripts/test-installed.mjs), else the source tree.
export const modulePath = process.env.SBD_POLICY_MODULE ?? new URL('../src/index.js', import.meta.url).href;
export const sbd = await import(modulePath);

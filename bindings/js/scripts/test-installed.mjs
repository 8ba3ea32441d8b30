// Runs the tests against the package as a user installs it, not the source tree: `npm pack`
// into a temporary directory, `npm install` the tarball into a fresh project there, and
// `node --test test/` with SBD_POLICY_MODULE pointing at the installed entry point (the tests
// import the binding from it; `installed.test.mjs` fails if it is under this source tree).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'sbd-policy-installed-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
try {
  execFileSync(npm, ['pack', '--silent', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  const project = join(work, 'project');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), '{ "name": "sbd-policy-test-project", "private": true, "type": "module" }\n');
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error', join(work, tarball)], { cwd: project, stdio: 'inherit' });
  const entry = join(project, 'node_modules', 'sbd-policy', 'src', 'index.js');
  const args = ['--test', ...process.argv.slice(2)];
  if (process.argv.length <= 2) args.push('test/');
  execFileSync(process.execPath, args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, SBD_POLICY_MODULE: pathToFileURL(entry).href },
  });
} catch (error) {
  process.exitCode = typeof error?.status === 'number' && error.status !== 0 ? error.status : 1;
  if (error?.status === undefined) console.error(error);
} finally {
  rmSync(work, { recursive: true, force: true });
}

// Builds dist/sockcat: a standalone executable that runs with no Node.js and no node_modules.
// How: bundle the CLI into one CommonJS file (scripts/bundle.mjs), turn it into a Node
// single-executable-application blob with the local node (--experimental-sea-config), copy
// that node binary and inject the blob with postject. Nothing is downloaded, so it works offline.
// The result is checked by running it from an empty directory with an empty environment: a
// build that "succeeds" but does not run fails here, loudly.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const bundle = join(dist, 'sockcat-sea.cjs');
const blob = join(dist, 'sockcat.blob');
const seaConfig = join(dist, 'sea-config.json');
const out = join(dist, 'sockcat');
const require = createRequire(import.meta.url);

function fail(msg) {
  console.error(`build:bin: ${msg}`);
  process.exit(1);
}

execFileSync(process.execPath, [join(root, 'scripts/bundle.mjs'), bundle], { stdio: 'inherit' });
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }));
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

rmSync(out, { force: true });
copyFileSync(process.execPath, out);
chmodSync(out, 0o755);
const { inject } = require('postject');
await inject(out, 'NODE_SEA_BLOB', (await import('node:fs')).readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  overwrite: true,
});
rmSync(blob, { force: true });
rmSync(seaConfig, { force: true });
rmSync(bundle, { force: true });

// Prove it: from an empty directory, with no PATH, no NODE_* variables and no node_modules near.
const empty = mkdtempSync(join(tmpdir(), 'sockcat-bin-check-'));
const expected = JSON.parse((await import('node:fs')).readFileSync(join(root, 'package.json'), 'utf8')).version;
const run = spawnSync('/usr/bin/env', ['-i', out, '--version'], { cwd: empty, encoding: 'utf8', timeout: 20_000 });
rmSync(empty, { recursive: true, force: true });
if (run.status !== 0 || run.stdout.trim() !== expected) {
  fail(`dist/sockcat does not run standalone (exit ${run.status}, stdout ${JSON.stringify(run.stdout)}, stderr ${JSON.stringify(run.stderr)})`);
}
const mb = (statSync(out).size / 1e6).toFixed(0);
console.log(`build:bin: dist/sockcat ${expected} (${mb} MB) runs standalone`);

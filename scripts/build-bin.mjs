// Builds dist/sockcat: a standalone executable that runs with no Node.js and no node_modules.
// How: bundle the CLI into one CommonJS file (scripts/bundle.mjs), then @yao-pkg/pkg's SEA mode
// makes a Node single-executable application from the pinned Node (scripts/runtime.mjs): it
// writes the blob with that node (--experimental-sea-config, with V8's code cache and the heap
// flags as execArgv), copies that node and injects the blob with postject. Nothing is
// downloaded (pkg's default mode would fetch base binaries), so it works offline, and the
// system Node does not matter: this script re-runs itself on the pinned Node.
// The result is checked by running it from an empty directory with an empty environment: a
// build that "succeeds" but does not run fails here, loudly.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS, pinnedNodeOrFail } from './runtime.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const pinned = pinnedNodeOrFail();
// pkg makes the SEA blob with the node that runs it, and the blob's layout changes between Node
// releases: run on the pinned Node, whichever node npm started us with.
// Compared as real paths (node_modules may be a symlink: process.execPath is resolved), and
// re-run at most once, so a mismatch can never turn into a chain of processes.
if (realpathSync(process.execPath) !== realpathSync(pinned)) {
  if (process.env.SOCKCAT_BUILD_ON_PINNED === '1') {
    console.error(`build-bin: running on ${process.execPath}, not the pinned Node ${pinned}`);
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, SOCKCAT_BUILD_ON_PINNED: '1' } });
  process.exit(r.status ?? 1);
}

const dist = join(root, 'dist');
const bundle = join(dist, 'sockcat-sea.cjs');
const out = join(dist, 'sockcat');
const require = createRequire(import.meta.url);
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const expected = `sockcat ${version} (node ${process.versions.node})`;

function fail(msg) {
  console.error(`build:bin: ${msg}`);
  process.exit(1);
}

execFileSync(process.execPath, [join(root, 'scripts/bundle.mjs'), bundle, '--target=node24'], { stdio: 'inherit' });

// pkg narrates every step on stdout ("> Generating the blob...") and says an existing output
// "will be overwritten": kept, and shown only if the build fails. (postject's LIEF notes about
// the .note sections are filtered by pkg itself: they are harmless.)
const { log } = require('@yao-pkg/pkg/lib-es5/log.js');
const narration = [];
log.info = log.warn = (text) => narration.push(String(text));
rmSync(out, { force: true });
const sea = require('@yao-pkg/pkg/lib-es5/sea.js').default;
try {
  await sea(bundle, {
    targets: [{ platform: 'linux', arch: 'x64', nodeRange: `node${process.versions.node.split('.')[0]}`, output: out }],
    nodePath: pinned,
    signature: false,
    // useCodeCache: V8 bytecode of the bundle compiled at build time, so start-up skips
    // parsing and compiling sockcat's ~1 MB of JavaScript. execArgv: see NODE_FLAGS.
    seaConfig: { useCodeCache: true, execArgv: NODE_FLAGS },
  });
} catch (err) {
  for (const line of narration) console.error(`  ${line}`);
  fail(`pkg failed: ${err instanceof Error ? err.message : err}`);
} finally {
  rmSync(bundle, { force: true });
}

// Prove it: from an empty directory, with no PATH, no NODE_* variables and no node_modules near.
const empty = mkdtempSync(join(tmpdir(), 'sockcat-bin-check-'));
const run = spawnSync('/usr/bin/env', ['-i', out, '--version'], { cwd: empty, encoding: 'utf8', timeout: 20_000 });
rmSync(empty, { recursive: true, force: true });
if (run.status !== 0 || run.stdout.trim() !== expected) {
  fail(`dist/sockcat does not run standalone (exit ${run.status}, stdout ${JSON.stringify(run.stdout)}, stderr ${JSON.stringify(run.stderr)})`);
}
const mb = (statSync(out).size / 1e6).toFixed(0);
console.log(`build:bin: dist/sockcat: ${expected}, ${mb} MB, runs standalone (pkg SEA, code cache, ${NODE_FLAGS.join(' ')})`);

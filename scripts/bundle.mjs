// Bundles src/cli.ts and its dependencies into one CommonJS file, dist/sockcat.cjs: what the
// tests run, what `npx sockcat` runs, and what the standalone binary embeds.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Node built-in modules that cost start-up time to load (tls alone ~15 ms on this machine,
 * http, cluster, child_process and assert as much again; `node:net`, streams and fs are loaded
 * by Node itself anyway) and that most runs never use. The bundle gets each as an object with
 * one getter per export that loads the real module on first use, so `sockcat --version`,
 * `sockcat connect` and the like do not pay for TLS or HTTP. Only modules whose exports are
 * their own properties qualify (not node:cluster, an EventEmitter whose `on` is inherited), and
 * the bundle's code must not take the module's source text elsewhere (spawnerMain uses
 * process.getBuiltinModule for that reason).
 */
const LAZY_BUILTINS = ['assert', 'child_process', 'crypto', 'dgram', 'dns', 'dns/promises', 'http', 'https', 'perf_hooks', 'tls', 'v8', 'worker_threads', 'zlib'];
const nodeRequire = createRequire(import.meta.url);
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|').replace(/\//g, '\\/')})$`);
    b.onResolve({ filter }, (a) => ({ path: a.path.replace(/^node:/, ''), namespace: 'lazy-builtin' }));
    b.onResolve({ filter: /^real-builtin:/ }, (a) => ({ path: `node:${a.path.slice('real-builtin:'.length)}`, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => {
      // The export names, from the Node that builds (the same major as the one that runs the binary).
      const mod = nodeRequire(`node:${a.path}`);
      const names = Object.keys(mod).filter((k) => k !== 'default');
      // assert's functions are taken at load time by yargs (`{ strictEqual } from 'assert'`):
      // they are stood in for by functions that load assert when called (none is a class).
      const callLater = a.path === 'assert' ? names.filter((k) => typeof mod[k] === 'function' && !/^[A-Z]/.test(k)) : [];
      const contents = [
        'let real;',
        `const load = () => (real ??= require(${JSON.stringify(`real-builtin:${a.path}`)}));`,
        'const lazy = {};',
        `for (const k of ${JSON.stringify(names)}) Object.defineProperty(lazy, k, { enumerable: true, configurable: true, get: () => load()[k], set: (v) => { load()[k] = v; } });`,
        `for (const k of ${JSON.stringify(callLater)}) Object.defineProperty(lazy, k, { enumerable: true, value: function (...args) { return load()[k].apply(this, args); } });`,
        'module.exports = lazy;',
      ].join('\n');
      return { contents, loader: 'js' };
    });
  },
};

const root = fileURLToPath(new URL('..', import.meta.url));
// An optional argument names another output file (build-bin bundles to its own file, so a
// running test suite never reads dist/sockcat.cjs half-written); --target=nodeNN the syntax level
// (the npm package runs on any Node >= 20; the binary embeds the pinned Node 24).
const args = process.argv.slice(2);
const outfile = args.find((a) => !a.startsWith('--')) ?? `${root}dist/sockcat.cjs`;
const target = args.find((a) => a.startsWith('--target='))?.slice('--target='.length) ?? 'node20';
await build({
  entryPoints: [`${root}src/cli.ts`],
  outfile,
  bundle: true,
  platform: 'node',
  target,
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  // yargs reads import.meta.url in its ESM entry; the CJS entry we bundle does not, but keep it defined.
  define: { 'import.meta.url': 'undefined' },
  logLevel: 'warning',
  legalComments: 'none',
  plugins: [lazyBuiltins],
});
chmodSync(outfile, 0o755);

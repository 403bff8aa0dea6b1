// Bundles src/bin.ts (the CLI) and its dependencies into one CommonJS file, dist/sockcat.cjs: what the
// tests run, what `npx sockcat` runs, and what the standalone binary embeds.
import { build } from 'esbuild';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Node built-in modules that cost start-up time to load (tls alone ~15 ms on this machine,
 * http, cluster, child_process and assert as much again; `node:net`, streams and fs are loaded
 * by Node itself anyway) and that most runs never use. The bundle gets each as an object with
 * one getter per export that loads the real module on first use, so `sockcat --version`,
 * `sockcat connect` and the like do not pay for TLS or HTTP. node:cluster is an EventEmitter
 * (its `on` is inherited): its stand-in also lists the inherited methods, bound to the real
 * module. The bundle's code must not take a function's source text elsewhere (spawnerMain uses
 * process.getBuiltinModule for that reason).
 */
const LAZY_BUILTINS = ['assert', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'dns/promises', 'http', 'https', 'perf_hooks', 'tls', 'v8', 'worker_threads', 'zlib'];
const LAZY_PACKAGES = ['prom-client'];
const nodeRequire = createRequire(import.meta.url);

/** A CommonJS module standing in for `id`: one getter per export, loading `realSpecifier` on first use. */
function lazyModule(id, realSpecifier, callLater, withMethods = false) {
  // The export names, from the Node that builds (the same major as the one that runs the binary).
  const mod = nodeRequire(id);
  const names = new Set(Object.keys(mod));
  if (withMethods) {
    for (let p = Object.getPrototypeOf(mod); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor' && typeof p[k] === 'function') names.add(k);
    }
  }
  const own = [...names].filter((k) => k !== 'default' && !callLater.includes(k));
  const get = withMethods ? '{ const v = load()[k]; return typeof v === "function" ? v.bind(real) : v; }' : 'load()[k]';
  return [
    'let real;',
    `const load = () => (real ??= require(${JSON.stringify(realSpecifier)}));`,
    'const lazy = {};',
    `for (const k of ${JSON.stringify(own)}) Object.defineProperty(lazy, k, { enumerable: true, configurable: true, get: () => ${get}, set: (v) => { load()[k] = v; } });`,
    `for (const k of ${JSON.stringify(callLater)}) Object.defineProperty(lazy, k, { enumerable: true, value: function (...args) { return load()[k].apply(this, args); } });`,
    'module.exports = lazy;',
  ].join('\n');
}
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|').replace(/\//g, '\\/')})$`);
    b.onResolve({ filter }, (a) => ({ path: a.path.replace(/^node:/, ''), namespace: 'lazy-builtin' }));
    b.onResolve({ filter: /^real-builtin:/ }, (a) => ({ path: `node:${a.path.slice('real-builtin:'.length)}`, external: true }));
    // npm packages likewise: prom-client (--metrics) loads cluster, perf_hooks, zlib and
    // OpenTelemetry's API when evaluated, ~50 ms for every start-up without --metrics.
    const pkgFilter = new RegExp(`^(${LAZY_PACKAGES.join('|')})$`);
    // The real package is resolved through esbuild again (below): let that resolution through.
    b.onResolve({ filter: pkgFilter }, (a) => (a.pluginData?.real ? undefined : { path: a.path, namespace: 'lazy-package' }));
    b.onResolve({ filter: /^real-package:/ }, (a) => b.resolve(a.path.slice('real-package:'.length), { kind: 'require-call', resolveDir: root, pluginData: { real: true } }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (a) => ({ contents: lazyModule(a.path, `real-package:${a.path}`, []), loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => {
      // The export names, from the Node that builds (the same major as the one that runs the binary).
      // assert's functions are taken at load time by yargs (`{ strictEqual } from 'assert'`):
      // they are stood in for by functions that load assert when called (none is a class).
      const mod = nodeRequire(`node:${a.path}`);
      const callLater = a.path === 'assert' ? Object.keys(mod).filter((k) => typeof mod[k] === 'function' && !/^[A-Z]/.test(k)) : [];
      return { contents: lazyModule(`node:${a.path}`, `real-builtin:${a.path}`, callLater, a.path === 'cluster'), loader: 'js' };
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
// examples/ travels inside the bundle (`sockcat examples`): the binary has no examples/ next to it.
// The same walk as readExampleFiles in src/examples.ts, which reads them from disk when run from source.
function readExampleFiles(dir, prefix = '') {
  const out = {};
  for (const entry of readdirSync(dir).sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) Object.assign(out, readExampleFiles(full, `${prefix}${entry}/`));
    else out[`${prefix}${entry}`] = readFileSync(full, 'utf8');
  }
  return out;
}

await build({
  entryPoints: [`${root}src/bin.ts`],
  outfile,
  bundle: true,
  platform: 'node',
  target,
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  // yargs reads import.meta.url in its ESM entry; the CJS entry we bundle does not, but keep it defined.
  define: { 'import.meta.url': 'undefined', __SOCKCAT_EXAMPLES__: JSON.stringify(readExampleFiles(`${root}examples`)) },
  logLevel: 'warning',
  legalComments: 'none',
  plugins: [lazyBuiltins],
});
chmodSync(outfile, 0o755);

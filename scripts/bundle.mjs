// Bundles src/bin.ts (the CLI) and its dependencies into one CommonJS file, dist/sockcat.cjs: what the
// tests run, what `npx sockcat` runs, and what the standalone binary embeds.
import { build } from 'esbuild';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
});
chmodSync(outfile, 0o755);

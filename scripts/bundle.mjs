// Bundles src/bin.ts (the CLI) and its dependencies into one CommonJS file, dist/sockcat.cjs: what the
// tests run, what `npx sockcat` runs, and what the standalone binary embeds.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// An optional argument names another output file (build-bin bundles to its own file, so a
// running test suite never reads dist/sockcat.cjs half-written).
const outfile = process.argv[2] ?? `${root}dist/sockcat.cjs`;
await build({
  entryPoints: [`${root}src/bin.ts`],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  // yargs reads import.meta.url in its ESM entry; the CJS entry we bundle does not, but keep it defined.
  define: { 'import.meta.url': 'undefined' },
  logLevel: 'warning',
  legalComments: 'none',
});
chmodSync(outfile, 0o755);

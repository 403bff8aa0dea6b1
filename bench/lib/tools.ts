/**
 * The programs the bench runs: sockcat (bundled CLI under node, or $SOCKCAT_BIN), the anchors
 * (socat, ncat, iperf3 from Debian) and the bench's own C load generator and echo backend,
 * compiled on first use into bench/.build.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS, PINNED_NODE, pinnedNodeVersion } from '../../scripts/runtime.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = `${ROOT}bench/.build`;

/** Command and leading arguments that start sockcat: the bundle on the pinned Node with the binary's flags. */
export function sockcat(): [string, string[]] {
  const bin = process.env.SOCKCAT_BIN;
  return bin ? [bin, []] : [PINNED_NODE, [...NODE_FLAGS, `${ROOT}dist/sockcat.cjs`]];
}

/** How sockcat is run, for the report. */
export function sockcatLabel(): string {
  return process.env.SOCKCAT_BIN ? process.env.SOCKCAT_BIN : `node ${NODE_FLAGS.join(' ')} dist/sockcat.cjs (pinned Node ${pinnedNodeVersion()})`;
}

/** Compiles bench/c/NAME.c into bench/.build/NAME unless it is up to date; returns the path. */
export function cTool(name: 'loadgen' | 'echo' | 'fanout' | 'socksload'): string {
  const src = `${ROOT}bench/c/${name}.c`;
  const out = `${BUILD}/${name}`;
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BUILD, { recursive: true });
    execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', out, src], { stdio: 'inherit' });
  }
  return out;
}

/** True when `cmd` can be run (found on PATH). */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return text.split('\n').find((l) => /version|\d+\.\d+/i.test(l))?.trim() ?? 'not found';
}

/** The machine and program versions, as the report's header. */
export function machine(): string[] {
  const cpu = os.cpus()[0]?.model ?? '?';
  return [
    `- machine: ${os.cpus().length} CPUs (nproc ${os.availableParallelism()}), ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`,
    `- bench harness on node ${process.version}; sockcat run as \`${sockcatLabel()}\``,
    `- ${firstLine('socat', ['-V']).replace(/\s+on\s.*$/, '')}; ${firstLine('ncat', ['--version'])}; ${firstLine('iperf3', ['--version'])}`,
  ];
}

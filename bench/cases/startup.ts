/**
 * Start-up: `sockcat --version` against `node -e 0` on the same Node (the pinned one the binary
 * embeds), run one after the other in alternation so that a busy phase of the machine hits both.
 * Each figure is the median over all runs of wall time from spawn to exit, and the CPU (user +
 * system) the process used, read from our own children's rusage (/proc/self/stat cutime + cstime).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { newMetric, addSample, type CaseResult } from '../lib/report';
import { sockcat, sockcatLabel } from '../lib/tools';
import { PINNED_NODE } from '../../scripts/runtime.mjs';
import type { BenchOptions } from '../run';

const SOCKCAT = 'sockcat --version';
const NODE = 'node -e 0 (same Node)';

/** CPU seconds of our reaped children so far (clock ticks of 10 ms). */
function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of stat(5) (cutime, cstime) are 14 and 15 here, after pid and comm.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function timeOnce(cmd: string, args: string[]): { wallMs: number; cpuMs: number } {
  const c0 = childrenCpuSeconds();
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], timeout: 30_000 });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`);
  return { wallMs, cpuMs: (childrenCpuSeconds() - c0) * 1000 };
}

export async function startupCase(o: BenchOptions): Promise<CaseResult> {
  const [cmd, pre] = sockcat();
  const wall = newMetric('wall', 'start-up to exit, wall time', 'ms', 1);
  const cpu = newMetric('cpu', 'start-up to exit, CPU (user + system, mean)', 'ms', 0);
  const runs = o.quick ? 10 : 30;
  const subjects: Array<[string, string, string[]]> = [
    [SOCKCAT, cmd, [...pre, '--version']],
    [NODE, PINNED_NODE, ['-e', '0']],
  ];
  process.stderr.write(`startup: ${runs} runs each, alternating\n`);
  // One unrecorded run each: the first read of a 100 MB binary from disk is not start-up.
  for (const [, c, a] of subjects) timeOnce(c, a);
  const cpuTotal = new Map<string, number>();
  for (let i = 0; i < runs; i++) {
    for (const [name, c, a] of i % 2 ? [...subjects].reverse() : subjects) {
      const t = timeOnce(c, a);
      addSample(wall, name, { value: t.wallMs });
      cpuTotal.set(name, (cpuTotal.get(name) ?? 0) + t.cpuMs);
    }
  }
  // CPU is counted in 10 ms ticks: the mean over all runs, not a median of single runs.
  for (const [name, total] of cpuTotal) addSample(cpu, name, { value: total / runs });
  return {
    name: 'start-up',
    subjects: [SOCKCAT, NODE],
    metrics: [wall, cpu],
    targets: [
      { metric: 'wall', subject: SOCKCAT, anchor: NODE, op: '<=', factor: 1.5, headline: true },
      { metric: 'cpu', subject: SOCKCAT, anchor: NODE, op: '<=', factor: 1.5 },
    ],
    notes: [
      `commands: \`${sockcatLabel()} --version\` and \`${PINNED_NODE.replace(/^.*\/node_modules\//, 'node_modules/')} -e 0\`, ${runs} runs each, alternating, after one unrecorded run each; CPU is the mean over the runs, from the harness' children rusage`,
    ],
  };
}

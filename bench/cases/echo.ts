/**
 * Not a target, a reference (`--only echo`): `sockcat listen --echo` against the bench's C echo
 * backend and socat's PIPE echo. It shows what one Node process costs per connection and per
 * round trip before any relay to a second socket is involved.
 */
import { spawn } from 'node:child_process';
import { stopProcess } from '../lib/proc';
import { newMetric, type CaseResult } from '../lib/report';
import { measureCpsAndLatency, shown, startAll, stopAll, type Subject } from '../lib/subjects';
import { cTool, sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

export async function echoCase(o: BenchOptions): Promise<CaseResult> {
  const [node, pre] = sockcat();
  const subjects: Subject[] = [
    { name: 'sockcat listen --echo', command: (p) => [node, [...pre, 'listen', '--echo', `127.0.0.1:${p}`]] },
    { name: 'socat PIPE', command: (p) => ['socat', [`TCP-LISTEN:${p},fork,reuseaddr,bind=127.0.0.1`, 'PIPE']] },
  ];
  const cps = newMetric('cps', 'connections/s (64 B echo, 8 at a time)', 'conn/s');
  const p50 = newMetric('p50', 'latency p50 (64 B ping-pong)', 'µs', 1);
  const p99 = newMetric('p99', 'latency p99', 'µs', 1);
  const result: CaseResult = { name: 'echo (reference, no target)', subjects: [...subjects.map((s) => s.name), 'C echo (epoll)'], metrics: [cps, p50, p99], targets: [], notes: [] };

  const started = await startAll(subjects);
  // The C echo backend as one more subject: what the machine does with no Node and no fork.
  const child = spawn(cTool('echo'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
  started.push({
    subject: { name: 'C echo (epoll)', command: () => [cTool('echo'), []] },
    server: { child, pid: child.pid!, port, stderr: () => '', stop: () => stopProcess(child) },
  });
  try {
    await measureCpsAndLatency(o, started, { cps, p50, p99 });
  } finally {
    await stopAll(started);
  }
  result.notes.push(`commands: ${subjects.map((s) => `\`${shown(s)}\``).join(', ')}, \`bench/.build/echo\``);
  return result;
}

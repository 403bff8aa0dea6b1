/**
 * exec vs socat SYSTEM and ncat --sh-exec: connections per second where every connection
 * spawns a `cat` (connect, send 64 bytes, half-close, read the echo until EOF, close; 8 at a time).
 */
import { newMetric, type CaseResult } from '../lib/report';
import { connRate, interleave, measure, record, shown, startAll, stopAll, type Subject } from '../lib/subjects';
import { sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

const SOCKCAT = 'sockcat exec -- cat';
const SOCKCAT_SH = 'sockcat exec --sh cat';
const SOCAT = 'socat SYSTEM:cat';
const NCAT = 'ncat --sh-exec cat';

export async function execCase(o: BenchOptions): Promise<CaseResult> {
  const [node, pre] = sockcat();
  const subjects: Subject[] = [
    { name: SOCKCAT, command: (p) => [node, [...pre, 'exec', `127.0.0.1:${p}`, '--', 'cat']] },
    // Same work as the anchors, which both go through /bin/sh -c.
    { name: SOCKCAT_SH, command: (p) => [node, [...pre, 'exec', `127.0.0.1:${p}`, '--sh', 'cat']] },
    { name: SOCAT, command: (p) => ['socat', [`TCP-LISTEN:${p},fork,reuseaddr,bind=127.0.0.1`, 'SYSTEM:cat']] },
    { name: NCAT, command: (p) => ['ncat', ['-lk', '127.0.0.1', String(p), '--sh-exec', 'cat']] },
  ];
  const cps = newMetric('cps', 'connections/s (spawn cat, 64 B, half-close, 8 at a time)', 'conn/s');
  // ncat loses the child's output after the client's half-close (nmap #962), so it fails every
  // exchange above; this variant (read the 64 B back, then close) gives it a figure too.
  const cpsNoHalf = newMetric('cpsNoHalf', 'connections/s, no half-close (read 64 B back, close)', 'conn/s');
  const result: CaseResult = {
    name: 'exec',
    subjects: subjects.map((s) => s.name),
    metrics: [cps, cpsNoHalf],
    targets: [
      { metric: 'cps', subject: SOCKCAT, anchor: SOCAT, op: '>=', factor: 1, headline: true },
      { metric: 'cps', subject: SOCKCAT_SH, anchor: SOCAT, op: '>=', factor: 1 },
      { metric: 'cpsNoHalf', subject: SOCKCAT, anchor: NCAT, op: '>=', factor: 1 },
    ],
    notes: [],
  };
  const started = await startAll(subjects);
  try {
    process.stderr.write(`exec: ${cps.title}\n`);
    await interleave(o.rounds, started, (st) => record(cps, st, (server) => measure(server, () => connRate(server.port, o.cpsSeconds, true))));
    process.stderr.write(`exec: ${cpsNoHalf.title}\n`);
    await interleave(o.rounds, started, (st) =>
      record(cpsNoHalf, st, (server) => measure(server, () => connRate(server.port, o.cpsSeconds, false))),
    );
  } finally {
    await stopAll(started);
  }
  result.notes.push(`load: \`bench/.build/loadgen cpsh PORT ${o.cpsSeconds} 8 64\` (8 threads: connect, send 64 B, shutdown(SHUT_WR), read until EOF and check 64 B came back, close)`);
  result.notes.push('ncat --sh-exec fails every half-close exchange: after the client\'s FIN it closes without passing on the output cat still has (nmap issue #962); the no-half-close row gives it a figure');
  result.notes.push(`no half-close variant: \`bench/.build/loadgen cps PORT ${o.cpsSeconds} 8 64\``);
  result.notes.push(`commands: ${subjects.map((s) => `\`${shown(s)}\``).join(', ')}`);
  return result;
}

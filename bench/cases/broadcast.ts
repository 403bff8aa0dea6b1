/**
 * broadcast fan-out vs ncat --chat and --broker: 50 clients, one sends 20,000 lines of 64 bytes,
 * deliveries per second (lines received summed over the other 49 / time until all arrived);
 * then the same with one more client that never reads. A server that freezes behind that
 * client is cut off at the timeout and reported as "stalled" with what it delivered by then.
 */
import { run } from '../lib/proc';
import { addSample, medianOf, newMetric, type CaseResult } from '../lib/report';
import { interleave, measure, record, shown, startAll, stopAll, type Subject } from '../lib/subjects';
import { ROOT, sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

const LINES = 'sockcat broadcast';
const RAW = 'sockcat broadcast --raw';
const CHAT = 'ncat --chat';
const BROKER = 'ncat --broker';

export async function broadcastCase(o: BenchOptions): Promise<CaseResult> {
  const [node, pre] = sockcat();
  const subjects: Subject[] = [
    { name: LINES, command: (p) => [node, [...pre, 'broadcast', `127.0.0.1:${p}`]] },
    { name: RAW, command: (p) => [node, [...pre, 'broadcast', '--raw', `127.0.0.1:${p}`]] },
    { name: CHAT, command: (p) => ['ncat', ['-l', '127.0.0.1', String(p), '--chat']] },
    { name: BROKER, command: (p) => ['ncat', ['-l', '127.0.0.1', String(p), '--broker']] },
  ];
  const rate = newMetric('rate', `deliveries/s (${o.fanoutClients} clients, ${o.fanoutLines} lines of 64 B)`, 'lines/s');
  const stuckRate = newMetric('stuck', 'deliveries/s, plus 1 client that never reads', 'lines/s');
  const kept = newMetric('kept', 'rate with a stuck reader / rate without', '%', 0);
  // 20,000 lines (1.28 MB per client) fit in the kernel's buffers for the stuck client (its 4 KiB
  // receive buffer plus up to 4 MiB of the server's send buffer): a server that blocks on it
  // may not block yet. 100,000 lines (6.4 MB) get past the buffers.
  const bigLines = o.fanoutLines * 5;
  const stuckBig = newMetric('stuckBig', `deliveries/s, ${bigLines} lines, plus 1 client that never reads`, 'lines/s');
  const keptBig = newMetric('keptBig', `rate with a stuck reader, ${bigLines} lines / rate without`, '%', 0);
  const result: CaseResult = {
    name: 'broadcast',
    subjects: subjects.map((s) => s.name),
    metrics: [rate, stuckRate, kept, stuckBig, keptBig],
    targets: [
      { metric: 'rate', subject: LINES, anchor: CHAT, op: '>=', factor: 1 },
      { metric: 'rate', subject: RAW, anchor: BROKER, op: '>=', factor: 1 },
      { metric: 'stuck', subject: LINES, anchor: CHAT, op: '>=', factor: 1 },
      { metric: 'stuck', subject: RAW, anchor: BROKER, op: '>=', factor: 1 },
    ],
    notes: [],
  };

  const started = await startAll(subjects);
  try {
    for (const [m, stuck, lines] of [[rate, false, o.fanoutLines], [stuckRate, true, o.fanoutLines], [stuckBig, true, bigLines]] as const) {
      process.stderr.write(`broadcast: ${m.title}\n`);
      await interleave(o.rounds, started, (st) =>
        record(m, st, (server) =>
          measure(server, async () => {
            const args = [`${ROOT}bench/gen/fanout.mjs`, server.port, o.fanoutClients, lines, o.fanoutTimeoutS].map(String);
            const out = await run(process.execPath, stuck ? [...args, '--stuck'] : args, { timeoutMs: (o.fanoutTimeoutS + 30) * 1000 });
            const r = JSON.parse(out.trim().split('\n').pop()!);
            const share = `${Math.round((100 * r.delivered) / r.expected)}% delivered`;
            const note = r.complete ? undefined : r.stalled ? `stalled: ${share}, then nothing for 3 s` : `timed out: ${share} in ${o.fanoutTimeoutS} s`;
            return { value: r.rate, genCpuS: r.cpu_s, note };
          }),
        ),
      );
    }
  } finally {
    await stopAll(started);
  }
  for (const s of subjects) {
    const base = medianOf(rate, s.name);
    for (const [from, to] of [[stuckRate, kept], [stuckBig, keptBig]] as const) {
      const v = medianOf(from, s.name);
      if (base && v !== undefined) addSample(to, s.name, { value: (100 * v) / base });
    }
  }
  result.notes.push(`load: \`node bench/gen/fanout.mjs PORT ${o.fanoutClients} ${o.fanoutLines} ${o.fanoutTimeoutS} [--stuck]\` (Node, one process; lines counted by a marker, robust to chat prefixes; a run with no new line for 3 s is stopped and called stalled; its rate is what arrived over the time until then, the 3 s included)`);
  result.notes.push('target: "rate with a stuck reader / rate without" should stay ≥ 90%');
  result.notes.push(`commands: ${subjects.map((s) => `\`${shown(s)}\``).join(', ')}`);
  return result;
}

/**
 * broadcast fan-out vs ncat --chat and --broker: 50 clients, one sends 20,000 lines of 64 bytes,
 * deliveries per second (lines received summed over the other 49 / time until all arrived);
 * then the same with one more client that never reads. A server that freezes behind that
 * client is cut off at the timeout and reported as "stalled" with what it delivered by then.
 */
import { run } from '../lib/proc';
import { addSample, medianOf, newMetric, type CaseResult } from '../lib/report';
import { measure, record, shown, startAll, stopAll, type Subject } from '../lib/subjects';
import { cTool, sockcat } from '../lib/tools';
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
      { metric: 'rate', subject: LINES, anchor: CHAT, op: '>=', factor: 1.2, headline: true },
      { metric: 'rate', subject: RAW, anchor: BROKER, op: '>=', factor: 1 },
      { metric: 'stuck', subject: LINES, anchor: CHAT, op: '>=', factor: 1 },
      { metric: 'keptBig', subject: LINES, anchor: CHAT, op: '>=', factor: 1, headline: true },
      { metric: 'stuck', subject: RAW, anchor: BROKER, op: '>=', factor: 1 },
    ],
    notes: [],
  };

  const started = await startAll(subjects);
  try {
    // One unrecorded run each first: a fresh Node server runs its first burst before the JIT
    // has compiled its hot paths, and that round would otherwise be the "rate without" one.
    for (const st of started) if (st.server) await fanout(st.server.port, o.fanoutClients, o.fanoutLines, o.fanoutTimeoutS, false).catch(() => undefined);
    const once = (m: typeof rate, stuck: boolean, lines: number) => (st: (typeof started)[number]) =>
      record(m, st, (server) =>
        measure(server, async () => {
          const r = await fanout(server.port, o.fanoutClients, lines, o.fanoutTimeoutS, stuck);
          const share = `${Math.round((100 * r.delivered) / r.expected)}% delivered`;
          const note = r.complete ? undefined : r.stalled ? `stalled: ${share}, then nothing for 3 s` : `timed out: ${share} in ${o.fanoutTimeoutS} s`;
          return { value: r.rate, genCpuS: r.cpu_s, note };
        }),
      );
    // Each round runs both scenarios, so a drift of the machine over the run hits both alike
    // (the "kept" ratio compares them).
    process.stderr.write(`broadcast: ${rate.title}, and with a stuck reader\n`);
    for (let r = 0; r < o.fanoutRounds; r++) {
      const order = started.map((_, i) => started[(i + r) % started.length]);
      for (const st of order) await once(rate, false, o.fanoutLines)(st);
      for (const st of order) await once(stuckRate, true, o.fanoutLines)(st);
    }
    // The 100,000-line run asks only whether a server stalls; one round says it.
    process.stderr.write(`broadcast: ${stuckBig.title}\n`);
    for (const st of started) await once(stuckBig, true, bigLines)(st);
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
  result.notes.push(
    `load: \`bench/.build/fanout PORT ${o.fanoutClients} LINES ${o.fanoutTimeoutS} [stuck]\` (C, epoll, one process; lines counted by a marker, robust to chat prefixes; ` +
      'the stuck client has a 4 KiB receive buffer and never reads; a run with no new line for 3 s is stopped and called stalled, and its rate is what arrived over the time until then, the 3 s included). ' +
      'A first generator in Node used a whole core during the burst and capped every server at 4-5 M deliveries/s.',
  );
  result.notes.push('target: "rate with a stuck reader / rate without" should stay ≥ 90%');
  result.notes.push('"cpu" here is over the whole generator run (50 connects and the probe included), not the burst alone; each server gets one unrecorded warm-up run first');
  result.notes.push(`commands: ${subjects.map((s) => `\`${shown(s)}\``).join(', ')}`);
  return result;
}

/** One fan-out run with the C generator; its parsed JSON result. */
async function fanout(port: number, clients: number, lines: number, timeoutS: number, stuck: boolean): Promise<Record<string, any>> {
  const args = [port, clients, lines, timeoutS].map(String);
  const out = await run(cTool('fanout'), stuck ? [...args, 'stuck'] : args, { timeoutMs: (timeoutS + 30) * 1000 });
  const r = JSON.parse(out.trim().split('\n').pop()!);
  if (r.error) throw new Error(`fanout: ${r.error}`);
  return r;
}

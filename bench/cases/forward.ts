/**
 * forward vs socat: throughput (iperf3 through the relay to an iperf3 server), connections per
 * second and request/response latency (the C load generator through the relay to the C echo
 * backend), and memory per idle connection (2,000 held through a fresh relay).
 */
import { spawn } from 'node:child_process';
import { freePort, run, sleep, startServer, stopProcess, treeMemory, type Running } from '../lib/proc';
import { addSample, newMetric, type CaseResult } from '../lib/report';
import { interleave, loadgen, measure, measureCpsAndLatency, record, shown, startAll, startSubject, stopAll, type Subject } from '../lib/subjects';
import { cTool, sockcat } from '../lib/tools';
import type { BenchOptions } from '../run';

const SOCKCAT = 'sockcat forward';
/** The same relay with --workers (the count comes from the bench's --workers, default 2). */
const workersName = (n: number) => `sockcat forward --workers ${n}`;
const SOCAT_B = 'socat -b65536';
const SOCAT = 'socat (8 KiB)';

function subjects(backend: number | string, workers: number): Subject[] {
  const [node, pre] = sockcat();
  const target = `TCP:127.0.0.1:${backend}`;
  return [
    { name: SOCKCAT, command: (p) => [node, [...pre, 'forward', `127.0.0.1:${p}`, `127.0.0.1:${backend}`]] },
    { name: workersName(workers), command: (p) => [node, [...pre, 'forward', '--workers', String(workers), `127.0.0.1:${p}`, `127.0.0.1:${backend}`]] },
    { name: SOCAT_B, command: (p) => ['socat', ['-b65536', `TCP-LISTEN:${p},fork,reuseaddr,bind=127.0.0.1`, target]] },
    { name: SOCAT, command: (p) => ['socat', [`TCP-LISTEN:${p},fork,reuseaddr,bind=127.0.0.1`, target]] },
  ];
}

/** Starts the C echo backend; resolves with its port. */
async function startEcho(): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(cTool('echo'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`echo backend exited ${code}`)));
  });
  return { port, stop: () => stopProcess(child) };
}

export async function forwardCase(o: BenchOptions): Promise<CaseResult> {
  const tput1 = newMetric('tput1', 'throughput, 1 stream', 'Gbit/s', 2);
  const tput4 = newMetric('tput4', 'throughput, 4 streams', 'Gbit/s', 2);
  const cps = newMetric('cps', 'connections/s (64 B echo, 8 at a time)', 'conn/s');
  const p50 = newMetric('p50', 'latency p50 (64 B ping-pong)', 'µs', 1);
  const p99 = newMetric('p99', 'latency p99', 'µs', 1);
  const mem = newMetric('mem', 'memory per idle connection, PSS of the process tree, from start', 'KiB', 1);
  const memNext = newMetric('memNext', 'memory per idle connection, PSS of the process tree, the next ones', 'KiB', 1);
  const memRss = newMetric('memRss', 'memory per idle connection, RSS of the main process', 'KiB', 1);
  const WORKERS = workersName(o.workers);
  const result: CaseResult = {
    name: 'forward',
    subjects: [SOCKCAT, WORKERS, SOCAT_B, SOCAT],
    metrics: [tput1, tput4, cps, p50, p99, mem, memNext, memRss],
    targets: [
      // The goals of issue #12 (headline): 1 stream, latency and memory on one process; 4 streams
      // and connections/s with --workers (what the README recommends for many clients).
      { metric: 'tput1', subject: SOCKCAT, anchor: SOCAT_B, op: '>=', factor: 1, headline: true },
      { metric: 'tput4', subject: WORKERS, anchor: SOCAT_B, op: '>=', factor: 1, headline: true },
      { metric: 'cps', subject: WORKERS, anchor: SOCAT_B, op: '>=', factor: 3, headline: true },
      { metric: 'p99', subject: SOCKCAT, anchor: SOCAT_B, op: '<=', factor: 1, headline: true },
      { metric: 'mem', subject: SOCKCAT, anchor: SOCAT_B, op: '<=', factor: 0.2, headline: true },
      { metric: 'memNext', subject: SOCKCAT, anchor: SOCAT_B, op: '<=', factor: 0.2, headline: true },
      { metric: 'tput1', subject: WORKERS, anchor: SOCAT_B, op: '>=', factor: 1 },
      { metric: 'tput4', subject: SOCKCAT, anchor: SOCAT_B, op: '>=', factor: 1 },
      { metric: 'cps', subject: SOCKCAT, anchor: SOCAT_B, op: '>=', factor: 3 },
      { metric: 'cps', subject: WORKERS, anchor: SOCAT, op: '>=', factor: 3 },
      { metric: 'p99', subject: WORKERS, anchor: SOCAT_B, op: '<=', factor: 1 },
      { metric: 'mem', subject: WORKERS, anchor: SOCAT_B, op: '<=', factor: 0.2 },
      { metric: 'memNext', subject: WORKERS, anchor: SOCAT_B, op: '<=', factor: 0.2 },
      { metric: 'memRss', subject: SOCKCAT, anchor: SOCAT_B, anchorMetric: 'mem', op: '<=', factor: 0.2 },
    ],
    notes: [],
  };

  // Throughput: iperf3 client → relay → iperf3 server.
  const iperfPort = await freePort();
  const iperf = await startServer('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)], iperfPort);
  let started = await startAll(subjects(iperfPort, o.workers));
  try {
    for (const [m, streams] of [[tput1, 1], [tput4, 4]] as const) {
      process.stderr.write(`forward: ${m.title}\n`);
      await interleave(o.rounds, started, (st) =>
        record(m, st, (server) =>
          measure(server, async () => {
            const out = await run('iperf3', ['-c', '127.0.0.1', '-p', String(server.port), '-t', String(o.tputSeconds), '-O', '1', '-P', String(streams), '-J'], {
              timeoutMs: (o.tputSeconds + 20) * 1000,
            });
            const j = JSON.parse(out);
            // Both iperf3 ends share the machine with the relay: report their CPU as the generator's.
            const cpu = j.end.cpu_utilization_percent;
            const secs = j.end.sum_received.seconds;
            return { value: j.end.sum_received.bits_per_second / 1e9, genCpuS: ((cpu.host_total + cpu.remote_total) / 100) * secs };
          }),
        ),
      );
    }
  } finally {
    await stopAll(started);
    await iperf.stop();
  }
  result.notes.push(`throughput: \`iperf3 -s -B 127.0.0.1 -p BACKEND\`; \`iperf3 -c 127.0.0.1 -p RELAY -t ${o.tputSeconds} -O 1 -P 1|4 -J\` (sum_received); generator CPU = iperf3 client + server`);

  // Connections per second and latency through the relay to the C echo backend.
  const echo = await startEcho();
  started = await startAll(subjects(echo.port, o.workers));
  try {
    await measureCpsAndLatency(o, started, { cps, p50, p99 }, (what) => process.stderr.write(`forward: ${what}\n`));
  } finally {
    await stopAll(started);
  }
  result.notes.push(`connections/s: \`bench/.build/loadgen cps RELAY ${o.cpsSeconds} 8 64\` (8 threads: connect, send 64 B, read 64 B, close); backend \`bench/.build/echo\` (C, epoll)`);
  result.notes.push(`latency: \`bench/.build/loadgen lat RELAY ${o.latencyCount} 64\` (one connection, ${o.latencyCount} round trips after a warm-up)`);

  // Memory: a fresh relay per round, 2,000 connections held open through it.
  try {
    process.stderr.write(`forward: memory (${o.holdCount} idle connections)\n`);
    await interleave(o.memRounds, subjects(echo.port, o.workers), async (subject) => {
      const st = await startSubject(subject);
      try {
        await record(mem, st, async (server) => {
          const r = await idleMemory(server, o.holdCount);
          addSample(memRss, subject.name, { value: r.rssPerConn, note: r.note });
          addSample(memNext, subject.name, { value: r.nextPssPerConn, note: r.note });
          return { value: r.pssPerConn, note: r.note };
        });
      } finally {
        await stopAll([st]);
      }
    });
  } finally {
    await echo.stop();
  }
  result.notes.push(
    `memory: fresh relay, baseline read after start, then \`bench/.build/loadgen hold RELAY ${o.holdCount}\` (each connection echoes 1 byte end to end, then idles); ` +
      '"from start": (PSS summed over the relay and all its children from /proc/PID/smaps_rollup − baseline) / connections, which counts one-time costs too (code and heap touched for the first time); ' +
      `"the next ones": with those still held, a second \`loadgen hold RELAY ${o.holdCount}\`, (PSS after − PSS before it) / connections, the cost of one more idle connection; ` +
      '"root RSS" is VmRSS of the main process only (all of sockcat; for socat and sockcat --workers only the parent, so meaningless there)',
  );
  result.notes.push(`commands: ${subjects('BACKEND', o.workers).map((s) => `\`${shown(s)}\``).join(', ')} (TARGET = the backend)`);
  return result;
}

/** Holds `count` idle connections open through the server until `release()`; resolves once they are all open. */
async function holdConnections(server: Running, count: number): Promise<{ held: number; release: () => Promise<void> }> {
  const child = spawn(cTool('loadgen'), ['hold', String(server.port), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const release = async () => {
    child.stdin!.end();
    await stopProcess(child);
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('holding connections took over 60 s')), 60_000);
      child.stdout!.once('data', (c: Buffer) => {
        clearTimeout(timer);
        resolve(c.toString());
      });
      child.once('exit', (code) => reject(new Error(`loadgen hold exited ${code}`)));
    });
    const held = JSON.parse(line).held as number;
    if (held === 0) throw new Error('no connection could be held open');
    return { held, release };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Holds `count` connections through the server and returns the memory it grew by, per connection:
 * from its start (one-time costs included), and for `count` more held on top of those (the cost
 * of the next connection).
 */
async function idleMemory(server: Running, count: number): Promise<{ pssPerConn: number; nextPssPerConn: number; rssPerConn: number; note?: string }> {
  await sleep(300);
  const before = treeMemory(server.pid);
  const first = await holdConnections(server, count);
  try {
    await sleep(500);
    const after = treeMemory(server.pid);
    const second = await holdConnections(server, count);
    try {
      await sleep(500);
      const next = treeMemory(server.pid);
      const held = Math.min(first.held, second.held);
      return {
        pssPerConn: (after.pssKb - before.pssKb) / first.held,
        nextPssPerConn: (next.pssKb - after.pssKb) / second.held,
        rssPerConn: (after.rssKb - before.rssKb) / first.held,
        note: held < count ? `only ${held} held` : undefined,
      };
    } finally {
      await second.release();
    }
  } finally {
    await first.release();
  }
}

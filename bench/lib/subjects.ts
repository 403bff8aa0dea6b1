/**
 * Subjects (sockcat and its anchors) and the interleaved rounds: every subject is started once
 * on its own free port, then each round measures every subject in turn (the starting subject
 * rotates each round: A,B,C then B,C,A…), so a slow phase of the machine hits all of them alike.
 */
import { freePort, run, startServer, treeCpuSeconds, type Running } from './proc';
import { addSample, type Metric, type Sample } from './report';
import { cTool } from './tools';

export interface Subject {
  name: string;
  /** The command line that serves on `port`. */
  command(port: number): [string, string[]];
}

/** A subject that is running, or why it is not. */
export interface Started {
  subject: Subject;
  server?: Running;
  error?: string;
}

/** The command as a user would type it, for RESULTS.md. */
export function shown(s: Subject, port: number | string = 'PORT'): string {
  const [cmd, args] = s.command(port as number);
  return [cmd.endsWith('/node') || cmd === process.execPath ? 'node' : cmd, ...args.map((a) => a.replace(/^.*\/dist\//, 'dist/'))].join(' ');
}

export async function startSubject(subject: Subject): Promise<Started> {
  const port = await freePort();
  const [cmd, args] = subject.command(port);
  try {
    return { subject, server: await startServer(cmd, args, port) };
  } catch (e) {
    return { subject, error: (e as Error).message.slice(0, 300) };
  }
}

export async function startAll(subjects: Subject[]): Promise<Started[]> {
  const out: Started[] = [];
  for (const s of subjects) out.push(await startSubject(s));
  return out;
}

export async function stopAll(started: Started[]): Promise<void> {
  await Promise.all(started.map((s) => s.server?.stop()));
}

/** Runs `fn` for every subject, `rounds` times, in rotating order. */
export async function interleave<T>(rounds: number, items: T[], fn: (item: T, round: number) => Promise<void>): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < items.length; i++) await fn(items[(i + r) % items.length], r);
  }
}

/**
 * Measures one thing on a running server: `work` returns the figure and the generator's CPU
 * seconds; the server tree's CPU over the same wall time is added.
 */
export async function measure(server: Running, work: () => Promise<{ value: number; genCpuS?: number; note?: string }>): Promise<Sample> {
  const cpu0 = treeCpuSeconds(server.pid);
  const t0 = performance.now();
  const r = await work();
  const wall = (performance.now() - t0) / 1000;
  const cpu = treeCpuSeconds(server.pid) - cpu0;
  return {
    value: r.value,
    serverCpu: (100 * cpu) / wall,
    genCpu: r.genCpuS === undefined ? undefined : (100 * r.genCpuS) / wall,
    note: r.note,
  };
}

/** Records a sample, or the reason a subject could not be measured. */
export async function record(m: Metric, st: Started, fn: (server: Running) => Promise<Sample>): Promise<void> {
  if (!st.server) {
    m.missing.set(st.subject.name, st.error ?? 'not started');
    return;
  }
  try {
    addSample(m, st.subject.name, await fn(st.server));
  } catch (e) {
    m.missing.set(st.subject.name, (e as Error).message.slice(0, 300));
    process.stderr.write(`  ${st.subject.name}: ${m.title}: ${(e as Error).message}\n`);
  }
}

/** Runs the C load generator and parses its JSON line. */
export async function loadgen(args: (string | number)[], timeoutMs: number): Promise<Record<string, number>> {
  const out = await run(cTool('loadgen'), args.map(String), { timeoutMs });
  const parsed = JSON.parse(out.trim().split('\n').pop()!);
  if (parsed.error) throw new Error(`loadgen: ${parsed.error}`);
  return parsed;
}

/** Connections per second through a server (loadgen cps/cpsh), as a sample value. */
export async function connRate(port: number, seconds: number, halfClose: boolean): Promise<{ value: number; genCpuS: number; note?: string }> {
  const r = await loadgen([halfClose ? 'cpsh' : 'cps', port, seconds, 8, 64], (seconds + 20) * 1000);
  return { value: r.rate, genCpuS: r.cpu_s, note: r.errors > 0 ? `${r.errors} failed` : undefined };
}

/**
 * Connections per second, then 64-byte ping-pong latency (p50 into `p50`, p99 into `p99`),
 * each interleaved over every started subject: the same two measurements the forward and echo
 * cases take.
 */
export async function measureCpsAndLatency(
  o: { rounds: number; cpsSeconds: number; latencyCount: number },
  started: Started[],
  metrics: { cps: Metric; p50: Metric; p99: Metric },
  progress: (what: string) => void = () => {},
): Promise<void> {
  progress(metrics.cps.title);
  await interleave(o.rounds, started, (st) => record(metrics.cps, st, (server) => measure(server, () => connRate(server.port, o.cpsSeconds, false))));
  progress('latency');
  await interleave(o.rounds, started, (st) =>
    record(metrics.p50, st, async (server) => {
      let p99us = 0;
      const s = await measure(server, async () => {
        const r = await loadgen(['lat', server.port, o.latencyCount, 64], 60_000);
        p99us = r.p99_us;
        return { value: r.p50_us, genCpuS: r.cpu_s };
      });
      addSample(metrics.p99, st.subject.name, { ...s, value: p99us });
      return s;
    }),
  );
}

/**
 * Smoke test of the benchmark's pieces (not the benchmark: no figure is judged here). The C
 * load generator and echo backend compile and move correct bytes, the fan-out generator counts
 * every line through a real broker, /proc readings see our own processes, and the report
 * computes ratios and verdicts right.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { loadgen } from '../bench/lib/subjects';
import { freePort, processTree, run, startServer, stopProcess, treeCpuSeconds, treeMemory } from '../bench/lib/proc';
import { addSample, formatCase, median, newMetric, type CaseResult } from '../bench/lib/report';
import { interleave } from '../bench/lib/subjects';
import { cTool, have } from '../bench/lib/tools';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

/** The C echo backend on a port the system picked. */
async function echoBackend(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(cTool('echo'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.push(() => stopProcess(child));
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString()))));
  return { child, port };
}

describe('bench pieces', () => {
  it('socksload opens SOCKS5 tunnels for cps and streams to its sink through a real proxy', async () => {
    const { startProxy } = await import('./helpers/socks');
    const { port: echoPort } = await echoBackend();
    const sink = spawn(cTool('socksload'), ['sink'], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanup.push(() => stopProcess(sink));
    const sinkPort = await new Promise<number>((resolve) => sink.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString()))));
    const proxy = await startProxy({ verbose: false });
    cleanup.push(async () => void (await proxy.stop()));
    const cps = JSON.parse(await run(cTool('socksload'), ['cps', String(proxy.port), String(echoPort), '1', '2', '64'], { timeoutMs: 15_000 }));
    expect(cps.errors).toBe(0);
    expect(cps.ops).toBeGreaterThan(0);
    const tput = JSON.parse(await run(cTool('socksload'), ['tput', String(proxy.port), String(sinkPort), '1', '2'], { timeoutMs: 15_000 }));
    expect(tput.errors).toBe(0);
    expect(tput.bytes).toBeGreaterThan(0);
    // Without a handshake (target 0) the client talks to a plain relay: here the echo backend itself.
    const direct = JSON.parse(await run(cTool('socksload'), ['cps', String(echoPort), '0', '1', '1', '64'], { timeoutMs: 15_000 }));
    expect(direct.errors).toBe(0);
  });

  it('loadgen completes echo exchanges with and without half-close, and measures round trips', async () => {
    const { port } = await echoBackend();
    const cps = await loadgen(['cps', port, 1, 4, 64], 15_000);
    expect(cps.errors).toBe(0);
    expect(cps.ops).toBeGreaterThan(0);
    const half = await loadgen(['cpsh', port, 1, 4, 64], 15_000);
    expect(half.errors).toBe(0);
    expect(half.ops).toBeGreaterThan(0);
    const lat = await loadgen(['lat', port, 300, 64], 15_000);
    expect(lat.count).toBe(300);
    expect(lat.p99_us).toBeGreaterThanOrEqual(lat.p50_us);
  });

  it('holds connections open and /proc sees the memory and CPU of a process tree', async () => {
    const { child, port } = await echoBackend();
    const hold = spawn(cTool('loadgen'), ['hold', String(port), '50'], { stdio: ['pipe', 'pipe', 'inherit'] });
    cleanup.push(() => stopProcess(hold));
    const line = await new Promise<string>((resolve) => hold.stdout!.once('data', (c: Buffer) => resolve(c.toString())));
    expect(JSON.parse(line)).toEqual({ held: 50, asked: 50 });
    const mem = treeMemory(child.pid!);
    expect(mem.pssKb).toBeGreaterThan(0);
    expect(mem.processes).toBe(1);
    expect(processTree(process.pid)).toContain(child.pid);
    expect(treeCpuSeconds(process.pid)).toBeGreaterThan(0);
    hold.stdin!.end();
  });

  it.skipIf(!have('ncat'))('fanout counts every line each receiver got through a real broker (ncat --broker)', async () => {
    const port = await freePort();
    const broker = await startServer('ncat', ['-l', '127.0.0.1', String(port), '--broker'], port);
    cleanup.push(() => broker.stop());
    const out = await run(cTool('fanout'), [String(port), '5', '500', '10'], { timeoutMs: 20_000 });
    const r = JSON.parse(out);
    expect(r).toMatchObject({ delivered: 4 * 500, expected: 4 * 500, complete: true, stalled: false });
  });

  it('interleaves subjects in rotating order', async () => {
    const order: string[] = [];
    await interleave(3, ['A', 'B', 'C'], async (s) => {
      order.push(s);
    });
    expect(order.join('')).toBe('ABCBCACAB');
  });

  it('reports medians, ratios and verdicts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const m = newMetric('cps', 'connections/s', 'conn/s');
    for (const v of [900, 1000, 1100]) addSample(m, 'sockcat', { value: v });
    for (const v of [300, 310, 500]) addSample(m, 'socat', { value: v });
    const c: CaseResult = {
      name: 'x',
      subjects: ['sockcat', 'socat'],
      metrics: [m],
      targets: [
        { metric: 'cps', subject: 'sockcat', anchor: 'socat', op: '>=', factor: 3 },
        { metric: 'cps', subject: 'sockcat', anchor: 'socat', op: '>=', factor: 4 },
      ],
      notes: [],
    };
    const text = formatCase(c);
    expect(text).toContain('| 1,000 | 310 | 3.23× | >= 3× socat | yes |');
    expect(text).toContain('| 1,000 | 310 | 3.23× | >= 4× socat | **no** |');
  });
});

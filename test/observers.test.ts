/**
 * --progress in a real pseudo-terminal (util-linux `script`), --stats at exit and on SIGUSR1
 * during a transfer (no byte lost), and the flags refused where they mean nothing.
 */
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { cliStartedPerTest, runCli, sockcatCommand } from './helpers/cli';
import { tcpServer, randomBytes, sha256, sleep } from './helpers/net';

const start = cliStartedPerTest();
const hasScript = spawnSync('sh', ['-c', 'command -v script']).status === 0;

/** A server that reads at about `bytesPerSecond` and records everything; resolves with the sha256 and count. */
async function slowSink(bytesPerSecond: number) {
  let received: Buffer[] = [];
  let total = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const srv = await tcpServer((s: net.Socket) => {
    received = [];
    s.on('data', (c: Buffer) => {
      received.push(c);
      total += c.length;
      // Pause long enough that the mean rate is bytesPerSecond.
      s.pause();
      setTimeout(() => s.resume(), (c.length / bytesPerSecond) * 1000);
    });
    s.on('end', () => {
      s.end();
      done();
    });
  });
  return { port: srv.port, finished, digest: () => sha256(Buffer.concat(received)), total: () => total, close: () => srv.close() };
}

function tempFile(bytes: Buffer): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-progress-')), 'data.bin');
  fs.writeFileSync(file, bytes);
  return file;
}

describe('--progress', () => {
  it.skipIf(!hasScript)('in a terminal: redraws in place at most 10 times a second, with % and ETA for a file, and erases itself at the end', { timeout: 60_000 }, async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const sink = await slowSink(2 * 1024 * 1024);
    const file = tempFile(data);
    const [cmd, pre] = sockcatCommand();
    const line = [cmd, ...pre, 'connect', '--progress', `127.0.0.1:${sink.port}`].map((w) => `'${w}'`).join(' ') + ` < '${file}'`;
    // script gives the command a real pseudo-terminal and copies all it writes to its own stdout.
    const started = Date.now();
    const child = spawn('script', ['-q', '-e', '-c', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let tty = '';
    child.stdout.on('data', (c: Buffer) => (tty += c.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    const seconds = (Date.now() - started) / 1000;
    await sink.finished;
    expect(code).toBe(0);
    expect(sink.digest()).toBe(sha256(data));
    const redraws = tty.split('\r\x1b[K↑ ').length - 1;
    expect(redraws).toBeGreaterThanOrEqual(3);
    expect(redraws).toBeLessThanOrEqual(Math.ceil(seconds * 10));
    // pv-style: bytes and rate, a bar, a percentage and an ETA, growing to 100%.
    expect(tty).toMatch(/↑ [\d.]+ (KiB|MiB) [\d.]+ [KM]?i?B\/s {2}↓ 0 B 0 B\/s {2}0:00:0\d \[=*>? *\] \d+% ETA /);
    expect(tty).toMatch(/\] 100% ETA 0:00:00/);
    // The end: the status line erased, nothing after it (the terminal is as it was).
    expect(tty.endsWith('\r\x1b[K')).toBe(true);
    await sink.close();
  });

  it('writes nothing when stderr is not a terminal', async () => {
    const sink = await slowSink(50 * 1024 * 1024);
    const r = await runCli(['connect', '--progress', `127.0.0.1:${sink.port}`], { stdin: randomBytes(256 * 1024) });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    await sink.close();
  });
});

describe('--stats', () => {
  it('SIGUSR1 during a transfer prints the counters so far and loses no byte; the summary comes at exit', { timeout: 60_000 }, async () => {
    const data = randomBytes(6 * 1024 * 1024);
    const sink = await slowSink(3 * 1024 * 1024);
    const file = tempFile(data);
    const c = start(['connect', '--stats', '-v', `127.0.0.1:${sink.port}`], { command: ['sh', ['-c', `exec "$0" "$@" < '${file}'`, ...[sockcatCommand()[0], ...sockcatCommand()[1]]]] });
    await c.waitForStderr(/connected to/);
    let signals = 0;
    while (c.child.exitCode === null && signals < 10) {
      c.kill('SIGUSR1');
      signals++;
      await sleep(150);
    }
    const r = await c.exited;
    await sink.finished;
    expect(r.code).toBe(0);
    expect(sink.total()).toBe(data.length);
    expect(sink.digest()).toBe(sha256(data));
    const snapshots = r.stderr.match(/^sockcat: stats: so far: .* out in .*\n/gm) ?? [];
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    // The counters grow between snapshots, and the summary counts every byte.
    expect(r.stderr).toMatch(/^sockcat: stats: 0 B in, 6\.00 MiB out in [\d.]+ m?s \([^)]*\), 1 connection$/m);
    await sink.close();
  });

  it('listen --stats with --log-format json: one object with the numbers', { timeout: 60_000 }, async () => {
    const server = start(['listen', '--stats', '-v', '--log-format', 'json', '127.0.0.1:0']);
    const port = Number((await server.waitForStderr(/"event":"listening".*?:(\d+)"/))[1]);
    const { exchange } = await import('./helpers/net');
    server.child.stdin!.end('pong');
    expect((await exchange(port, 'ping!')).toString()).toBe('pong');
    await server.exited;
    const stats = server.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((o) => o.event === 'stats');
    expect(stats).toMatchObject({ bytes_in: 5, bytes_out: 4, connections: 1 });
  });

  it('is refused where it means nothing (exit 2, one line)', { timeout: 90_000 }, async () => {
    const results = await Promise.all([
      runCli(['scan', '--stats', '127.0.0.1', '1'], { timeoutMs: 80_000 }),
      runCli(['forward', '--progress', '0', '127.0.0.1:1'], { timeoutMs: 80_000 }),
      runCli(['listen', '-u', '--stats', '0'], { timeoutMs: 80_000 }),
      runCli(['completion', 'bash', '--trace'], { timeoutMs: 80_000 }),
    ]);
    for (const r of results) {
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(results[0].stderr).toMatch(/--stats counts the bytes a mode relays; scan relays none/);
    expect(results[1].stderr).toMatch(/--progress is for listen and connect/);
    expect(results[2].stderr).toMatch(/UDP datagrams are not counted/);
    expect(results[3].stderr).toMatch(/--trace shows sockets, and completion opens none/);
  });
});


/**
 * sockcat behind HAProxy itself (Debian's haproxy): examples/haproxy/haproxy.cfg, with its own
 * ports, in front of two `sockcat forward --accept-proxy-protocol` instances, one fed send-proxy
 * (v1) and one send-proxy-v2. Checks that every connection reaches the backend with the original
 * client address, that --deny acts on that address, and that after one instance is killed no new
 * connection is lost once HAProxy's check has marked it down.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cliStartedPerTest } from '../helpers/cli';
import { readAll, tcpServer, waitFor } from '../helpers/net';
import { decodeProxyHeader } from '../../src/proxy-protocol';
import { metricsPort, scrapeUntil, value } from '../helpers/metrics';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const root = fileURLToPath(new URL('../..', import.meta.url));
const sockcat = cliStartedPerTest();

let haproxy: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (haproxy && haproxy.exitCode === null) {
    const gone = new Promise((r) => haproxy!.once('exit', r));
    haproxy.kill('SIGKILL');
    await gone;
  }
  haproxy = undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A port nobody listens on right now (HAProxy's config needs a number; it binds it at once). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Asks HAProxy's stats socket for `show stat` and returns each server's status (UP, DOWN…). */
function serverStatus(sock: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('end', () => {
      const lines = out.trim().split('\n');
      const head = lines[0].replace(/^# /, '').split(',');
      const col = (name: string) => head.indexOf(name);
      const status: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const f = l.split(',');
        if (f[col('pxname')] === 'sockcats' && f[col('svname')] !== 'BACKEND') status[f[col('svname')]] = f[col('status')];
      }
      resolve(status);
    });
    c.end('show stat\n');
  });
}

/** One client from `source` (a 127.0.0.0/8 address): sends a line, returns what came back. */
async function client(port: number, source: string, text: string): Promise<{ reply: string; local: string }> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: source, allowHalfOpen: true });
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const local = `${s.localAddress}:${s.localPort}`;
  const got = readAll(s, 15_000).catch(() => Buffer.alloc(0));
  s.end(text);
  return { reply: (await got).toString(), local };
}

describe.skipIf(!has('haproxy'))('behind HAProxy (send-proxy and send-proxy-v2)', () => {
  it('keeps real client addresses, applies --deny to them, and loses no new connection after an instance dies', async () => {
    // The backend: reads the header each sockcat sends on (--proxy-protocol v1), then echoes.
    const seen = new Map<string, number>();
    const backend = await tcpServer((s) => {
      let buf = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const r = decodeProxyHeader(buf);
        if (r.status === 'incomplete') return;
        s.off('data', onData);
        if (r.status !== 'done') return s.destroy();
        if (r.header.command === 'proxy') {
          const key = `${r.header.source.address}:${r.header.source.port}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        }
        s.write(buf.subarray(r.length));
        s.pipe(s);
      };
      s.on('data', onData);
      s.on('error', () => {});
    });
    const relay = (port: string) =>
      sockcat(['forward', '-v', '--metrics', '0', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '--deny', '127.0.0.9', '--proxy-protocol', 'v1', `127.0.0.1:${port}`, `127.0.0.1:${backend.port}`]);
    const one = relay('0');
    const p1 = await one.listeningPort();
    const m1 = await metricsPort(one);
    const two = relay('0');
    const p2 = await two.listeningPort();
    const m2 = await metricsPort(two);

    // examples/haproxy/haproxy.cfg with this test's ports, a quicker check, and a private stats socket.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-haproxy-'));
    const stats = path.join(dir, 'stats.sock');
    const front = await freePort();
    const cfg = fs
      .readFileSync(`${root}examples/haproxy/haproxy.cfg`, 'utf8')
      .replaceAll('0.0.0.0:7000', `127.0.0.1:${front}`)
      .replaceAll('127.0.0.1:7001', `127.0.0.1:${p1}`)
      .replaceAll('127.0.0.1:7002', `127.0.0.1:${p2}`)
      .replaceAll('inter 1s', 'inter 200ms')
      .replaceAll('/tmp/haproxy-sockcat.sock', stats);
    expect(cfg).toContain(`127.0.0.1:${p1} send-proxy check`);
    expect(cfg).toContain(`127.0.0.1:${p2} send-proxy-v2 check`);
    fs.writeFileSync(path.join(dir, 'haproxy.cfg'), cfg);
    let haproxyErr = '';
    haproxy = spawn('haproxy', ['-f', path.join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (d) => (haproxyErr += d));
    await waitFor(() => fs.existsSync(stats), 10_000, `HAProxy's stats socket (stderr: ${haproxyErr})`);
    let status: Record<string, string> = {};
    for (let i = 0; i < 100 && !(status.sockcat1 === 'UP' && status.sockcat2 === 'UP'); i++) {
      status = await serverStatus(stats).catch(() => ({}));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toEqual({ sockcat1: 'UP', sockcat2: 'UP' });

    // 20 clients from four addresses: each reaches the backend under its own address and port.
    const sources = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client(front, sources[i % 4], `hello ${i}`)));
    results.forEach((r, i) => expect(r.reply).toBe(`hello ${i}`));
    for (const r of results) expect(seen.get(r.local)).toBe(1);
    // Both instances served some (round robin), each logging the real client.
    await waitFor(() => /connection from 127\.0\.0\.[2-5]:\d+ \(via 127\.0\.0\.1:\d+\)/.test(one.stderr()) && /connection from 127\.0\.0\.[2-5]:\d+ \(via/.test(two.stderr()), 5000, 'both instances used');

    // --deny sees the client's address, not HAProxy's.
    const denied = await client(front, '127.0.0.9', 'let me in');
    expect(denied.reply).toBe('');
    await waitFor(() => /refused 127\.0\.0\.9:\d+: denied by --deny 127\.0\.0\.9/.test(one.stderr() + two.stderr()), 5000, 'the deny log line');
    // A client that skips HAProxy and connects straight to an instance: not a trusted proxy.
    const direct = await client(p2, '127.0.0.2', 'no header');
    expect(direct.reply).toBe('');

    // Prometheus's view of the two instances (scraped with curl): the clients' bytes, to the byte
    // (HAProxy's checks connect and send nothing), the denied one, the one that skipped HAProxy.
    const sent = results.reduce((n, _, i) => n + `hello ${i}`.length, 0);
    const both = async (name: string, labels: Record<string, string>) => {
      const [a, b] = await Promise.all([m1, m2].map((m) => scrapeUntil(m, [])));
      return value(a, name, { mode: 'forward', ...labels }) + value(b, name, { mode: 'forward', ...labels });
    };
    for (let i = 0; i < 50 && (await both('sockcat_bytes_total', { direction: 'out' })) !== sent; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await both('sockcat_bytes_total', { direction: 'in' })).toBe(sent);
    expect(await both('sockcat_bytes_total', { direction: 'out' })).toBe(sent);
    expect(await both('sockcat_connections_refused_total', { reason: 'denied' })).toBe(1);
    expect(await both('sockcat_connections_refused_total', { reason: 'untrusted-proxy' })).toBe(1);
    expect(await both('sockcat_connections_accepted_total', {})).toBeGreaterThanOrEqual(20);

    // Kill one instance; once HAProxy's check marks it down, every new connection gets through.
    one.child.kill('SIGKILL');
    await one.exited;
    for (let i = 0; i < 100 && status.sockcat1 !== 'DOWN'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await serverStatus(stats);
    }
    expect(status).toEqual({ sockcat1: 'DOWN', sockcat2: 'UP' });
    const after = await Promise.all(Array.from({ length: 40 }, (_, i) => client(front, sources[i % 4], `after ${i}`)));
    after.forEach((r, i) => expect(r.reply).toBe(`after ${i}`));
    for (const r of after) expect(seen.get(r.local)).toBe(1);
    await backend.close();
  });
});

/**
 * --trace golden tests: the real CLI on real sockets, its trace lines compared with
 * test/golden/trace/NAME.txt once times, ephemeral ports and temporary paths are masked and the
 * lines are grouped by connection (#1, #2…: steps of different connections may interleave
 * differently from run to run, the steps of one connection may not).
 * UPDATE_GOLDEN=1 rewrites the files (then read the diff!).
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliStartedPerTest } from './helpers/cli';
import { tcpServer, readAll, waitFor } from './helpers/net';
import { makeTestCerts } from './helpers/tls';

const goldenDir = fileURLToPath(new URL('./golden/trace/', import.meta.url));
const start = cliStartedPerTest();

/** Trace lines only, masked and grouped by connection. */
export function normalizeTrace(stderr: string, paths: string[] = []): string {
  const lines = stderr
    .split('\n')
    .filter((l) => /^sockcat: +\d+\.\d ms {2}/.test(l))
    .map((l) => {
      let m = l.replace(/^sockcat: +\d+\.\d ms {2}/, 'T  ');
      for (const p of paths) m = m.split(p).join('PATH');
      // Every port is the system's pick (port 0, ephemeral client ports): mask them all.
      return m.replace(/(\d+\.\d+\.\d+\.\d+|\]):\d+/g, '$1:PORT');
    });
  const conn = (l: string) => Number(/^T {2}#(\d+) /.exec(l)?.[1] ?? 0);
  return lines
    .map((l, i) => [conn(l), i, l] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(([, , l]) => l)
    .join('\n') + '\n';
}

function golden(name: string, actual: string): void {
  const file = `${goldenDir}${name}.txt`;
  if (process.env.UPDATE_GOLDEN) {
    fs.mkdirSync(goldenDir, { recursive: true });
    fs.writeFileSync(file, actual);
  }
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

/** Starts the client with stdin open, sends `payload`, waits for `reply` on stdout, then closes stdin (Ctrl-D). */
async function clientExchange(args: string[], payload: string, reply: string) {
  const c = start(args);
  c.child.stdin!.write(payload);
  await waitFor(() => c.stdout().toString() === reply, 20_000, `reply ${JSON.stringify(reply)}`);
  c.child.stdin!.end();
  return c.exited;
}

describe('--trace', () => {
  it('tcp: connect and listen --echo, the TD exchange (send, echo, client closes first)', async () => {
    const server = start(['listen', '--echo', '--trace', '-v', '127.0.0.1:0']);
    const port = await server.listeningPort();
    const r = await clientExchange(['connect', '--trace', `127.0.0.1:${port}`], 'Hello, world', 'Hello, world');
    expect(r.code).toBe(0);
    await server.waitForStderr(/#1 closed/);
    server.kill('SIGTERM');
    await server.exited;
    golden('tcp-connect', normalizeTrace(r.stderr));
    golden('tcp-listen-echo', normalizeTrace(server.stderr()));
  });

  it('tcp: the server closes first, the client sees CLOSE-WAIT (half-close)', async () => {
    const server = start(['listen', '--trace', '-v', '127.0.0.1:0']);
    const port = await server.listeningPort();
    const client = start(['connect', '--trace', `127.0.0.1:${port}`]);
    await server.waitForStderr(/#1 accepted/);
    // The server types one line and Ctrl-D: its FIN goes first; the client can still send.
    server.child.stdin!.end('bye\n');
    await client.waitForStderr(/peer sent FIN/);
    client.child.stdin!.end('still here\n');
    const r = await client.exited;
    expect(r.stdout.toString()).toBe('bye\n');
    expect((await server.exited).stdout.toString()).toBe('still here\n');
    golden('tcp-connect-server-closes-first', normalizeTrace(r.stderr));
    golden('tcp-listen-server-closes-first', normalizeTrace(server.stderr()));
  });

  it('tcp: a reset received by connect', async () => {
    const srv = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    const c = start(['connect', '--trace', `127.0.0.1:${srv.port}`]);
    c.child.stdin!.write('x');
    const r = await c.exited;
    expect(r.code).toBe(1);
    await srv.close();
    golden('tcp-connect-reset', normalizeTrace(r.stderr));
  });

  it('forward: bytes both ways, then a reset from upstream passed on to the client as a reset', async () => {
    const upstream = await tcpServer((s) => {
      s.once('data', () => {
        s.write('pong');
        setTimeout(() => s.resetAndDestroy(), 100);
      });
    });
    const fwd = start(['forward', '--trace', '-v', '127.0.0.1:0', `127.0.0.1:${upstream.port}`]);
    const port = await fwd.listeningPort();
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => {});
    client.write('ping');
    const got = await readAll(client).catch(() => Buffer.alloc(0));
    expect(got.toString()).toBe('pong');
    await fwd.waitForStderr(/#1 closed/);
    await fwd.waitForStderr(/#2 closed/);
    fwd.kill('SIGTERM');
    await fwd.exited;
    await upstream.close();
    golden('tcp-forward-reset', normalizeTrace(fwd.stderr()));
  });

  it('unix: connect and listen --echo', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-trace-'));
    const sock = `${dir}/echo.sock`;
    const server = start(['listen', '--echo', '--trace', '-v', `unix:${sock}`]);
    await server.waitForStderr(/listening on/);
    const r = await clientExchange(['connect', '--trace', `unix:${sock}`], 'Hello, world', 'Hello, world');
    expect(r.code).toBe(0);
    await server.waitForStderr(/#1 closed/);
    server.kill('SIGTERM');
    await server.exited;
    golden('unix-connect', normalizeTrace(r.stderr, [dir]));
    golden('unix-listen-echo', normalizeTrace(server.stderr(), [dir]));
  });

  it('tls: connect and listen --echo --tls, the handshake named with its protocol and the certificate check', async () => {
    const certs = await makeTestCerts();
    const server = start(['listen', '--echo', '--tls', '--cert', certs.cert, '--key', certs.key, '--trace', '-v', '127.0.0.1:0']);
    const port = await server.listeningPort();
    const r = await clientExchange(['connect', '--trace', '--ca', certs.cert, `tls:127.0.0.1:${port}`], 'Hello, world', 'Hello, world');
    expect(r.code).toBe(0);
    await server.waitForStderr(/#1 closed/);
    server.kill('SIGTERM');
    await server.exited;
    golden('tls-connect', normalizeTrace(r.stderr));
    golden('tls-listen-echo', normalizeTrace(server.stderr()));
  });

  it('forward: TLS in front of a unix socket, a half-close passed on (the reply still comes back)', async () => {
    const certs = await makeTestCerts();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-trace-'));
    const sock = `${dir}/echo.sock`;
    const echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => echo.listen(sock, r));
    const fwd = start(['forward', '--trace', '-v', '--tls', '--cert', certs.cert, '--key', certs.key, '127.0.0.1:0', `unix:${sock}`]);
    const port = await fwd.listeningPort();
    const client = tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(certs.cert), allowHalfOpen: true } as tls.ConnectionOptions);
    await new Promise((r) => client.once('secureConnect', r));
    let got = '';
    client.on('data', (d: Buffer) => (got += d.toString()));
    client.write('hello');
    await waitFor(() => got === 'hello', 20_000, 'the echo');
    // Our half-close: the FIN goes through the relay to the unix socket; its FIN comes back.
    client.end();
    await new Promise((r) => client.once('end', r));
    await fwd.waitForStderr(/#1 closed/);
    await fwd.waitForStderr(/#2 closed/);
    fwd.kill('SIGTERM');
    await fwd.exited;
    client.destroy();
    echo.close();
    golden('tls-forward-to-unix', normalizeTrace(fwd.stderr(), [dir]));
  });

  it('udp: connect -u and listen -u (bind, datagrams, no handshake)', async () => {
    const server = start(['listen', '-u', '--trace', '-v', '127.0.0.1:0']);
    const port = await server.listeningPort();
    const c = start(['connect', '-u', '--trace', '--quit-after', '0.5', `127.0.0.1:${port}`]);
    await c.waitForStderr(/peer fixed/);
    c.child.stdin!.write('ping\n');
    await waitFor(() => server.stdout().toString() === 'ping\n', 20_000, 'the datagram');
    server.child.stdin!.write('pong\n');
    await waitFor(() => c.stdout().toString() === 'pong\n', 20_000, 'the reply');
    c.child.stdin!.end();
    const r = await c.exited;
    server.kill('SIGTERM');
    await server.exited;
    golden('udp-connect', normalizeTrace(r.stderr));
    golden('udp-listen', normalizeTrace(server.stderr()));
  });

  it('--log-format json: one object per step, with the ss state', async () => {
    const server = start(['listen', '--echo', '-v', '127.0.0.1:0']);
    const port = await server.listeningPort();
    const r = await clientExchange(['connect', '--trace', '--log-format', 'json', `127.0.0.1:${port}`], 'hi', 'hi');
    const steps = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((o) => o.level === 'trace');
    expect(steps.map((s) => s.event)).toEqual(['syn-sent', 'established', 'write', 'read', 'our-fin', 'peer-fin', 'closed']);
    expect(steps[0]).toMatchObject({ id: 1, address: '127.0.0.1', port, state: 'SYN-SENT' });
    expect(steps[2]).toMatchObject({ bytes: 2, role: 'client' });
    expect(steps[4]).toMatchObject({ state: 'FIN-WAIT-1' });
    expect(steps[6]).toMatchObject({ bytesIn: 2, bytesOut: 2, firstFin: 'us' });
    for (const s of steps) expect(typeof s.t_ms).toBe('number');
  });
});

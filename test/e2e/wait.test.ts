/** sockcat wait: ready when a server started late comes up; a timeout says what it last saw. */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { startCli, runCli } from '../helpers/cli';
import { makeTestCerts } from '../helpers/tls';
import { sleep } from '../helpers/net';

// An address of our own in 127/8: the port we free and take again is not 127.0.0.1's.
const HOST = '127.45.67.90';
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A port that is free on HOST right now (bound on port 0, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, HOST, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function serveOn(port: number, onSocket: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onSocket);
  cleanups.push(() => server.close());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve(server));
  });
}

describe('sockcat wait (end to end)', () => {
  it('waits for a server started late, then exits 0', async () => {
    const port = await freePort();
    const waiter = startCli(['wait', '-v', '--timeout', '20', `${HOST}:${port}`]);
    await waiter.waitForStderr(/connection refused/);
    let accepted = 0;
    await serveOn(port, (s) => {
      accepted++;
      s.destroy();
    });
    const r = await waiter.exited;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`${HOST}:${port} is ready after .* \\(\\d+ attempts\\)`));
    expect(accepted).toBe(1);
  });

  it('times out with exit 1 and one line saying the last attempt was refused', async () => {
    const port = await freePort();
    const r = await runCli(['wait', '--timeout', '2', `${HOST}:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^sockcat: \\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${HOST.replace(/\./g, '\\.')}:${port} not ready after 2\\.0 s \\(\\d+ attempts\\); last: connection refused`));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--expect: a connection is not enough, the line must arrive; a wrong banner is named on timeout', async () => {
    const port = await freePort();
    let ready = false;
    await serveOn(port, (s) => s.end(ready ? 'hello\nSERVER READY\n' : 'starting up\n'));
    const early = await runCli(['wait', '--expect', 'READY', '--timeout', '2', `${HOST}:${port}`]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/last: connected, but the server closed the connection without sending 'READY' \(last line: 'starting up'\)/);
    const waiter = startCli(['wait', '--expect', 'READY', '--timeout', '20', `${HOST}:${port}`]);
    await sleep(400);
    ready = true;
    expect((await waiter.exited).code).toBe(0);
  });

  it('--expect matches a prompt that has no newline yet and the server still open', async () => {
    const port = await freePort();
    await serveOn(port, (s) => s.write('login: '));
    const r = await runCli(['wait', '--expect', 'login:', '--timeout', '10', `${HOST}:${port}`]);
    expect(r.code).toBe(0);
  });

  it('--tls: ready only once the handshake and certificate check pass', async () => {
    const certs = await makeTestCerts();
    const server = startCli(['listen', '--echo', '-v', '--tls', '--cert', certs.cert, '--key', certs.key, '127.0.0.1:0']);
    cleanups.push(() => server.kill('SIGKILL'));
    const port = await server.listeningPort();
    const ok = await runCli(['wait', '--tls', '--ca', certs.cert, '--timeout', '20', `localhost:${port}`]);
    expect(ok.code).toBe(0);
    // Without the CA the certificate is not trusted: never ready, and the line says why.
    const untrusted = await runCli(['wait', '--tls', '--timeout', '3', `127.0.0.1:${port}`]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/not ready after 3\.0 s .*; last: .*(certificate|self-signed)/);
  });

  it('waits on a unix socket', async () => {
    const path = `/tmp/sockcat-wait-${process.pid}-${Date.now()}.sock`;
    const waiter = startCli(['wait', '--timeout', '20', `unix:${path}`]);
    await sleep(300);
    const server = net.createServer((s) => s.destroy());
    cleanups.push(() => server.close());
    await new Promise<void>((r) => server.listen(path, r));
    expect((await waiter.exited).code).toBe(0);
  });

  it('refuses what cannot be waited for (exit 2)', { timeout: 90_000 }, async () => {
    const cases: Array<[string[], RegExp]> = [
      [['wait', '-u', '9090'], /UDP has no connection/],
      [['wait', '--cert', 'x.pem', '9090'], /are for servers/],
      [['wait', '--expect', '', '9090'], /--expect needs some TEXT/],
      [['wait'], /missing address/],
      [['wait', '--timeout', 'soon', '9090'], /--timeout takes a number of seconds/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { timeoutMs: 80_000 })));
    results.forEach((r, i) => {
      expect({ args: cases[i][0], code: r.code }).toEqual({ args: cases[i][0], code: 2 });
      expect(r.stderr).toMatch(cases[i][1]);
    });
  });
});

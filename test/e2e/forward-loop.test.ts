// forward whose TARGET is its own LISTEN address: each connection used to connect to sockcat
// itself, again and again (~10,000 connections from one client). Refused at start-up.
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runCli, cliStartedPerTest } from '../helpers/cli';
import { exchange, tcpServer } from '../helpers/net';

/** A port nothing listens on right now (bound, noted, released). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('forward to itself', () => {
  it.each([
    (p: number) => [String(p), `127.0.0.1:${p}`],
    (p: number) => [String(p), `localhost:${p}`],
    (p: number) => [`0.0.0.0:${p}`, `127.0.0.1:${p}`],
    (p: number) => [`[::]:${p}`, `127.0.0.1:${p}`],
    (p: number) => [String(p), `tls:127.0.0.1:${p}`],
    (p: number) => [`udp:127.0.0.1:${p}`, `udp:127.0.0.1:${p}`],
    () => [`unix:${path.join(os.tmpdir(), 'sockcat-loop.sock')}`, `unix:${os.tmpdir()}/../${path.basename(os.tmpdir())}/sockcat-loop.sock`],
  ])('is refused at start-up with exit 2 (case %#)', async (args) => {
    const [listen, target] = args(await freePort());
    const r = await runCli(['forward', '-v', listen, target], { timeoutMs: 8000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: .* is this relay's own listening address \(.*\): every connection would come back into sockcat/);
    expect(r.stderr).not.toMatch(/listening on/);
  });

  const start = cliStartedPerTest();
  it('another port on the same host is no loop', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const port = await freePort();
    const fwd = start(['forward', '-v', String(port), `127.0.0.1:${echo.port}`]);
    await fwd.listeningPort();
    expect((await exchange(port, 'relayed')).toString()).toBe('relayed');
    await echo.close();
  });
});

/**
 * `sockcat proxy --metrics`: tunnels by protocol and outcome, refusals by reason, upstream
 * connect failures by cause and bytes each way, scraped with curl during a load of raw SOCKS5
 * clients whose every byte the test counts, then with curl's own SOCKS5 and HTTP CONNECT.
 */
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliStartedPerTest } from '../helpers/cli';
import { metricsPort, scrape, scrapeUntil, value } from '../helpers/metrics';
import { connect, tcpServer, randomBytes, waitFor } from '../helpers/net';

const sockcat = cliStartedPerTest();
const run = promisify(execFile);

/** Reads exactly n bytes (or what is left when the peer ends first). */
function readN(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) finish();
    };
    const finish = () => {
      s.off('data', onData);
      s.off('end', finish);
      s.off('close', finish);
      s.pause();
      if (got.length > n) s.unshift(got.subarray(n));
      resolve(got.subarray(0, n));
    };
    s.on('data', onData);
    s.once('end', finish);
    s.once('close', finish);
    s.resume();
  });
}

/** Sent by the client before its payload: greeting (3), login (14: alice/secret), request (10). */
const HANDSHAKE_OUT = 3 + 14 + 10;
/** Received before the payload: method (2), login verdict (2), reply with an IPv4 address (10). */
const HANDSHAKE_IN = 2 + 2 + 10;

/** A SOCKS5 CONNECT to ip:port with a login, by hand: every byte is known. Resolves with the reply code. */
async function socks5(proxy: number, port: number, password = 'secret', ip = [127, 0, 0, 1]): Promise<{ s: net.Socket; code: number }> {
  const s = await connect(proxy);
  s.write(Buffer.from([5, 1, 2]));
  const method = await readN(s, 2);
  expect(method[1]).toBe(2);
  s.write(Buffer.concat([Buffer.from([1, 5]), Buffer.from('alice'), Buffer.from([password.length]), Buffer.from(password)]));
  const login = await readN(s, 2);
  if (login[1] !== 0) return { s, code: -1 };
  const req = Buffer.from([5, 1, 0, 1, ...ip, 0, 0]);
  req.writeUInt16BE(port, 8);
  s.write(req);
  const reply = await readN(s, 10);
  return { s, code: reply[1] };
}

/** Waits for a socket's end (or close). */
const ended = (s: net.Socket) => new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : (s.once('end', () => r()), s.once('close', () => r()), s.resume())));

describe('proxy --metrics (scraped with curl)', () => {
  it('counts tunnels by outcome, refusals by reason, upstream failures by cause, and bytes each way exactly', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const gone = await tcpServer(() => {});
    await gone.close();
    const p = sockcat(['proxy', '-v', '--metrics', '0', '--auth', 'alice:secret', '--deny-dest', '127.0.0.2', '127.0.0.1:0']);
    const port = await p.listeningPort();
    const mport = await metricsPort(p);
    const mode = { mode: 'proxy' };

    // 15 tunnels held open, each having echoed 1000 + i bytes: the scrape during the load sees them.
    const held: net.Socket[] = [];
    let payload = 0;
    await Promise.all(
      Array.from({ length: 15 }, async (_, i) => {
        const { s, code } = await socks5(port, echo.port);
        expect(code).toBe(0);
        const n = 1000 + i;
        payload += n;
        s.write(randomBytes(n));
        expect((await readN(s, n)).length).toBe(n);
        held.push(s);
      }),
    );
    let t = await scrapeUntil(mport, [['sockcat_bytes_total', { direction: 'out', ...mode }, 15 * HANDSHAKE_IN + payload]]);
    expect(value(t, 'sockcat_connections_live', mode)).toBe(15);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...mode })).toBe(15 * HANDSHAKE_OUT + payload);
    expect(value(t, 'sockcat_bytes_total', { direction: 'out', ...mode })).toBe(15 * HANDSHAKE_IN + payload);
    expect(value(t, 'sockcat_proxy_tunnels_total', { protocol: 'socks5', outcome: 'eof', ...mode })).toBe(0);

    // 3 to a port nobody listens on, 2 to a denied destination, 4 with a wrong password.
    for (let i = 0; i < 3; i++) {
      const { s, code } = await socks5(port, gone.port);
      expect(code).toBe(5); // connection refused
      await ended(s);
      s.destroy();
    }
    for (let i = 0; i < 2; i++) {
      const { s, code } = await socks5(port, echo.port, 'secret', [127, 0, 0, 2]);
      expect(code).toBe(2); // not allowed by ruleset
      await ended(s);
      s.destroy();
    }
    for (let i = 0; i < 4; i++) {
      const { s, code } = await socks5(port, echo.port, 'wrong');
      expect(code).toBe(-1);
      await ended(s);
      s.destroy();
    }
    for (const s of held) s.end();
    await Promise.all(held.map(ended));
    await waitFor(() => (p.stderr().match(/closed (?!its )/g) ?? []).length === 24, 10_000, '24 closes');

    t = await scrape(mport);
    const tunnels = (outcome: string) => value(t, 'sockcat_proxy_tunnels_total', { protocol: 'socks5', outcome, ...mode });
    expect(tunnels('eof')).toBe(15);
    expect(tunnels('refused upstream')).toBe(3);
    expect(tunnels('denied by rule')).toBe(2);
    expect(tunnels('auth failed')).toBe(4);
    expect(value(t, 'sockcat_connections_refused_total', { reason: 'auth', ...mode })).toBe(4);
    expect(value(t, 'sockcat_connections_refused_total', { reason: 'rule', ...mode })).toBe(2);
    expect(value(t, 'sockcat_upstream_connect_failures_total', { cause: 'refused', ...mode })).toBe(3);
    expect(value(t, 'sockcat_connections_live', mode)).toBe(0);
    expect(value(t, 'sockcat_connections_accepted_total', mode)).toBe(24);
    expect(value(t, 'sockcat_connection_duration_seconds_count', mode)).toBe(24);
    // Every byte each client sent and received: handshakes, payloads, refusals.
    const inBytes = 15 * HANDSHAKE_OUT + payload + 5 * HANDSHAKE_OUT + 4 * (3 + 13); // 'wrong' is a byte shorter than 'secret'
    const outBytes = 15 * HANDSHAKE_IN + payload + 5 * HANDSHAKE_IN + 4 * (2 + 2);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...mode })).toBe(inBytes);
    expect(value(t, 'sockcat_bytes_total', { direction: 'out', ...mode })).toBe(outBytes);

    // curl's SOCKS5 and HTTP CONNECT: counted under their own protocols.
    const web = await tcpServer((s) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
    });
    const curl = (args: string[]) => run('curl', ['-sS', '--max-time', '10', ...args, `http://127.0.0.1:${web.port}/`]);
    expect((await curl(['--socks5', `alice:secret@127.0.0.1:${port}`])).stdout).toBe('ok');
    expect((await curl(['-p', '-x', `http://alice:secret@127.0.0.1:${port}`])).stdout).toBe('ok');
    await waitFor(() => (p.stderr().match(/closed (?!its )/g) ?? []).length === 26, 10_000, '26 closes');
    t = await scrape(mport);
    expect(value(t, 'sockcat_proxy_tunnels_total', { protocol: 'socks5', outcome: 'eof', ...mode })).toBe(16);
    expect(value(t, 'sockcat_proxy_tunnels_total', { protocol: 'http-connect', outcome: 'eof', ...mode })).toBe(1);
    await Promise.all([echo.close(), web.close()]);
  }, 60_000);
});

/**
 * `relay --metrics` and `expose --metrics`: tunnels by name (frp #4044's ask), agents, auth
 * failures, and each tunnel's connections and bytes each way, scraped with curl on both sides
 * during a load and a long transfer, and checked against the bytes the test sent.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { cliStartedPerTest } from '../helpers/cli';
import { metricsPort, scrape, scrapeUntil, value } from '../helpers/metrics';
import { connect, exchange, randomBytes, readAll, tcpServer, waitFor } from '../helpers/net';
import { startAgent, startRelay } from '../helpers/tunnel';

const start = cliStartedPerTest();

/** Reads exactly n bytes from a flowing socket. */
function readN(s: net.Socket, n: number): Promise<void> {
  return new Promise((resolve) => {
    let got = 0;
    const onData = (c: Buffer) => {
      got += c.length;
      if (got >= n) {
        s.off('data', onData);
        resolve();
      }
    };
    s.on('data', onData);
  });
}

describe('relay and expose --metrics (scraped with curl on both sides)', () => {
  it('tunnels by name, agents, auth failures, connections and bytes each way, live and at the end', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-mt-'));
    const alphaToken = 'alpha-token-0123456789abcdef';
    const betaToken = 'beta-token-0123456789abcdef';
    fs.writeFileSync(path.join(dir, 'tokens'), `alpha ${alphaToken}\nbeta ${betaToken}\n`, { mode: 0o600 });
    const echo = await tcpServer((s) => s.pipe(s));
    let sunk = 0;
    const sink = await tcpServer((s) => {
      s.on('data', (c: Buffer) => (sunk += c.length));
      s.on('end', () => s.end());
    });
    const relay = await startRelay(start, ['--token-file', path.join(dir, 'tokens'), '--metrics', '0']);
    const rport = await metricsPort(relay.cli);
    const alpha = await startAgent(start, echo.port, relay, ['--token', alphaToken, '--metrics', '0', '--heartbeat', '5']);
    const aport = await metricsPort(alpha.cli);
    const beta = await startAgent(start, sink.port, relay, ['--token', betaToken, '--heartbeat', '5']);
    const R = { mode: 'relay' };
    const A = { mode: 'expose' };

    // A wrong token: the agent is refused for good, the relay counts it.
    const intruder = await startAgent(start, echo.port, relay, ['--token', 'not-a-token-0123456789abcdef'], false);
    expect((await intruder.cli.exited).code).toBe(1);

    let t = await scrape(rport);
    expect(value(t, 'sockcat_tunnel_agents_connected', R)).toBe(2);
    expect(value(t, 'sockcat_tunnels_live', { tunnel: 'alpha', ...R })).toBe(1);
    expect(value(t, 'sockcat_tunnels_live', { tunnel: 'beta', ...R })).toBe(1);
    expect(value(t, 'sockcat_tunnel_auth_failures_total', R)).toBe(1);
    expect(value(t, 'sockcat_tunnel_connections_total', { tunnel: 'alpha', ...R })).toBe(0);

    // alpha: 12 clients held open, each having echoed 1000 + i bytes.
    const held: net.Socket[] = [];
    let echoed = 0;
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const s = await connect(alpha.publicPort);
        const n = 1000 + i;
        echoed += n;
        const back = readN(s, n);
        s.write(randomBytes(n));
        await back;
        held.push(s);
      }),
    );
    const aIn = { tunnel: 'alpha', direction: 'in' };
    const aOut = { tunnel: 'alpha', direction: 'out' };
    t = await scrapeUntil(rport, [['sockcat_tunnel_bytes_total', { ...aOut, ...R }, echoed]]);
    expect(value(t, 'sockcat_tunnel_connections_live', { tunnel: 'alpha', ...R })).toBe(12);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aIn, ...R })).toBe(echoed);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aOut, ...R })).toBe(echoed);
    expect(value(t, 'sockcat_connections_live', R)).toBe(12);
    // The agent's side sees the same tunnel, the same bytes.
    t = await scrapeUntil(aport, [['sockcat_tunnel_bytes_total', { ...aIn, ...A }, echoed]]);
    expect(value(t, 'sockcat_tunnels_live', { tunnel: 'alpha', ...A })).toBe(1);
    expect(value(t, 'sockcat_tunnel_connections_live', { tunnel: 'alpha', ...A })).toBe(12);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aIn, ...A })).toBe(echoed);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aOut, ...A })).toBe(echoed);

    // beta: one long transfer, scraped while it runs: the bytes so far, exactly.
    const long = await connect(beta.publicPort);
    const bIn = { tunnel: 'beta', direction: 'in', ...R };
    let sent = 0;
    for (const n of [1_500_000, 2_500_000]) {
      if (!long.write(randomBytes(n))) await new Promise((r) => long.once('drain', r));
      sent += n;
      await waitFor(() => sunk === sent, 20_000, `${sent} bytes at the sink`);
      t = await scrape(rport);
      expect(value(t, 'sockcat_tunnel_bytes_total', bIn)).toBe(sent);
      expect(value(t, 'sockcat_tunnel_connections_live', { tunnel: 'beta', ...R })).toBe(1);
    }
    // And 5 short beta clients, closed.
    for (let i = 0; i < 5; i++) expect((await exchange(beta.publicPort, randomBytes(300))).length).toBe(0);
    sent += 5 * 300;

    for (const s of held) s.end();
    await Promise.all(held.map((s) => readAll(s)));
    const longEnded = readAll(long);
    long.end();
    await longEnded;
    await waitFor(() => (relay.cli.stderr().match(/closed (?!its )/g) ?? []).length === 18, 15_000, '18 closes at the relay');
    await waitFor(() => (alpha.cli.stderr().match(/closed (?!its )/g) ?? []).length === 12, 15_000, '12 closes at the agent');

    t = await scrape(rport);
    expect(value(t, 'sockcat_tunnel_connections_total', { tunnel: 'alpha', ...R })).toBe(12);
    expect(value(t, 'sockcat_tunnel_connections_total', { tunnel: 'beta', ...R })).toBe(6);
    expect(value(t, 'sockcat_tunnel_connections_live', { tunnel: 'alpha', ...R })).toBe(0);
    expect(value(t, 'sockcat_tunnel_connections_live', { tunnel: 'beta', ...R })).toBe(0);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aIn, ...R })).toBe(echoed);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aOut, ...R })).toBe(echoed);
    expect(value(t, 'sockcat_tunnel_bytes_total', bIn)).toBe(sent);
    expect(value(t, 'sockcat_tunnel_bytes_total', { tunnel: 'beta', direction: 'out', ...R })).toBe(0);
    // The public side through the listener runtime: every client, all tunnels together.
    expect(value(t, 'sockcat_connections_accepted_total', R)).toBe(18);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...R })).toBe(echoed + sent);
    t = await scrape(aport);
    expect(value(t, 'sockcat_tunnel_connections_total', { tunnel: 'alpha', ...A })).toBe(12);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aIn, ...A })).toBe(echoed);
    expect(value(t, 'sockcat_tunnel_bytes_total', { ...aOut, ...A })).toBe(echoed);

    // beta's agent goes: its tunnel is down, alpha's stays.
    beta.cli.kill('SIGTERM');
    await relay.cli.waitForStderr(/agent beta .* gone after/, 15_000);
    t = await scrape(rport);
    expect(value(t, 'sockcat_tunnels_live', { tunnel: 'beta', ...R })).toBe(0);
    expect(value(t, 'sockcat_tunnels_live', { tunnel: 'alpha', ...R })).toBe(1);
    expect(value(t, 'sockcat_tunnel_agents_connected', R)).toBe(1);
    await Promise.all([echo.close(), sink.close()]);
    fs.rmSync(dir, { recursive: true });
  }, 90_000);

  it('--http routes: the relay counts what the client sent (the head it read to route included), the agent what LOCAL got', async () => {
    const reply = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
    let localGot = 0;
    const local = await tcpServer((s) => {
      let head = '';
      s.on('data', (c: Buffer) => {
        localGot += c.length;
        head += c.toString('latin1');
        if (head.includes('\r\n\r\n')) s.end(reply);
      });
    });
    const relay = await startRelay(start, ['--http', '127.0.0.1:0', '--domain', 'tun.test', '--metrics', '0']);
    const httpPort = Number((await relay.cli.waitForStderr(/named tunnels on http:\/\/\*\.tun\.test:(\d+)\//))[1]);
    const rport = await metricsPort(relay.cli);
    const agent = await startAgent(start, local.port, relay, ['--name', 'web', '--metrics', '0']);
    const aport = await metricsPort(agent.cli);
    await agent.cli.waitForStderr(/public: http:\/\/web\.tun\.test/);
    const request = `GET /x HTTP/1.1\r\nHost: web.tun.test:${httpPort}\r\nUser-Agent: metrics-test\r\n\r\n`;
    for (let i = 0; i < 3; i++) {
      const s = await connect(httpPort);
      const got = readAll(s);
      s.end(request);
      expect((await got).toString()).toBe(reply);
    }
    await waitFor(() => (agent.cli.stderr().match(/closed (?!its )/g) ?? []).length === 3, 10_000, '3 closes at the agent');
    const R = { tunnel: 'default', mode: 'relay' };
    const A = { tunnel: 'default', mode: 'expose' };
    let t = await scrapeUntil(rport, [['sockcat_tunnel_connections_total', R, 3], ['sockcat_tunnel_connections_live', R, 0]]);
    expect(value(t, 'sockcat_tunnel_connections_total', R)).toBe(3);
    expect(value(t, 'sockcat_tunnel_bytes_total', { direction: 'in', ...R })).toBe(3 * request.length);
    expect(value(t, 'sockcat_tunnel_bytes_total', { direction: 'out', ...R })).toBe(3 * reply.length);
    t = await scrape(aport);
    // The relay added X-Forwarded-For, X-Real-IP and Forwarded: LOCAL got more than the client sent.
    expect(value(t, 'sockcat_tunnel_bytes_total', { direction: 'in', ...A })).toBe(localGot);
    expect(localGot).toBeGreaterThan(3 * request.length);
    expect(value(t, 'sockcat_tunnel_bytes_total', { direction: 'out', ...A })).toBe(3 * reply.length);
    await local.close();
  }, 60_000);
});

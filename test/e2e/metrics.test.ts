import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { cliStartedPerTest, runCli } from '../helpers/cli';
import { metricsPort, scrape, value } from '../helpers/metrics';
import { connect, exchange, readAll, tcpServer, randomBytes, waitFor } from '../helpers/net';
import { joinRoom } from '../helpers/room';

const sockcat = cliStartedPerTest();

describe('--metrics (CLI, scraped with curl)', () => {
  it('forward: exact counts of accepted, live, closed, refused, bytes and durations across a load', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const fwd = sockcat(['forward', '-v', '--metrics', '0', '--max-conns', '30', '0', `127.0.0.1:${echo.port}`]);
    const port = await fwd.listeningPort();
    const mport = await metricsPort(fwd);
    const mode = { mode: 'forward' };

    // 20 clients held open: the scrape during the load sees them live.
    const held = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
    await fwd.waitForStderr(/(connection from[^\n]*\n[^]*){20}/);
    let t = await scrape(mport);
    expect(value(t, 'sockcat_connections_live', mode)).toBe(20);
    expect(value(t, 'sockcat_connections_accepted_total', mode)).toBe(20);

    // 100 more clients, 10 at a time, each echoing 1000 + i bytes; 10 of them find the limit full.
    const sizes: number[] = [];
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, k) => {
          const n = 1000 + round * 10 + k;
          sizes.push(n);
          const got = await exchange(port, randomBytes(n));
          expect(got.length).toBe(n);
        }),
      );
      t = await scrape(mport);
      expect(value(t, 'sockcat_connections_live', mode)).toBe(20);
    }
    // Fill the limit (30) and try 4 more: refused as 'limit'.
    const more = await Promise.all(Array.from({ length: 10 }, () => connect(port)));
    await waitFor(() => (fwd.stderr().match(/connection from/g) ?? []).length === 130, 10_000, '130 connections');
    const refused = await Promise.all(Array.from({ length: 4 }, () => connect(port)));
    await Promise.all(refused.map((s) => readAll(s).catch(() => Buffer.alloc(0))));
    await fwd.waitForStderr(/(already open \(--max-conns\)[^]*){4}/);

    for (const s of [...held, ...more]) s.end('bye');
    await Promise.all([...held, ...more].map((s) => readAll(s)));
    await waitFor(() => (fwd.stderr().match(/closed (?!its )/g) ?? []).length === 130, 10_000, '130 closes');

    t = await scrape(mport);
    const total = sizes.reduce((a, b) => a + b, 0) + 30 * 3;
    expect(value(t, 'sockcat_connections_accepted_total', mode)).toBe(130);
    expect(value(t, 'sockcat_connections_live', mode)).toBe(0);
    expect(value(t, 'sockcat_connections_closed_total', { reason: 'eof', ...mode })).toBe(130);
    expect(value(t, 'sockcat_connections_refused_total', { reason: 'limit', ...mode })).toBe(4);
    expect(value(t, 'sockcat_connections_refused_total', { reason: 'denied', ...mode })).toBe(0);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...mode })).toBe(total);
    expect(value(t, 'sockcat_bytes_total', { direction: 'out', ...mode })).toBe(total);
    expect(value(t, 'sockcat_connection_duration_seconds_count', mode)).toBe(130);
    expect(value(t, 'sockcat_connection_duration_seconds_bucket', { le: '+Inf', ...mode })).toBe(130);
    // The scrapes themselves were never clients.
    expect(fwd.stderr()).not.toMatch(new RegExp(`:${mport}\\b.*connection from|connection from .* → .*:${mport}`));
    await echo.close();
  });

  it('forward: a scrape during a long transfer shows the bytes so far, and exactly what was sent at the end', async () => {
    let got = 0;
    let backendSocket: net.Socket | undefined;
    const backend = await tcpServer((s) => {
      backendSocket = s;
      s.on('data', (c: Buffer) => (got += c.length));
      s.on('end', () => s.end());
    });
    const fwd = sockcat(['forward', '-v', '--metrics', '0', '0', `127.0.0.1:${backend.port}`]);
    const port = await fwd.listeningPort();
    const mport = await metricsPort(fwd);
    const mode = { mode: 'forward' };
    const client = await connect(port);
    let back = 0;
    client.on('data', (c: Buffer) => (back += c.length));
    const ended = new Promise((r) => client.once('end', r));
    /** Scrapes until `name` reads `want` (a write completes a moment after its bytes arrive). */
    const scrapeUntil = async (name: string, labels: Record<string, string>, want: number) => {
      let t = '';
      for (let i = 0; i < 50; i++) {
        t = await scrape(mport);
        if (value(t, name, labels) === want) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      return t;
    };
    let sent = 0;
    // Three stretches of one transfer, the connection open throughout: each scrape sees the total so far.
    for (const n of [1_000_000, 3_000_000, 7]) {
      if (!client.write(randomBytes(n))) await new Promise((r) => client.once('drain', r));
      sent += n;
      await waitFor(() => got === sent, 20_000, `${sent} bytes at the backend`);
      const t = await scrapeUntil('sockcat_bytes_total', { direction: 'in', ...mode }, sent);
      expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...mode })).toBe(sent);
      expect(value(t, 'sockcat_connections_live', mode)).toBe(1);
      expect(value(t, 'sockcat_connections_closed_total', { reason: 'eof', ...mode })).toBe(0);
    }
    backendSocket!.write(randomBytes(654_321));
    await waitFor(() => back === 654_321, 20_000, 'the reply at the client');
    let t = await scrapeUntil('sockcat_bytes_total', { direction: 'out', ...mode }, 654_321);
    expect(value(t, 'sockcat_bytes_total', { direction: 'out', ...mode })).toBe(654_321);
    client.end();
    await ended;
    await fwd.waitForStderr(/closed .*: 4000007 bytes in, 654321 bytes out/);
    t = await scrape(mport);
    expect(value(t, 'sockcat_connections_live', mode)).toBe(0);
    expect(value(t, 'sockcat_connections_closed_total', { reason: 'eof', ...mode })).toBe(1);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', ...mode })).toBe(4_000_007);
    expect(value(t, 'sockcat_bytes_total', { direction: 'out', ...mode })).toBe(654_321);
    client.destroy();
    await backend.close();
  }, 60_000);

  it('forward: upstream connect failures by cause; denied clients by reason', async () => {
    const gone = await tcpServer(() => {});
    await gone.close();
    const fwd = sockcat(['forward', '-v', '--metrics', '0', '--deny', '127.0.0.2', '0', `127.0.0.1:${gone.port}`]);
    const port = await fwd.listeningPort();
    const mport = await metricsPort(fwd);
    for (let i = 0; i < 3; i++) {
      // Reset by sockcat as soon as the upstream refuses, maybe before Node reports the connect.
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      await new Promise((r) => s.once('close', r));
    }
    // From 127.0.0.2, which --deny refuses.
    const denied = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2', allowHalfOpen: true });
    denied.on('error', () => {});
    await readAll(denied).catch(() => undefined);
    await waitFor(() => (fwd.stderr().match(/closed (?!its )/g) ?? []).length === 3, 10_000, '3 closes');
    await fwd.waitForStderr(/refused 127\.0\.0\.2/);
    const t = await scrape(mport);
    expect(value(t, 'sockcat_upstream_connect_failures_total', { cause: 'refused', mode: 'forward' })).toBe(3);
    expect(value(t, 'sockcat_connections_closed_total', { reason: 'refused upstream', mode: 'forward' })).toBe(3);
    expect(value(t, 'sockcat_connections_refused_total', { reason: 'denied', mode: 'forward' })).toBe(1);
  });

  it('exec: children spawned and live', async () => {
    const ex = sockcat(['exec', '-v', '--metrics', '0', '0', '--', 'cat']);
    const port = await ex.listeningPort();
    const mport = await metricsPort(ex);
    const held = await Promise.all(Array.from({ length: 3 }, () => connect(port)));
    await waitFor(() => (ex.stderr().match(/connection from/g) ?? []).length === 3, 10_000, '3 children');
    let t = '';
    for (let i = 0; i < 50; i++) {
      t = await scrape(mport);
      if (value(t, 'sockcat_exec_children_live', { mode: 'exec' }) === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(value(t, 'sockcat_exec_children_live', { mode: 'exec' })).toBe(3);
    for (const s of held) s.end('x');
    await Promise.all(held.map((s) => readAll(s)));
    await waitFor(() => (ex.stderr().match(/closed (?!its )/g) ?? []).length === 3, 10_000, '3 closes');
    t = await scrape(mport);
    expect(value(t, 'sockcat_exec_children_spawned_total', { mode: 'exec' })).toBe(3);
    expect(value(t, 'sockcat_exec_children_live', { mode: 'exec' })).toBe(0);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', mode: 'exec' })).toBe(3);
  });

  it('broadcast: clients in the room and lines dropped for a reader that does not read', async () => {
    const room = sockcat(['broadcast', '-v', '--metrics', '0', '--drop', '--max-queue', '4096', '0']);
    const port = await room.listeningPort();
    const mport = await metricsPort(room);
    const a = await joinRoom(port);
    const sleeper = await connect(port);
    sleeper.pause();
    await waitFor(() => (room.stderr().match(/connection from/g) ?? []).length === 2, 10_000, '2 clients');
    let t = await scrape(mport);
    expect(value(t, 'sockcat_broadcast_clients', { mode: 'broadcast' })).toBe(2);
    // Far more than the sleeper's queue and the kernel's loopback buffers hold (20 MB): some lines
    // must be dropped for it.
    const line = 'x'.repeat(1000);
    for (let i = 0; i < 20_000 && !/dropping its messages/.test(room.stderr()); i++) {
      if (!a.socket.write(line + '\n')) await new Promise((r) => a.socket.once('drain', r));
    }
    await room.waitForStderr(/dropping its messages/, 20_000);
    t = await scrape(mport);
    expect(value(t, 'sockcat_broadcast_dropped_lines_total', { mode: 'broadcast' })).toBeGreaterThan(0);
    a.socket.destroy();
    sleeper.destroy();
  });

  it('forward --workers 2: the primary serves the sum of both workers\' counts', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const fwd = sockcat(['forward', '-v', '--workers', '2', '--metrics', '0', '0', `127.0.0.1:${echo.port}`]);
    const mport = await metricsPort(fwd);
    const port = await fwd.listeningPort();
    let t: string;
    for (let i = 0; i < 30; i++) expect((await exchange(port, `n${i}`)).toString()).toBe(`n${i}`);
    await waitFor(() => (fwd.stderr().match(/closed (?!its )/g) ?? []).length === 30, 10_000, '30 closes');
    t = await scrape(mport);
    expect(value(t, 'sockcat_connections_accepted_total', { mode: 'forward' })).toBe(30);
    expect(value(t, 'sockcat_connections_closed_total', { reason: 'eof', mode: 'forward' })).toBe(30);
    expect(value(t, 'sockcat_bytes_total', { direction: 'in', mode: 'forward' })).toBe(10 * 2 + 20 * 3);
    await echo.close();
  }, 60_000);

  it('refuses --metrics where it means nothing, and a taken port with exit 1', async () => {
    let r = await runCli(['listen', '--metrics', '0', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/add -k/);
    r = await runCli(['forward', '--metrics', '0', 'udp:0', 'udp:127.0.0.1:1']);
    expect(r.code).toBe(2);
    const taken = await tcpServer(() => {});
    r = await runCli(['forward', '--metrics', String(taken.port), '0', '127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already in use/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    await taken.close();
  });
});

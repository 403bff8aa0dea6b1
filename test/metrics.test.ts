import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { ByteTally, Metrics, upstreamFailureCause, parseMetricsAddress } from '../src/metrics';
import { UsageError } from '../src/errors';

/** The value of one series in a Prometheus text exposition, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('Metrics', () => {
  it('counts connection events, with the mode as a label on every series', async () => {
    const m = new Metrics('forward', { processMetrics: false });
    const a = m.connectionAccepted({ bytesRead: 100, bytesWritten: 7, readableLength: 0, writableLength: 0 });
    m.connectionAccepted({ bytesRead: 0, bytesWritten: 0 });
    // A stream that keeps no counters: the handler's own counts stand in.
    const b = m.connectionAccepted({});
    m.connectionClosed(b, 'eof', 20, { received: 30, sent: 40 });
    m.connectionRefused('denied');
    m.upstreamConnectFailed('refused');
    const t = await m.text();
    expect(value(t, 'sockcat_connections_accepted_total{mode="forward"}')).toBe(3);
    expect(value(t, 'sockcat_connections_live{mode="forward"}')).toBe(2);
    expect(value(t, 'sockcat_connections_closed_total{reason="eof",mode="forward"}')).toBe(1);
    // The first stream had read 100 bytes before it was counted: they are not its client's.
    expect(value(t, 'sockcat_bytes_total{direction="in",mode="forward"}')).toBe(30);
    expect(value(t, 'sockcat_bytes_total{direction="out",mode="forward"}')).toBe(40);
    expect(value(t, 'sockcat_connections_refused_total{reason="denied",mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connections_refused_total{reason="limit",mode="forward"}')).toBe(0);
    expect(value(t, 'sockcat_connection_duration_seconds_count{mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connection_duration_seconds_bucket{le="0.05",mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connection_duration_seconds_bucket{le="0.005",mode="forward"}')).toBe(0);
    expect(value(t, 'sockcat_upstream_connect_failures_total{cause="refused",mode="forward"}')).toBe(1);
    m.connectionClosed(a, 'eof', 5);
  });

  it('gives the proxy and tunnel modes their hooks', async () => {
    const m = new Metrics('relay', { processMetrics: false });
    m.tunnelUp('ssh', true);
    m.tunnelUp('web', true);
    m.tunnelUp('web', false);
    const relaySide = { bytesRead: 10, bytesWritten: 5, readableLength: 0, writableLength: 0 };
    const c = m.tunnelConnectionOpened('ssh', relaySide);
    relaySide.bytesRead = 25;
    let t = await m.text();
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="ssh",direction="in",mode="relay"}')).toBe(15);
    expect(value(t, 'sockcat_tunnel_connections_live{tunnel="ssh",mode="relay"}')).toBe(1);
    m.tunnelConnectionClosed('ssh', c);
    // The agent's side: what it writes to the service is `in`.
    const agentSide = { bytesRead: 0, bytesWritten: 0, readableLength: 0, writableLength: 0 };
    const d = m.tunnelConnectionOpened('ssh', agentSide, { towardsService: true });
    agentSide.bytesWritten = 4;
    agentSide.bytesRead = 9;
    m.tunnelConnectionClosed('ssh', d);
    m.tunnelAuthFailed();
    m.proxyTunnelEnded('socks5', 'eof');
    m.proxyTunnelEnded('socks5', 'auth failed');
    m.proxyTunnelEnded('socks5', 'eof');
    t = await m.text();
    expect(value(t, 'sockcat_tunnels_live{tunnel="ssh",mode="relay"}')).toBe(1);
    expect(value(t, 'sockcat_tunnels_live{tunnel="web",mode="relay"}')).toBe(0);
    expect(value(t, 'sockcat_tunnel_agents_connected{mode="relay"}')).toBe(1);
    expect(value(t, 'sockcat_tunnel_auth_failures_total{mode="relay"}')).toBe(1);
    expect(value(t, 'sockcat_tunnel_connections_total{tunnel="ssh",mode="relay"}')).toBe(2);
    expect(value(t, 'sockcat_tunnel_connections_total{tunnel="web",mode="relay"}')).toBe(0);
    expect(value(t, 'sockcat_tunnel_connections_live{tunnel="ssh",mode="relay"}')).toBe(0);
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="ssh",direction="in",mode="relay"}')).toBe(19);
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="ssh",direction="out",mode="relay"}')).toBe(9);
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="web",direction="in",mode="relay"}')).toBe(0);
    expect(value(t, 'sockcat_proxy_tunnels_total{protocol="socks5",outcome="eof",mode="relay"}')).toBe(2);
  });

  it('exec and broadcast hooks', async () => {
    const m = new Metrics('exec', { processMetrics: false });
    m.childSpawned();
    m.childSpawned();
    m.childExited();
    m.broadcastClientCount(3);
    m.broadcastDropped(4);
    const t = await m.text();
    expect(value(t, 'sockcat_exec_children_spawned_total{mode="exec"}')).toBe(2);
    expect(value(t, 'sockcat_exec_children_live{mode="exec"}')).toBe(1);
    expect(value(t, 'sockcat_broadcast_clients{mode="exec"}')).toBe(3);
    expect(value(t, 'sockcat_broadcast_dropped_lines_total{mode="exec"}')).toBe(4);
  });

  it('includes the process metrics unless asked not to', async () => {
    expect(await new Metrics('listen').text()).toMatch(/^process_cpu_user_seconds_total/m);
  });

  it('names upstream failure causes', () => {
    const e = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    expect(upstreamFailureCause(e('ECONNREFUSED'))).toBe('refused');
    expect(upstreamFailureCause(e('ETIMEDOUT'))).toBe('timeout');
    expect(upstreamFailureCause(e('ENOTFOUND'))).toBe('dns');
    expect(upstreamFailureCause(e('EHOSTUNREACH'))).toBe('unreachable');
    expect(upstreamFailureCause(e('X', 'certificate has expired'))).toBe('tls');
    expect(upstreamFailureCause(e('EWHAT'))).toBe('other');
  });

  it('reads --metrics as a loopback address unless told, and refuses other schemes', () => {
    expect(parseMetricsAddress('9100')).toMatchObject({ scheme: 'tcp', host: '127.0.0.1', port: 9100 });
    expect(parseMetricsAddress('0.0.0.0:9100')).toMatchObject({ host: '0.0.0.0' });
    expect(() => parseMetricsAddress('unix:/tmp/m.sock')).toThrow(UsageError);
    expect(() => parseMetricsAddress('nope:')).toThrow(/--metrics/);
  });
});

describe('ByteTally (live bytes read from sockets at scrape time)', () => {
  it('sees the bytes of an open connection as they pass, and exactly what was sent once it is closed', async () => {
    const tally = new ByteTally();
    const received: Buffer[] = [];
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const sock = await accepted;
    const counted = tally.open(sock);
    sock.on('data', (c: Buffer) => received.push(c));
    const ends = new Promise((r) => sock.once('end', r));
    client.write(Buffer.alloc(100_000, 1));
    for (let i = 0; i < 200 && tally.totals().in < 100_000; i++) await new Promise((r) => setTimeout(r, 10));
    // Still open: the tally reads the socket's own counter.
    expect(tally.totals().in).toBe(100_000);
    expect(tally.liveCount).toBe(1);
    await new Promise<void>((r) => sock.write(Buffer.alloc(777, 2), () => r()));
    expect(tally.totals().out).toBe(777);
    client.end(Buffer.alloc(23, 3));
    await ends;
    sock.end();
    await new Promise((r) => sock.once('close', r));
    tally.close(counted);
    expect(tally.totals()).toEqual({ in: 100_023, out: 777 });
    expect(tally.liveCount).toBe(0);
    expect(Buffer.concat(received).length).toBe(100_023);
    client.destroy();
    server.close();
  });

  it('counts bytes that were read ahead but left buffered (unshifted after a header), never the header', () => {
    const tally = new ByteTally();
    const s = { bytesRead: 120, readableLength: 20, bytesWritten: 0, writableLength: 0 };
    const c = tally.open(s);
    expect(tally.totals().in).toBe(20);
    s.bytesRead = 150;
    tally.close(c);
    expect(tally.totals().in).toBe(50);
  });

  it('never goes back: bytes still queued are not out yet, and a counter that shrinks is ignored', () => {
    const tally = new ByteTally();
    const s = { bytesRead: 0, readableLength: 0, bytesWritten: 1000, writableLength: 600 };
    tally.open(s);
    s.bytesWritten = 5000;
    s.writableLength = 1000;
    expect(tally.totals().out).toBe(3000);
    s.writableLength = 4000;
    expect(tally.totals().out).toBe(3000);
  });
});

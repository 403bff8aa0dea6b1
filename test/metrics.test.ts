import { describe, it, expect } from 'vitest';
import { Metrics, upstreamFailureCause, parseMetricsAddress } from '../src/metrics';
import { UsageError } from '../src/errors';

/** The value of one series in a Prometheus text exposition, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('Metrics', () => {
  it('counts connection events, with the mode as a label on every series', async () => {
    const m = new Metrics('forward', { processMetrics: false });
    m.connectionAccepted();
    m.connectionAccepted();
    m.connectionClosed('eof', 100, 7, 20);
    m.connectionRefused('denied');
    m.upstreamConnectFailed('refused');
    const t = await m.text();
    expect(value(t, 'sockcat_connections_accepted_total{mode="forward"}')).toBe(2);
    expect(value(t, 'sockcat_connections_live{mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connections_closed_total{reason="eof",mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_bytes_total{direction="in",mode="forward"}')).toBe(100);
    expect(value(t, 'sockcat_bytes_total{direction="out",mode="forward"}')).toBe(7);
    expect(value(t, 'sockcat_connections_refused_total{reason="denied",mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connections_refused_total{reason="limit",mode="forward"}')).toBe(0);
    expect(value(t, 'sockcat_connection_duration_seconds_count{mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connection_duration_seconds_bucket{le="0.05",mode="forward"}')).toBe(1);
    expect(value(t, 'sockcat_connection_duration_seconds_bucket{le="0.005",mode="forward"}')).toBe(0);
    expect(value(t, 'sockcat_upstream_connect_failures_total{cause="refused",mode="forward"}')).toBe(1);
  });

  it('gives the proxy and tunnel modes their hooks', async () => {
    const m = new Metrics('tunnel', { processMetrics: false });
    m.tunnelUp('ssh', true);
    m.tunnelUp('web', true);
    m.tunnelUp('web', false);
    m.tunnelBytes('ssh', 'in', 10);
    m.tunnelBytes('ssh', 'out', 5);
    m.proxyRequest('ok');
    m.proxyRequest('auth');
    m.proxyRequest('ok');
    const t = await m.text();
    expect(value(t, 'sockcat_tunnels_live{tunnel="ssh",mode="tunnel"}')).toBe(1);
    expect(value(t, 'sockcat_tunnels_live{tunnel="web",mode="tunnel"}')).toBe(0);
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="ssh",direction="in",mode="tunnel"}')).toBe(10);
    expect(value(t, 'sockcat_tunnel_bytes_total{tunnel="ssh",direction="out",mode="tunnel"}')).toBe(5);
    expect(value(t, 'sockcat_proxy_requests_total{outcome="ok",mode="tunnel"}')).toBe(2);
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

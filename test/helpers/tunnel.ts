/** Starting a relay and an agent through the real CLI, for the tunnel tests. */
import net from 'node:net';
import type { RunningCli, startCli } from './cli';

export const TOKEN = 'tunnel-test-token-0123456789';

type Start = (args: string[], opts?: Parameters<typeof startCli>[1]) => RunningCli;

export interface RelayProcess {
  cli: RunningCli;
  port: number;
  /** undefined for an --insecure relay. */
  fingerprint?: string;
}

/** Starts `sockcat relay` on 127.0.0.1 (port 0 unless given) and reads its control port and fingerprint. */
export async function startRelay(start: Start, args: string[] = [], controlPort = 0): Promise<RelayProcess> {
  const hasToken = args.includes('--token') || args.includes('--token-file');
  const cli = start(['relay', '--control', `127.0.0.1:${controlPort}`, ...(hasToken ? [] : ['--token', TOKEN]), '-v', ...args]);
  const m = await cli.waitForStderr(/agents connect to 127\.0\.0\.1:(\d+) \((?:TLS, .*fingerprint ([0-9A-F:]{95})|plain)/, 20_000);
  return { cli, port: Number(m[1]), fingerprint: m[2] };
}

/** Starts `sockcat expose LOCAL` towards `relay` with a short heartbeat (1 s, or --heartbeat in args); resolves once it printed its public port. */
export async function startAgent(start: Start, local: string | number, relay: RelayProcess, args: string[] = [], waitPublic = true): Promise<{ cli: RunningCli; publicPort: number }> {
  const trust = relay.fingerprint ? ['--fingerprint', relay.fingerprint] : ['--insecure'];
  const hasToken = args.includes('--token') || args.includes('--token-file');
  const cli = start(['expose', String(local), '--via', `127.0.0.1:${relay.port}`, ...(hasToken ? [] : ['--token', TOKEN]), ...trust, ...(args.includes('--heartbeat') ? [] : ['--heartbeat', '1']), '-v', ...args]);
  if (!waitPublic) return { cli, publicPort: 0 };
  const m = await cli.waitForStderr(/public: 127\.0\.0\.1:(\d+)/, 20_000);
  return { cli, publicPort: Number(m[1]) };
}

/** Resolves once `re` has matched stderr `n` times (for a second "public:" after a reconnect). */
export async function waitForNth(cli: RunningCli, re: RegExp, n: number, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = [...cli.stderr().matchAll(global)];
    if (all.length >= n) return all[n - 1];
    if (Date.now() > deadline) throw new Error(`timed out waiting for match ${n} of ${re}; stderr: ${cli.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port that was free a moment ago (for a relay restarted on the same control port). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Whether a TCP connect to the port is refused (nothing listening). */
export function isRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

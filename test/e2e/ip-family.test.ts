/**
 * nc's -4/-6 (issue 15): one IP version only, for the address itself and for resolving its name,
 * in every mode that opens IP sockets; a literal of the other version, a unix: path, -4 with -6,
 * or a mode with no IP socket of its own to choose (relay, expose) is a usage error (exit 2).
 *
 * Name resolution is tested with `localhost` as this machine resolves it (127.0.0.1 only when
 * /etc/hosts lists no ::1 for it) and with `dual.test`, a name a preload (helpers/dual-hosts.cjs)
 * makes resolve to both ::1 and 127.0.0.1, the way `localhost` does on many machines.
 */
import { describe, it, expect } from 'vitest';
import dns from 'node:dns/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { cliStartedPerTest, runCli } from '../helpers/cli';
import { exchange, tcpServer } from '../helpers/net';

const sockcat = cliStartedPerTest();
const DUAL = { NODE_OPTIONS: `--require ${fileURLToPath(new URL('../helpers/dual-hosts.cjs', import.meta.url))}` };

/** An echo server on `host` port 0 that remembers who connected. */
async function echo(host: string) {
  const s = await tcpServer((sock) => sock.pipe(sock), host);
  return s;
}

describe('-4 / -6: listening', () => {
  it.each([
    [['listen', '-6', '--echo', '0'], '\\[::1\\]'],
    [['listen', '-4', '--echo', '0'], '127\\.0\\.0\\.1'],
    [['exec', '-6', '0', '--', 'cat'], '\\[::1\\]'],
    [['broadcast', '-6', '0'], '\\[::1\\]'],
    [['proxy', '-6', '0'], '\\[::1\\]'],
    [['forward', '-6', '0', '[::1]:9'], '\\[::1\\]'],
    [['listen', '-6', '-u', '0'], 'udp:\\[::1\\]'],
  ])('%j binds the loopback of that version when no host is given', async (args, where) => {
    const s = sockcat(args as string[]);
    await s.waitForStderr(new RegExp(`listening on ${where}:\\d+ \\(loopback only\\)`));
  });

  it('listen -6 really listens on ::1 (an IPv6 client is served)', async () => {
    const s = sockcat(['listen', '-6', '--echo', '0']);
    const port = Number((await s.waitForStderr(/listening on \[::1\]:(\d+)/))[1]);
    expect((await exchange(port, 'six\n', '::1')).toString()).toBe('six\n');
  });

  it('listen -6 [::] takes IPv6 clients only (no dual stack)', async () => {
    const s = sockcat(['listen', '-6', '-k', '--echo', '[::]:0']);
    const port = Number((await s.waitForStderr(/listening on \[::\]:(\d+)/))[1]);
    expect((await exchange(port, 'v6\n', '::1')).toString()).toBe('v6\n');
    const v4 = await new Promise<string>((resolve) => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.once('connect', () => (c.destroy(), resolve('connected')));
      c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(v4).toBe('ECONNREFUSED');
  });

  it('a name is resolved to that version only: listen -6 dual.test binds ::1, -4 binds 127.0.0.1', async () => {
    const six = sockcat(['listen', '-6', '--echo', 'dual.test:0'], { env: DUAL });
    await six.waitForStderr(/listening on \[::1\]:\d+ \(loopback only\)/);
    const four = sockcat(['listen', '-4', '--echo', 'dual.test:0'], { env: DUAL });
    await four.waitForStderr(/listening on 127\.0\.0\.1:\d+ \(loopback only\)/);
  });
});

describe('-4 / -6: connecting', () => {
  it('connect -4 localhost reaches 127.0.0.1', async () => {
    const srv = await echo('127.0.0.1');
    const r = await runCli(['connect', '-v', '-4', 'localhost', String(srv.port)], { stdin: 'four\n' });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('four\n');
    expect(r.stderr).toMatch(new RegExp(`connected to 127\\.0\\.0\\.1:${srv.port} from 127\\.0\\.0\\.1:`));
    await srv.close();
  });

  it('connect -6 localhost reaches ::1 where localhost has an IPv6 address, and says it has none where not', async () => {
    const srv = await echo('::1');
    const hasV6 = (await dns.lookup('localhost', { all: true })).some((a) => a.family === 6);
    const r = await runCli(['connect', '-v', '-6', 'localhost', String(srv.port)], { stdin: 'six\n' });
    if (hasV6) {
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`connected to \\[::1\\]:${srv.port}`));
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/name not found: localhost has no IPv6 address \(-6 asks for IPv6 only\)/);
    }
    await srv.close();
  });

  it('a name with both versions: -6 dials ::1 only, -4 127.0.0.1 only', async () => {
    // A server on each loopback, telling apart who was reached.
    const v6 = await tcpServer((s) => s.end('reached ::1\n'), '::1');
    const v4 = await tcpServer((s) => s.end('reached 127.0.0.1\n'), '127.0.0.1');
    const six = await runCli(['connect', '-6', 'dual.test', String(v6.port)], { stdin: null, env: DUAL });
    expect(six.stdout.toString()).toBe('reached ::1\n');
    const four = await runCli(['connect', '-4', 'dual.test', String(v4.port)], { stdin: null, env: DUAL });
    expect(four.stdout.toString()).toBe('reached 127.0.0.1\n');
    // -6 to the port only 127.0.0.1 listens on: refused, never a fallback to IPv4.
    const noFallback = await runCli(['connect', '-6', 'dual.test', String(v4.port)], { stdin: null, env: DUAL });
    expect(noFallback.code).toBe(1);
    expect(noFallback.stderr).toMatch(/connection refused/);
    await v6.close();
    await v4.close();
  });

  it('forward -6: LISTEN on ::1 and TARGET resolved to ::1', async () => {
    const v6 = await echo('::1');
    const fwd = sockcat(['forward', '-6', '0', `dual.test:${v6.port}`], { env: DUAL });
    const port = Number((await fwd.waitForStderr(/listening on \[::1\]:(\d+)/))[1]);
    expect((await exchange(port, 'through\n', '::1')).toString()).toBe('through\n');
    await v6.close();
  });

  it('scan -4 / wait -4 resolve localhost to IPv4 only', async () => {
    const srv = await echo('127.0.0.1');
    const scan = await runCli(['scan', '-4', 'localhost', String(srv.port)]);
    expect(scan.code).toBe(0);
    expect(scan.stdout.toString()).toMatch(new RegExp(`^localhost ${srv.port}/tcp +open`, 'm'));
    const scan6 = await runCli(['scan', '-6', '-v', 'dual.test', String(srv.port)], { env: DUAL });
    expect(scan6.code).toBe(1);
    const wait = await runCli(['wait', '-4', '-t', '5', `localhost:${srv.port}`]);
    expect(wait.code).toBe(0);
    await srv.close();
  });
});

describe('-4 / -6: refused where they mean nothing or contradict', () => {
  it.each([
    [['connect', '-6', '127.0.0.1:9'], /^sockcat: -6 allows IPv6 only, but 127\.0\.0\.1:9 is an IPv4 address: give an IPv6 one \(e\.g\. \[::1\]:PORT\) or leave out -6/],
    [['connect', '-4', '[::1]:9'], /^sockcat: -4 allows IPv4 only, but \[::1\]:9 is an IPv6 address/],
    [['listen', '-6', '0.0.0.0:0'], /^sockcat: -6 allows IPv6 only, but 0\.0\.0\.0:0 is an IPv4 address: give an IPv6 one \(e\.g\. \[::\]:PORT\)/],
    [['forward', '-4', '0', '[::1]:22'], /^sockcat: -4 allows IPv4 only, but \[::1\]:22 is an IPv6 address/],
    [['listen', '-6', 'unix:/tmp/sockcat-family.sock'], /^sockcat: -6 chooses the IP version, and unix:\/tmp\/sockcat-family\.sock is not an IP address/],
    [['listen', '-4', '-6', '0'], /^sockcat: -4 and -6 contradict each other/],
    [['scan', '-6', '127.0.0.1', '22'], /^sockcat: -6 allows IPv6 only, but 127\.0\.0\.1 is an IPv4 address/],
    [['relay', '-4', '--control', '0', '--token', 'x'.repeat(20)], /^sockcat: -4 \(IPv4 only\) is not an option of relay/],
    [['expose', '-6', '9000', '--via', '127.0.0.1:1', '--token', 'x'.repeat(20)], /^sockcat: -6 \(IPv6 only\) is not an option of expose/],
  ])('%j: exit 2, one line', async (args, re) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(re);
  });
});

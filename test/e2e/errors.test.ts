import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { runCli, startCli, sockcatCommand } from '../helpers/cli';
import pkg from '../../package.json' with { type: 'json' };
import { pinnedNodeVersion } from '../../scripts/runtime.mjs';
import { tcpServer } from '../helpers/net';

/** One line on stderr, no stack trace. */
function expectOneLine(stderr: string) {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(lines[0]).toMatch(/^sockcat: /);
}

describe('errors: one plain line and the right exit code', () => {
  it('connection refused → 1, naming the address', async () => {
    const srv = await tcpServer(() => {});
    const port = srv.port;
    await srv.close(); // nothing listens there now
    const r = await runCli(['connect', `127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toContain(`connection refused by 127.0.0.1:${port}`);
  });

  it('name not found → 1', async () => {
    const r = await runCli(['connect', 'no-such-host.invalid:80']);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toMatch(/name not found: no-such-host\.invalid/);
  });

  it('address already in use → 1, with a hint to find the holder', async () => {
    const srv = await tcpServer(() => {});
    const r = await runCli(['listen', `127.0.0.1:${srv.port}`]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr);
    expect(r.stderr).toContain(`address already in use: 127.0.0.1:${srv.port} — is another server on ${srv.port}?`);
    expect(r.stderr).toContain('ss -ltnp');
    await srv.close();
  });

  it('a port below 1024 without privileges → 1, "needs root"', async () => {
    if (process.getuid?.() !== 0) {
      const r = await runCli(['listen', '127.0.0.1:80']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('port 80 needs root');
      return;
    }
    // As root, run it as nobody so the kernel refuses the bind.
    const [cmd, pre] = sockcatCommand();
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...pre, 'listen', '127.0.0.1:80'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (/setpriv: |EACCES.*CLI|Cannot find module/.test(stderr)) return; // cannot drop privileges here
    expect(code).toBe(1);
    expectOneLine(stderr);
    expect(stderr).toContain('permission denied: port 80 needs root');
  });

  it.each([
    [['connect', '::1:80'], /write IPv6 addresses in brackets, e\.g\. \[::1\]:80/],
    [['connect', 'fe80::1:80'], /write IPv6 addresses in brackets, e\.g\. \[fe80::1\]:80/],
    [['connect', 'host:99999'], /port 99999 is out of range/],
    [['connect', 'host:http'], /port 'http' is not a number/],
    [['connect', 'sctp:127.0.0.1:5'], /unknown scheme 'sctp:' in 'sctp:127\.0\.0\.1:5' \(schemes: tcp:, tls:, unix:, udp:\)/],
    [['connect', 'http://127.0.0.1:80'], /unknown scheme 'http:' in 'http:\/\/127\.0\.0\.1:80' \(schemes: tcp:, tls:, unix:, udp:\)/],
    [['connect', '[::1:80'], /missing '\]'/],
    [['connect'], /missing address/],
    [['listen', '--bogus', '9090'], /unknown option --bogus/],
    [['frobnicate'], /unknown mode 'frobnicate'/],
    [[], /missing mode/],
    [['connect', '--wait', 'soon', '127.0.0.1:9'], /--wait takes a number of seconds ≥ 0 \(e\.g\. 5 or 0\.5\), not a word \(see/],
    [['exec', '--max-children', 'many', '0', '--', 'cat'], /--max-children takes a whole number ≥ 1, not a word \(see/],
    [['listen', '--echo', '--max-conns', '0', '0'], /--max-conns takes a whole number/],
    [['listen', '--echo', '--allow', '300.1.2.3', '0'], /--allow: '300\.1\.2\.3' is not an IP address or CIDR range/],
  ])('usage error %j → 2', async (args, message) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expectOneLine(r.stderr);
    expect(r.stderr).toMatch(message);
  });

  it('--help and --version exit 0', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.toString()).toMatch(/listen/);
    expect(help.stdout.toString()).toMatch(/connect/);
    const listenHelp = await runCli(['listen', '--help']);
    expect(listenHelp.stdout.toString()).toMatch(/Examples:/);
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    // sockcat's version and the Node it runs on: the pinned one, as in the standalone binary.
    expect(version.stdout.toString().trim()).toBe(`sockcat ${pkg.version} (node ${pinnedNodeVersion()})`);
    // A lone --version is answered before the CLI loads (src/version-early.ts); with another
    // flag it goes through yargs: the same line either way.
    const throughYargs = await runCli(['--no-stats', '--version']);
    expect(throughYargs.code).toBe(0);
    expect(throughYargs.stdout.toString()).toBe(version.stdout.toString());
  });

  it('connect -w gives up on a server that never answers the handshake → 1', async () => {
    // A listener whose accept queue is full drops new SYNs: the handshake never completes.
    const py = spawn('python3', [
      '-c',
      `import socket,sys,time
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)
port=s.getsockname()[1]
fill=[]
for i in range(8):
    c=socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1',port))
    except BlockingIOError: pass
    fill.append(c)
print(port, flush=True); time.sleep(30)`,
    ]);
    const port = await new Promise<number>((resolve) => py.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
    try {
      const started = Date.now();
      const r = await runCli(['connect', '-w', '0.5', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expectOneLine(r.stderr);
      expect(r.stderr).toMatch(/timed out after 0\.5 s/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      py.kill();
    }
  });

  it('a second SIGINT stops at once', async () => {
    const srv = startCli(['listen', '--echo', '-v', '--drain-timeout', '30', '0']);
    await srv.listeningPort();
    srv.kill('SIGINT');
    srv.kill('SIGINT');
    const r = await srv.exited;
    expect([0, 130]).toContain(r.code);
  });
});

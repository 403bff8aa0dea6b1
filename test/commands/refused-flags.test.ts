/**
 * A flag that means nothing for a mode or an address is refused with exit 2 and one line, never
 * silently ignored (issue 16 #6, issue 15); a mode's --help lists only the flags it takes.
 */
import { describe, it, expect } from 'vitest';
import { runCli } from '../helpers/cli';

const refused = async (args: string[], why: RegExp) => {
  const r = await runCli(args);
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(why);
};

describe('transport flags that no address takes are refused', () => {
  it.each([['--ca', '/etc/hostname'], ['--servername', 'example.org'], ['--insecure'], ['--client-cert', 'c.pem', '--client-key', 'k.pem']])(
    'forward %s with a plain TCP target: exit 2 (the user would believe the upstream is verified TLS)',
    async (...flag) => {
      await refused(['forward', '0', '127.0.0.1:9', ...flag], /appl(y|ies) to TLS, and the target is plain TCP/);
    },
  );

  it('forward with those flags and a tls: target takes them', async () => {
    // Refused for another reason (nothing listens), not for the flag: the flag was taken.
    const r = await runCli(['forward', '--servername', 'example.org', '--connect-timeout', '1', '0', 'tls:127.0.0.1:9'], { timeoutMs: 3000 });
    expect(r.stderr).not.toMatch(/plain TCP/);
  });

  it('listen --unix-mode on a TCP address', async () => {
    await refused(['listen', '--unix-mode', '0600', '0'], /--unix-mode applies to unix: addresses/);
  });

  it('connect with server TLS flags, and --ca on a plain listener', async () => {
    await refused(['connect', '--cert', '/etc/hostname', '127.0.0.1:9'], /are for TLS servers, and this mode only connects/);
    await refused(['connect', '--require-client-cert', '127.0.0.1:9'], /are for TLS servers/);
    await refused(['listen', '--ca', '/etc/hostname', '0'], /--ca applies to a TLS listener/);
  });

  it('-u on modes that only take byte streams', async () => {
    await refused(['exec', '-u', '0', '--', 'cat'], /this mode works on byte streams/);
    await refused(['broadcast', '-u', '0'], /this mode works on byte streams/);
  });
});

describe('mode × flag combinations that mean nothing are refused, not ignored (issue 16 #6, issue 9)', () => {
  // Each row: a command line whose flag the mode would have silently ignored before, and the line it now gets.
  it.each([
    ['forward', ['--close-wait', '5', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9'], /^sockcat: --close-wait applies to TCP \(stream\) forwards, not to UDP/],
    ['forward', ['--idle-timeout=5', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9'], /^sockcat: --idle-timeout applies to TCP \(stream\) forwards, not to UDP/],
    ['forward', ['--connect-timeout', '5', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9'], /^sockcat: --connect-timeout applies to TCP \(stream\) forwards/],
    ['forward', ['--drain-timeout', '5', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9'], /^sockcat: --drain-timeout applies to TCP \(stream\) forwards/],
    ['forward', ['--close-wait', '1', '--drain-timeout', '1', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9'], /^sockcat: --close-wait, --drain-timeout apply to TCP/],
    ['forward', ['--udp-idle', '5', '127.0.0.1:0', '127.0.0.1:9'], /^sockcat: --udp-idle applies to UDP forwards \(udp:…\), not to TCP/],
    ['listen', ['--udp-idle', '5', '0'], /^sockcat: --udp-idle applies to UDP listeners/],
    ['listen', ['-u', '--drain-timeout', '5', '0'], /^sockcat: --drain-timeout applies to stream listeners/],
    ['listen', ['-u', '--no-shutdown', '0'], /^sockcat: --no-shutdown applies to streams: UDP has no write side/],
    ['connect', ['-u', '-w', '3', '127.0.0.1:9'], /^sockcat: --wait: for streams only/],
    ['connect', ['-u', '--no-shutdown', '127.0.0.1:9'], /^sockcat: --no-shutdown: for streams only/],
    ['connect', ['--quit-after', '5', '127.0.0.1:9'], /^sockcat: --quit-after applies to UDP/],
    ['listen', ['-k', '--echo', '--crlf', '0'], /^sockcat: --crlf applies to stdin, which --echo does not read/],
    ['listen', ['--echo', '--no-shutdown', '0'], /^sockcat: --no-shutdown applies to stdin EOF, which --echo does not read/],
  ] as const)('%s %j: exit 2, one line', async (mode, args, why) => {
    await refused([mode, ...args], why);
  });

  it.each([
    ['forward', ['--udp-idle', '5', 'udp:127.0.0.1:0', 'udp:127.0.0.1:9']],
    ['forward', ['--close-wait', '5', '--connect-timeout', '2', '127.0.0.1:0', '127.0.0.1:9']],
    ['listen', ['-u', '--udp-idle', '5', '0']],
  ] as const)('%s %j: taken where it means something (still running after 1.5 s)', async (mode, args) => {
    const r = await runCli([mode, ...args], { timeoutMs: 1500 });
    expect(r.stderr).not.toMatch(/applies|apply to|for streams only/);
    expect(r.code).not.toBe(2);
  });
});

describe("a mode's --help lists only its flags", () => {
  it('connect lists no server flag; listen lists no client TLS flag', async () => {
    const connect = (await runCli(['connect', '--help'])).stdout.toString();
    for (const flag of ['--cert', '--key', '--require-client-cert', '--unix-mode']) expect(connect).not.toContain(flag);
    expect(connect).toContain('--servername');
    const listen = (await runCli(['listen', '--help'])).stdout.toString();
    for (const flag of ['--insecure', '--servername', '--client-cert', '--client-key']) expect(listen).not.toContain(flag);
    expect(listen).toContain('--require-client-cert');
    expect(listen).toContain('--unix-mode');
  });
});

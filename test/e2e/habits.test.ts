/**
 * nc's habits, typed as a student types them: each gets one line with the sockcat command they
 * meant (exit 2), and that command, pasted into a shell, does the job. Or, where nothing is
 * ambiguous (PORT HOST, HOST PORT in forward), it just works.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, cliStartedPerTest, sockcatCommand } from '../helpers/cli';
import { tcpServer, exchange, connect, readAll } from '../helpers/net';

const start = cliStartedPerTest();

/** The one stderr line of a refused command line, checked for exit 2 and no stack trace. */
async function refused(args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = opts.cwd ? await start(args, { stdin: null, cwd: opts.cwd }).exited : await runCli(args);
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0];
}

/** The command a message tells the user to type, run through a shell as they would paste it. */
function runSuggested(line: string, re: RegExp) {
  const m = re.exec(line);
  expect(m, line).not.toBeNull();
  const [cmd, pre] = sockcatCommand();
  const sockcat = [cmd, ...pre].map((a) => `'${a}'`).join(' ');
  return start([], { command: ['sh', ['-c', `exec ${m![1].replace(/^sockcat /, `${sockcat} `)}`]] });
}

describe('a mode forgotten or mistyped', () => {
  it('sockcat -l -p PORT says it is listen, and the command it gives listens', async () => {
    const line = await refused(['-l', '-p', '0', '-v']);
    expect(line).toBe("sockcat: missing mode: to wait for a client like nc -l, type: sockcat listen -p 0 -v (see 'sockcat --help')");
    const server = runSuggested(line, /type: (sockcat .*?) \(see/);
    const port = await server.listeningPort();
    expect(await exchange(port, 'hi\n')).toEqual(Buffer.alloc(0));
    await server.waitForStderr(/closed/);
  });

  it('nc -lvnp PORT: the letters sockcat has no use for are dropped', async () => {
    expect(await refused(['-lvnp', '9090'])).toBe("sockcat: missing mode: to wait for a client like nc -l, type: sockcat listen -vp 9090 (see 'sockcat --help')");
  });

  it('sockcat HOST PORT says it is connect, and the command it gives connects', async () => {
    const srv = await tcpServer((s) => s.end('bonjour\n'));
    const line = await refused(['127.0.0.1', String(srv.port)]);
    expect(line).toBe(`sockcat: missing mode: to connect like nc HOST PORT, type: sockcat connect 127.0.0.1 ${srv.port} (see 'sockcat --help')`);
    const client = runSuggested(line, /type: (sockcat .*?) \(see/);
    client.child.stdin!.end();
    const r = await client.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('bonjour\n');
    await srv.close();
  });

  it('a mistyped mode gets "did you mean"', async () => {
    const typos = [
      ['lsiten', 'listen'],
      ['conect', 'connect'],
      ['forwrad', 'forward'],
      ['exce', 'exec'],
      ['brodcast', 'broadcast'],
      ['lis', 'listen'],
    ];
    const lines = await Promise.all(typos.map(([typed]) => refused([typed, '9090'])));
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^sockcat: unknown mode '${typos[i][0]}': did you mean '${typos[i][1]}'\\? \\(modes: listen, connect, forward, exec, broadcast, .*; see sockcat --help\\)$`)));
  });

  it('a word far from every mode gets the list, no guess', async () => {
    expect(await refused(['frobnicate'])).toMatch(/^sockcat: unknown mode 'frobnicate' \(modes: listen, connect/);
  });
});

describe("nc's -e and -c on listen", () => {
  it('listen -l -p PORT -e PROG gives the exec command, which serves the program', async () => {
    const line = await refused(['listen', '-l', '-p', '0', '-e', 'cat', '-v']);
    expect(line).toBe("sockcat: listen does not run programs; nc's -e is sockcat's exec mode (one process per client): sockcat exec 0 -v -- cat (see 'sockcat --help')");
    const server = runSuggested(line, /client\): (sockcat .*?) \(see/);
    const port = await server.listeningPort();
    expect((await exchange(port, 'écho\n')).toString()).toBe('écho\n');
  });

  it("listen PORT HOST -c 'CMD' gives exec --sh with the command quoted", async () => {
    const line = await refused(['listen', '0', '127.0.0.1', '-c', 'cat -n', '-v']);
    expect(line).toBe("sockcat: listen does not run programs; nc's -c is sockcat's exec mode (one process per client): sockcat exec 127.0.0.1:0 -v --sh 'cat -n' (see 'sockcat --help')");
    const server = runSuggested(line, /client\): (sockcat .*?) \(see/);
    const port = await server.listeningPort();
    expect((await exchange(port, 'a\n')).toString()).toMatch(/^\s+1\ta\n$/);
  });

  it('ncat --exec "PROG ARGS" splits the words after --', async () => {
    expect(await refused(['listen', '9090', '--exec', 'cat -n'])).toContain('sockcat exec 9090 -- cat -n (see');
  });
});

describe('addresses the nc way', () => {
  it("listen PORT HOST (nc's -l -p 9090 127.0.0.1 order) listens there", async () => {
    const server = start(['listen', '-v', '0', '127.0.0.1'], { stdin: 'salut\n' });
    const m = await server.waitForStderr(/listening on (\S+):(\d+)/);
    expect(m[1]).toBe('127.0.0.1');
    const s = await connect(Number(m[2]));
    s.end();
    expect((await readAll(s)).toString()).toBe('salut\n');
  });

  it('two ports are refused, naming both', async () => {
    expect(await refused(['listen', '9090', '9091'])).toMatch(/two ports given \(9090 and 9091\)/);
  });

  it('forward PORT HOST PORT relays to HOST:PORT, as connect takes it', async () => {
    const target = await tcpServer((s) => s.end('from target\n'));
    const fwd = start(['forward', '-v', '0', '127.0.0.1', String(target.port)]);
    const port = await fwd.listeningPort();
    await fwd.waitForStderr(new RegExp(`→ 127\\.0\\.0\\.1:${target.port}`));
    expect((await exchange(port, '')).toString()).toBe('from target\n');
    await target.close();
  });

  it('forward HOST PORT HOST PORT too', async () => {
    const target = await tcpServer((s) => s.end('ok\n'));
    const fwd = start(['forward', '-v', '127.0.0.1', '0', 'localhost', String(target.port)]);
    const port = await fwd.listeningPort();
    expect((await exchange(port, '')).toString()).toBe('ok\n');
    await target.close();
  });

  it('an address without its port says "missing port" and shows where it goes', async () => {
    const cases: Array<[string[], string]> = [
    [['connect', '::1'], "sockcat: missing port: write the IPv6 address in brackets with the port after it, e.g. [::1]:9090 (or ::1 9090) (see 'sockcat --help')"],
    [['connect', 'fe80::1'], "sockcat: missing port: write the IPv6 address in brackets with the port after it, e.g. [fe80::1]:9090 (or fe80::1 9090) (see 'sockcat --help')"],
    [['connect', 'localhost'], "sockcat: missing port: add it after the host, e.g. localhost:9090 (or localhost 9090) (see 'sockcat --help')"],
    [['connect', 'tls:localhost'], "sockcat: missing port: add it after the host, e.g. tls:localhost:9090 (see 'sockcat --help')"],
    [['connect', '::1:80'], "sockcat: malformed address '::1:80': write IPv6 addresses in brackets, e.g. [::1]:80 (see 'sockcat --help')"],
    ];
    expect(await Promise.all(cases.map(([args]) => refused(args)))).toEqual(cases.map(([, message]) => message));
  });
});

describe('exec: a program that is not found', () => {
  it("a command line in one word suggests --sh 'cat -n' or -- cat -n", async () => {
    expect(await refused(['exec', '0', 'cat -n'])).toBe(
      "sockcat: program 'cat -n' not found in PATH: to run the command line 'cat -n', use --sh 'cat -n' (through /bin/sh), or give the program and its arguments as separate words: -- cat -n (see 'sockcat --help')",
    );
  });

  it('a script in the current directory suggests ./server.sh, which then runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sockcat-habits-'));
    try {
      writeFileSync(join(dir, 'server.sh'), '#!/bin/sh\necho "served by script"\n');
      chmodSync(join(dir, 'server.sh'), 0o755);
      expect(await refused(['exec', '0', '--', 'server.sh'], { cwd: dir })).toBe("sockcat: program 'server.sh' not found in PATH; there is one in this directory: write ./server.sh (see 'sockcat --help')");
      const server = start(['exec', '-v', '0', '--', './server.sh'], { cwd: dir });
      const port = await server.listeningPort();
      expect((await exchange(port, '')).toString()).toBe('served by script\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

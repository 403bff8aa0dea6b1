import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { runExec, type ExecOptions } from '../../src/modes/exec';
import { settleProgram } from '../../src/commands/exec';
import { parseAddress, type TcpAddress } from '../../src/endpoints/index';
import { UsageError } from '../../src/errors';
import { connect, exchange, readAll, randomBytes, sha256, waitFor } from '../helpers/net';
import { isGone, waitGone } from '../helpers/proc';

interface RunningExec {
  port: number;
  stderr(): string;
  /** Graceful stop (SIGINT); resolves with the exit code once every child is gone. */
  stop(): Promise<number>;
}

const running = new Set<RunningExec>();

/** Runs the exec mode in-process on 127.0.0.1, port 0. */
async function startExec(given: Partial<ExecOptions> & { program?: string[]; script?: string }): Promise<RunningExec> {
  const { program, script, ...rest } = given;
  const opts = { ...rest, command: settleProgram(program ?? [], script) };
  const controller = new AbortController();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  let onPort!: (port: number) => void;
  const listening = new Promise<number>((resolve) => (onPort = resolve));
  const done = runExec(
    { address: parseAddress('0', 'listen'), verbose: true, ...opts, onListening: (l) => onPort((l.address as TcpAddress).port) },
    { stdin: new PassThrough(), stdout: new PassThrough(), stderr, signal: controller.signal, endStdout: true },
  );
  const port = await Promise.race([listening, done.then(() => Promise.reject(new Error(`exec stopped before listening: ${err}`)))]);
  const server: RunningExec = {
    port,
    stderr: () => err,
    stop: () => {
      running.delete(server);
      controller.abort();
      return done;
    },
  };
  running.add(server);
  return server;
}

afterEach(async () => {
  for (const s of [...running]) await s.stop();
});

const sh = (script: string) => ({ script });

/** Reads from `s` until `re` matches what arrived so far. */
function readUntil(s: net.Socket, re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      s.off('data', onData);
      reject(new Error(`timed out waiting for ${re}; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    const onData = (c: Buffer) => {
      text += c.toString();
      const m = text.match(re);
      if (m) {
        clearTimeout(timer);
        s.off('data', onData);
        resolve(m);
      }
    };
    s.on('data', onData);
  });
}

describe('exec mode', () => {
  it('joins each client to its own program: cat echoes 1 MiB intact', async () => {
    const server = await startExec({ program: ['cat'] });
    const payload = randomBytes(1 << 20);
    expect(sha256(await exchange(server.port, payload))).toBe(sha256(payload));
    expect(await server.stop()).toBe(0);
    expect(server.stderr()).toMatch(/closed 127\.0\.0\.1:\d+ \(pid \d+, exit 0\): 1048576 bytes in, 1048576 bytes out/);
  });

  it('serves 50 concurrent clients, each with its own child', async () => {
    const server = await startExec({ program: ['cat'] });
    const payloads = Array.from({ length: 50 }, (_, i) => Buffer.concat([Buffer.from(`client ${i}\n`), randomBytes(20_000)]));
    const replies = await Promise.all(payloads.map((p) => exchange(server.port, p)));
    replies.forEach((r, i) => expect(sha256(r)).toBe(sha256(payloads[i])));
    await server.stop();
    expect(server.stderr().match(/exit 0\)/g)).toHaveLength(50);
  });

  it('delivers output written after the client half-closed (repeated: it is a race)', async () => {
    // wc answers only once its stdin is closed, i.e. after the client's FIN.
    const server = await startExec({ program: ['wc', '-c'] });
    for (let i = 0; i < 40; i++) {
      const payload = randomBytes(1000 + i * 997);
      const reply = await exchange(server.port, payload);
      expect(reply.toString().trim()).toBe(String(payload.length));
    }
  });

  it('delivers everything a child wrote when it exits at once (exit vs last stdout data, repeated)', async () => {
    // seq writes ~110 KB and exits without reading: 'exit' races the last chunks of stdout.
    const server = await startExec({ program: ['seq', '1', '20000'] });
    const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join('');
    for (let i = 0; i < 30; i++) {
      const s = await connect(server.port);
      const got = readAll(s);
      // Half the time the client also sends bytes the child never reads: dropped, not an error.
      if (i % 2) s.end(randomBytes(200_000));
      else s.end();
      const out = (await got).toString();
      s.destroy();
      expect(out.length).toBe(expected.length);
      expect(out === expected).toBe(true);
    }
    await server.stop();
    expect(server.stderr()).not.toMatch(/\((reset|error)\)/);
  });

  it('lets a child keep talking after the client EOF for longer than --close-wait, as long as it is not silent', async () => {
    const server = await startExec({ ...sh('cat >/dev/null; for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.2; done'), closeWaitMs: 1000 });
    expect((await exchange(server.port, 'go\n')).toString()).toBe('1\n2\n3\n4\n5\n6\n7\n8\n');
  });

  it('one client that does not read stalls only its own child', async () => {
    const server = await startExec({ ...sh('read what; if [ "$what" = flood ]; then exec yes spam; fi; echo "$what"') });
    const slow = await connect(server.port);
    slow.pause(); // never reads: its child fills the pipes and blocks
    slow.write('flood\n');
    await waitFor(() => slow.readableLength > 0 || slow.bytesRead > 0, 5000, 'the flood to start');
    for (let i = 0; i < 10; i++) expect((await exchange(server.port, `hi ${i}\n`)).toString()).toBe(`hi ${i}\n`);
    slow.destroy();
  });

  it('works on IPv6 loopback, with the addresses in the environment', async () => {
    const server = await startExec({ address: parseAddress('[::1]:0', 'listen'), ...sh('echo "$SOCKCAT_PEER_ADDR $SOCKCAT_LOCAL_ADDR"') });
    const s = await connect(server.port, '::1');
    const got = readAll(s);
    s.end();
    expect((await got).toString()).toBe('::1 ::1\n');
    s.destroy();
  });

  it('keeps delivering output after the child stopped reading its stdin', async () => {
    // head exits after one line; the client keeps sending into a pipe nobody reads.
    const server = await startExec({ ...sh('head -n 1; echo bye') });
    const s = await connect(server.port);
    const got = readAll(s);
    s.write('first line\n');
    s.end(Buffer.alloc(2 << 20, 0x61));
    expect((await got).toString()).toBe('first line\nbye\n');
    s.destroy();
  });

  it("gives the child SOCKCAT_PEER_*/SOCKCAT_LOCAL_* and the parent's environment", async () => {
    const server = await startExec({
      ...sh('echo "$SOCKCAT_PEER_ADDR $SOCKCAT_PEER_PORT $SOCKCAT_LOCAL_ADDR $SOCKCAT_LOCAL_PORT $FROM_PARENT"'),
      env: { ...process.env, FROM_PARENT: 'inherited' },
    });
    const s = await connect(server.port);
    const clientPort = s.localPort;
    const got = readAll(s);
    s.end();
    expect((await got).toString()).toBe(`127.0.0.1 ${clientPort} 127.0.0.1 ${server.port} inherited\n`);
    s.destroy();
  });

  it("sends the child's stderr to the server's stderr, each line prefixed with the client", async () => {
    const server = await startExec({ ...sh('echo out; echo "first problem" >&2; printf "no newline" >&2') });
    const s = await connect(server.port);
    const who = `127.0.0.1:${s.localPort}`;
    const got = readAll(s);
    s.end();
    expect((await got).toString()).toBe('out\n');
    await waitFor(() => server.stderr().includes(`[${who}] no newline\n`), 5000, 'the last stderr line');
    expect(server.stderr()).toContain(`[${who}] first problem\n`);
    s.destroy();
  });

  it('--stderr sends the child stderr to the client, in order with stdout', async () => {
    const server = await startExec({ ...sh('echo one; echo two >&2; echo three'), stderrToClient: true });
    expect((await exchange(server.port, '')).toString()).toBe('one\ntwo\nthree\n');
    expect(server.stderr()).not.toContain('two');
  });

  it('--stderr also works for the argv form (no shell between sockcat and the program)', async () => {
    const server = await startExec({ program: ['ls', '/no/such/dir'], stderrToClient: true });
    expect((await exchange(server.port, '')).toString()).toMatch(/no\/such\/dir/);
  });

  it('runs the argv form without a shell: arguments are passed verbatim', async () => {
    const server = await startExec({ program: ['printf', '%s|', '$HOME', '*', 'a b', '05'] });
    expect((await exchange(server.port, '')).toString()).toBe('$HOME|*|a b|05|');
  });

  it('stops the child and its grandchildren when the client resets', async () => {
    const server = await startExec({ ...sh('sleep 300 & echo "$$ $!"; wait') });
    const s = await connect(server.port);
    const [, leader, grandchild] = (await readUntil(s, /(\d+) (\d+)\n/)).map(Number);
    expect(isGone(leader) || isGone(grandchild)).toBe(false);
    s.resetAndDestroy();
    await waitGone([leader, grandchild]);
    await waitFor(() => /\(reset\)/.test(server.stderr()), 5000, 'the closed line');
    expect(server.stderr()).toMatch(/killed by SIGTERM\)/);
  });

  it('stops a child that outlives its client EOF by more than --close-wait', async () => {
    const server = await startExec({ ...sh('echo $$; exec sleep 300'), closeWaitMs: 200 });
    const s = await connect(server.port);
    const got = readAll(s);
    const [, pid] = (await readUntil(s, /(\d+)\n/)).map(Number);
    s.end();
    // The connection ends (the client reads EOF) and the child is gone.
    expect((await got).toString()).toBe(`${pid}\n`);
    await waitGone([pid]);
    await waitFor(() => /\(close-wait\)/.test(server.stderr()), 5000, 'the closed line');
  });

  it('stops a child whose connection stays quiet past --idle-timeout', async () => {
    const server = await startExec({ ...sh('echo $$; exec sleep 300'), idleTimeoutMs: 300 });
    const s = await connect(server.port);
    const got = readAll(s);
    const [, pid] = (await readUntil(s, /(\d+)\n/)).map(Number);
    await got;
    await waitGone([pid]);
    await waitFor(() => /\(idle\)/.test(server.stderr()), 5000, 'the closed line');
    s.destroy();
  });

  it('dumps both directions in hex with -x, marked with the client', async () => {
    const server = await startExec({ program: ['cat'], hex: true });
    const s = await connect(server.port);
    const who = `127.0.0.1:${s.localPort}`;
    const got = readAll(s);
    s.end('hi\n');
    expect((await got).toString()).toBe('hi\n');
    await waitFor(() => server.stderr().includes(`> ${who} 00000000  68 69 0a`), 5000, 'the dump of the reply');
    expect(server.stderr()).toContain(`< ${who} 00000000  68 69 0a`);
    s.destroy();
  });

  it('SIGKILLs a child that ignores SIGTERM, after the grace period', async () => {
    const server = await startExec({ ...sh('trap "" TERM; echo $$; while :; do sleep 0.05; done'), killGraceMs: 200 });
    const s = await connect(server.port);
    const [, pid] = (await readUntil(s, /(\d+)\n/)).map(Number);
    s.destroy();
    await waitGone([pid]);
    await waitFor(() => /killed by SIGKILL\)/.test(server.stderr()), 5000, 'the closed line');
  });

  it('stops every child when the server stops', async () => {
    const server = await startExec({ ...sh('sleep 300 & echo "$$ $!"; wait') });
    const clients = await Promise.all([connect(server.port), connect(server.port)]);
    const pids = (await Promise.all(clients.map((s) => readUntil(s, /(\d+) (\d+)\n/)))).flatMap((m) => [Number(m[1]), Number(m[2])]);
    expect(await server.stop()).toBe(0);
    // runExec resolves only once its children are gone.
    expect(pids.filter((p) => !isGone(p))).toEqual([]);
    for (const s of clients) s.destroy();
  });

  it('survives a child killed by a signal, and other clients are not affected', async () => {
    const server = await startExec({ ...sh('echo $$; exec cat') });
    const a = await connect(server.port);
    const b = await connect(server.port);
    const [, pidA] = (await readUntil(a, /(\d+)\n/)).map(Number);
    await readUntil(b, /(\d+)\n/);
    const aDone = readAll(a);
    process.kill(pidA, 'SIGSEGV');
    await aDone;
    a.destroy();
    // b's child still answers, and new clients are served.
    b.write('still here\n');
    await readUntil(b, /still here\n/);
    b.destroy();
    expect((await exchange(server.port, 'new client\n')).toString()).toMatch(/^\d+\nnew client\n$/);
    await waitFor(() => /killed by SIGSEGV\)/.test(server.stderr()), 5000, 'the closed line of the killed child');
  });

  it('refuses clients past --max-children with a log line, and serves again once one leaves', async () => {
    const server = await startExec({ ...sh('echo ready; exec cat'), maxChildren: 2 });
    const a = await connect(server.port);
    const b = await connect(server.port);
    await readUntil(a, /ready\n/);
    await readUntil(b, /ready\n/);
    const refused = await connect(server.port);
    expect((await readAll(refused)).length).toBe(0);
    expect(server.stderr()).toMatch(/refused 127\.0\.0\.1:\d+: 2 children already running \(--max-children\)/);
    a.end();
    await waitFor(() => /closed .*exit 0\)/.test(server.stderr()), 5000, 'the first child to exit');
    expect((await exchange(server.port, 'hi\n')).toString()).toBe('ready\nhi\n');
    b.destroy();
    refused.destroy();
  });

  it('refuses a program that is not in PATH before listening (usage error, settled by the command)', () => {
    expect(() => settleProgram(['no-such-program-xyz'], undefined)).toThrow(UsageError);
    expect(() => settleProgram(['no-such-program-xyz'], undefined)).toThrow("program 'no-such-program-xyz' not found in PATH");
    expect(() => settleProgram([], undefined)).toThrow(/missing program/);
    expect(() => settleProgram(['cat'], 'cat')).toThrow(/not both/);
    expect(() => settleProgram([], '  ')).toThrow(/--sh needs a script/);
  });
});

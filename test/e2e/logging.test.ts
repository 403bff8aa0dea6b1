/**
 * Logging never takes the process down (issue 16 #2): with stderr closed (2>&1 | head -1) or
 * full (2>/dev/full), a failed log write is dropped and traffic goes on.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { CLI_PATH } from '../helpers/cli';
import { exchange, tcpServer, waitFor } from '../helpers/net';

const started: ChildProcess[] = [];
afterEach(() => {
  // Each shell leads its own process group: the pipeline's sockcat goes with it.
  for (const c of started.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A shell pipeline in its own process group. */
const shell = (script: string, stdio: Array<'ignore' | 'pipe' | 'inherit'>) => {
  const sh = spawn('/bin/sh', ['-c', script], { stdio: stdio as any, detached: true });
  started.push(sh);
  return sh;
};

describe('a closed or full stderr', () => {
  it('forward -v whose stderr reader went away (2>&1 >/dev/null | head -1) keeps relaying', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    // sh prints the one line head lets through; every later log write hits a closed pipe (EPIPE).
    const sh = shell(`"${process.execPath}" "${CLI_PATH}" forward -v --max-conns 100 0 127.0.0.1:${echo.port} 2>&1 >/dev/null | head -1`, ['ignore', 'pipe', 'pipe']);
    let out = '';
    sh.stdout!.on('data', (c: Buffer) => (out += c));
    await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.test(out), 10_000, 'the first log line');
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1]);
    // Each client makes log lines (connection from, closed): the first of them meets EPIPE.
    for (let i = 0; i < 5; i++) expect((await exchange(port, `client ${i}\n`)).toString()).toBe(`client ${i}\n`);
    // head is gone, but the forward lives on.
    expect((await exchange(port, 'still there\n')).toString()).toBe('still there\n');
    await echo.close();
  });

  it('connect -v with stderr on /dev/full still delivers and exits 0', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const sh = shell(`printf 'hello\\n' | "${process.execPath}" "${CLI_PATH}" connect -v 127.0.0.1:${echo.port} 2>/dev/full`, ['ignore', 'pipe', 'inherit']);
      let out = '';
      sh.stdout!.on('data', (c: Buffer) => (out += c));
      sh.on('close', (code) => resolve({ code, out }));
    });
    expect(r.out).toBe('hello\n');
    expect(r.code).toBe(0);
    await echo.close();
  });

  it('listen -v --echo with stderr on /dev/full serves clients', async () => {
    const sh = shell(`exec "${process.execPath}" "${CLI_PATH}" listen -v --echo --log-format json 0 2>/dev/full`, ['ignore', 'pipe', 'inherit']);
    // No log line can tell the port: find it with ss.
    let port = 0;
    await waitFor(() => {
      const found = /127\.0\.0\.1:(\d+)/.exec(execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n').find((l) => l.includes(`pid=${sh.pid},`)) ?? '');
      port = found ? Number(found[1]) : 0;
      return port > 0;
    }, 10_000, 'the listening port');
    expect((await exchange(port, 'ping\n')).toString()).toBe('ping\n');
    expect((await exchange(port, 'pong\n')).toString()).toBe('pong\n');
    expect(sh.exitCode).toBeNull();
  });
});

import { describe, it, expect } from 'vitest';
import { runCli } from '../helpers/cli';
import { tcpServer, readAll, randomBytes, sha256, sleep } from '../helpers/net';

describe('sockcat connect (end to end)', () => {
  it('sends stdin, shuts down on EOF, and still receives a reply sent after our EOF', async () => {
    const srv = await tcpServer(async (s) => {
      const got = await readAll(s);
      await sleep(150); // answer well after the client's FIN
      s.end(`got ${got.length} bytes: ${got.toString()}`);
    });
    const r = await runCli(['connect', `127.0.0.1:${srv.port}`], { stdin: 'question' });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('got 8 bytes: question');
    await srv.close();
  });

  it('accepts nc-style HOST PORT arguments', async () => {
    const srv = await tcpServer((s) => s.end('banner\n'));
    const r = await runCli(['connect', '127.0.0.1', String(srv.port)], { stdin: '' });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('banner\n');
    await srv.close();
  });

  it('exits when the server closes even though stdin stays open', async () => {
    const srv = await tcpServer((s) => s.end('bye\n'));
    const { startCli } = await import('../helpers/cli');
    const c = startCli(['connect', `127.0.0.1:${srv.port}`]);
    const r = await c.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('bye\n');
    await srv.close();
  });

  it('carries 1 MiB of random bytes intact both ways', async () => {
    const down = randomBytes(1 << 20);
    let received: Buffer = Buffer.alloc(0);
    const srv = await tcpServer(async (s) => {
      s.write(down);
      received = await readAll(s);
      s.end();
    });
    const up = randomBytes(1 << 20);
    const r = await runCli(['connect', `127.0.0.1:${srv.port}`], { stdin: up });
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(down));
    expect(sha256(received)).toBe(sha256(up));
    await srv.close();
  });

  it('connects over IPv6 loopback', async () => {
    const srv = await tcpServer((s) => s.end(`you are ${s.remoteAddress}`), '::1');
    const r = await runCli(['connect', `[::1]:${srv.port}`], { stdin: '' });
    expect(r.stdout.toString()).toBe('you are ::1');
    await srv.close();
  });

  it('keeps the write side open with --no-shutdown', async () => {
    let sawEofBeforeReply: boolean | undefined;
    const srv = await tcpServer((s) => {
      let sawEof = false;
      s.on('end', () => (sawEof = true));
      s.once('data', () =>
        setTimeout(() => {
          sawEofBeforeReply = sawEof;
          s.end('done');
        }, 200),
      );
    });
    const r = await runCli(['connect', '--no-shutdown', `127.0.0.1:${srv.port}`], { stdin: 'x' });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('done');
    expect(sawEofBeforeReply).toBe(false);
    await srv.close();
  });

  it('translates LF to CRLF with -C, keeping existing CRLF', async () => {
    let got: Buffer = Buffer.alloc(0);
    const srv = await tcpServer(async (s) => {
      got = await readAll(s);
      s.end();
    });
    await runCli(['connect', '-C', `127.0.0.1:${srv.port}`], { stdin: 'GET / HTTP/1.0\n\r\nend\n' });
    expect(got.toString()).toBe('GET / HTTP/1.0\r\n\r\nend\r\n');
    await srv.close();
  });

  it('dumps both directions in hex with -x', async () => {
    const srv = await tcpServer(async (s) => {
      await readAll(s);
      s.end('pong');
    });
    const r = await runCli(['connect', '-x', `127.0.0.1:${srv.port}`], { stdin: 'ping' });
    expect(r.stderr).toContain('> 00000000  70 69 6e 67');
    expect(r.stderr).toContain('|ping|');
    expect(r.stderr).toContain('< 00000000  70 6f 6e 67');
    await srv.close();
  });

  it('closes an idle connection after --idle-timeout, exit 1', async () => {
    const srv = await tcpServer(() => {});
    const r = await runCli(['connect', '--idle-timeout', '0.3', `127.0.0.1:${srv.port}`], { stdin: undefined, timeoutMs: 10_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/idle timeout/);
    await srv.close();
  });
});

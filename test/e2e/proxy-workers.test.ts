/**
 * `sockcat proxy --workers N`: several processes, each with its own SO_REUSEPORT socket on the
 * port, each an ordinary proxy that reads --auth-file and --map-file itself. Proven from the
 * outside: clients that arrive together are served by more than one worker PID, logins are
 * checked (and refused) in each, and a changed map file reaches every worker.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliStartedPerTest } from '../helpers/cli';
import { childPids } from '../helpers/proc';
import { readBytes, socks5Connect } from '../helpers/socks';
import { sleep, tcpServer, waitFor } from '../helpers/net';

const sockcat = cliStartedPerTest();

/** Listening sockets on 127.0.0.1:port (from /proc/net/tcp): one per worker with SO_REUSEPORT. */
function listeners(port: number): number {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((l) => l.split(/\s+/)[4] === '0A' && l.split(/\s+/)[2]?.endsWith(hexPort)).length;
}

/** An echo server that prefixes what it sends back with `tag`. */
const taggedEcho = (tag: string) =>
  tcpServer((s) => {
    s.on('error', () => {});
    s.on('data', (c: Buffer) => s.write(Buffer.concat([Buffer.from(tag), c])));
    s.on('end', () => s.end());
  });

/** JSON events of one kind, from the proxy's stderr. */
const events = (stderr: string, name: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === name);

describe('sockcat proxy --workers (CLI)', () => {
  it('serves clients from several worker processes; logins and the map file work in each', async () => {
    const one = await taggedEcho('one:');
    const two = await taggedEcho('two:');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-proxy-workers-'));
    const users = path.join(dir, 'users');
    const map = path.join(dir, 'map');
    fs.writeFileSync(users, '# logins\nalice:s3cret\n');
    fs.writeFileSync(map, `app.test=127.0.0.1:${one.port}\n`);
    try {
      const p = sockcat(['proxy', '--workers', '2', '--log-format', 'json', '-v', '127.0.0.1:0', '--auth-file', users, '--map-file', map, '--only-mapped']);
      const m = await p.waitForStderr(/"event":"listening".*"address":"127\.0\.0\.1:(\d+)"/);
      const port = Number(m[1]);
      await waitFor(() => listeners(port) === 2, 15_000, 'two listening sockets on the port');
      const workers = childPids(p.child.pid!);
      expect(workers).toHaveLength(2);

      // 40 clients at once: the kernel hashes each to one of the two sockets (all 40 on one is a
      // 1 in 2^39 chance). Each logs in, asks for the mapped name, and gets its echo back.
      const through = async (tag: string, login: [string, string]) => {
        const { socket, code } = await socks5Connect(port, 'app.test', 80, login);
        if (code !== 0) {
          socket.destroy();
          return code;
        }
        socket.write(`${tag}\n`);
        const got = await readBytes(socket, 4 + tag.length + 1, 10_000);
        socket.destroy();
        return got.toString();
      };
      const served = await Promise.all(Array.from({ length: 40 }, (_, i) => through(`c${i}`, ['alice', 's3cret'])));
      expect(served).toEqual(Array.from({ length: 40 }, (_, i) => `one:c${i}\n`));
      await waitFor(() => events(p.stderr(), 'close').length >= 40, 10_000, '40 close events');
      const servedBy = new Set(events(p.stderr(), 'close').map((e) => e.worker));
      expect([...servedBy].sort()).toEqual([...workers].sort());

      // A wrong password is refused (RFC 1929 status 1) in every worker, and each logs it.
      const refused = await Promise.all(Array.from({ length: 40 }, (_, i) => through(`r${i}`, ['alice', 'wrong'])));
      expect(refused).toEqual(Array.from({ length: 40 }, () => 0x101));
      await waitFor(() => events(p.stderr(), 'auth-failed').length >= 40, 10_000, '40 auth-failed events');
      expect(new Set(events(p.stderr(), 'auth-failed').map((e) => e.worker)).size).toBe(2);

      // The map file changes: every worker re-reads it (each polls the file on its own).
      fs.writeFileSync(map, `# moved\napp.test=127.0.0.1:${two.port}\n`);
      // Each worker polls the file on its own: rounds of 40 until every client reaches the new place.
      let moved: unknown[] = [];
      for (const until = Date.now() + 10_000; Date.now() < until; await sleep(200)) {
        moved = await Promise.all(Array.from({ length: 40 }, (_, i) => through(`m${i}`, ['alice', 's3cret'])));
        if (moved.every((r, i) => r === `two:m${i}\n`)) break;
      }
      expect(moved).toEqual(Array.from({ length: 40 }, (_, i) => `two:m${i}\n`));
      await waitFor(() => events(p.stderr(), 'close').filter((e) => String(e.destination) === 'app.test:80' && String(e.mapped_to).endsWith(`:${two.port}`)).length >= 40, 10_000, 'close events of the moved name');
      expect(new Set(events(p.stderr(), 'close').filter((e) => String(e.mapped_to).endsWith(`:${two.port}`)).map((e) => e.worker)).size).toBe(2);

      // Start-up lines once, not once per worker.
      expect(events(p.stderr(), 'listening')).toHaveLength(1);
      expect(events(p.stderr(), 'proxy')).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await one.close();
      await two.close();
    }
  });

  it('refuses --workers on a unix socket: only one process can bind a path (exit 2, one line)', async () => {
    for (const mode of [['proxy'], ['forward']]) {
      const sock = path.join(os.tmpdir(), `sockcat-workers-${process.pid}-${mode[0]}.sock`);
      const args = mode[0] === 'proxy' ? ['proxy', '--workers', '2', `unix:${sock}`] : ['forward', '--workers', '2', `unix:${sock}`, '127.0.0.1:9'];
      const r = await sockcat(args).exited;
      expect(r.code).toBe(2);
      expect(r.stderr).toBe("sockcat: --workers needs a TCP or TLS LISTEN address (a port the workers share), not unix: (see 'sockcat --help')\n");
      expect(fs.existsSync(sock)).toBe(false);
    }
  });

  it('refuses --workers with a bad count (exit 2, one line)', async () => {
    const p = sockcat(['proxy', '--workers', '0', '127.0.0.1:0']);
    const r = await p.exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("sockcat: --workers takes a number of processes from 1 to 64, or auto, not '0' (see 'sockcat --help')\n");
  });
});

/**
 * The standalone binary: built the way the README says (npm run build:bin), then run from an
 * empty directory with an empty environment — no Node.js on PATH, no node_modules beside it.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { startCli } from './helpers/cli';
import pkg from '../package.json' with { type: 'json' };
import { pinnedNodeVersion } from '../scripts/runtime.mjs';
import { childPids } from './helpers/proc';
import { connect, exchange, readAll, tcpServer, waitFor } from './helpers/net';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'dist/sockcat');

describe('standalone binary dist/sockcat', () => {
  let empty: string;
  beforeAll(() => {
    execFileSync(process.execPath, [join(root, 'scripts/build-bin.mjs')], { stdio: 'pipe' });
    empty = mkdtempSync(join(tmpdir(), 'sockcat-empty-'));
    return () => rmSync(empty, { recursive: true, force: true });
  }, 120_000);

  it('exists and prints its version with env -i from an empty directory', () => {
    expect(existsSync(bin)).toBe(true);
    const out = execFileSync('/usr/bin/env', ['-i', bin, '--version'], { cwd: empty, encoding: 'utf8' });
    expect(out.trim()).toBe(`sockcat ${pkg.version} (node ${pinnedNodeVersion()})`);
  });

  it('runs an echo server and a client with no Node.js around', async () => {
    const server = spawn('/usr/bin/env', ['-i', bin, 'listen', '--echo', '-v', '0'], { cwd: empty, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    server.stderr.on('data', (c) => (err += c));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no listening line: ${err}`)), 10_000);
        server.stderr.on('data', () => {
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(Number(m[1]));
          }
        });
      });
      expect((await exchange(port, 'standalone')).toString()).toBe('standalone');
      const client = execFileSync('/usr/bin/env', ['-i', bin, 'connect', `127.0.0.1:${port}`], { cwd: empty, input: 'via binary client', encoding: 'utf8' });
      expect(client).toBe('via binary client');
    } finally {
      server.kill();
    }
  });

  it('forward --workers starts the binary itself as its workers (no path into node_modules)', async () => {
    const backend = await tcpServer((s) => s.pipe(s));
    const fwd = startCli(['forward', '--workers', '2', '-v', '0', `127.0.0.1:${backend.port}`], { command: [bin, []] });
    try {
      const port = await fwd.listeningPort();
      // Two children that are the binary itself with the same arguments. (Other short-lived
      // children may come and go, e.g. the `sh -c ulimit` probe of the fd limit check.)
      const argvOf = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        } catch {
          return [];
        }
      };
      const workers = () => childPids(fwd.child.pid!).filter((pid) => argvOf(pid).slice(0, 3).join(' ') === `${bin} forward --workers`);
      await waitFor(() => workers().length === 2, 10_000, 'two workers running the binary');
      const client = await connect(port);
      const got = readAll(client);
      client.end('through the binary');
      expect((await got).toString()).toBe('through the binary');
      fwd.kill('SIGTERM');
      expect((await fwd.exited).code).toBe(0);
    } finally {
      fwd.kill('SIGKILL');
      await backend.close();
    }
  });

  it('reports errors as one line with the right exit code', () => {
    try {
      execFileSync('/usr/bin/env', ['-i', bin, 'connect', '::1:80'], { cwd: empty, stdio: 'pipe' });
      expect.unreachable();
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      expect(e.status).toBe(2);
      expect(e.stderr.toString()).toMatch(/^sockcat: malformed address '::1:80'/);
    }
  });
});

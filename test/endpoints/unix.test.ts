/** Unix sockets through the real CLI: stale and live socket files, --unix-mode, cleanup, access rules, socat interop. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startCli, runCli, untimed, type RunningCli } from '../helpers/cli';

let dir: string;
let n = 0;
const running: RunningCli[] = [];
const fresh = () => path.join(dir, `u${++n}.sock`);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-unix-'));
});
afterAll(async () => {
  for (const r of running) r.kill();
  await Promise.all(running.map((r) => r.exited));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts a server and waits until it listens. */
async function serve(args: string[]): Promise<RunningCli> {
  const server = startCli(args);
  running.push(server);
  await server.waitForStderr(/listening on unix:/);
  return server;
}

/** Leaves a socket file behind the way a crashed server does: bind, then die without closing. */
function leaveStaleSocket(sock: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const code = `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`;
    const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
    child.on('exit', () => (fs.existsSync(sock) ? resolve() : reject(new Error('no socket file left behind'))));
  });
}

describe('unix sockets', () => {
  it('replaces a stale socket file left by a dead server', async () => {
    const sock = fresh();
    await leaveStaleSocket(sock);
    const refused = await runCli(['connect', `unix:${sock}`], { stdin: 'x' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/left over from a server that is gone/);
    const server = await serve(['listen', '--echo', '-v', `unix:${sock}`]);
    expect(server.stderr()).toMatch(/removed a stale socket file/);
    const r = await runCli(['connect', `unix:${sock}`], { stdin: 'after the crash\n' });
    expect(r.stdout.toString()).toBe('after the crash\n');
  });

  it('refuses a socket a live server listens on: exit 1, "address already in use", and leaves it working', async () => {
    const sock = fresh();
    await serve(['listen', '--echo', '-v', `unix:${sock}`]);
    const second = await runCli(['listen', `unix:${sock}`]);
    expect(second.code).toBe(1);
    expect(untimed(second.stderr).trim().split('\n')).toEqual([`sockcat: address already in use: unix:${sock} — another server is listening on that socket`]);
    const r = await runCli(['connect', `unix:${sock}`], { stdin: 'still here\n' });
    expect(r.stdout.toString()).toBe('still here\n');
  });

  it('never removes a file that is not a socket', async () => {
    const file = fresh();
    fs.writeFileSync(file, 'precious');
    const r = await runCli(['listen', `unix:${file}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exists and is not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious');
  });

  it('--unix-mode sets the permissions, and the socket file is removed on stop', async () => {
    const sock = fresh();
    const server = await serve(['listen', '--echo', '-v', '--unix-mode', '0600', `unix:${sock}`]);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    server.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('a socket path in a directory that does not exist says so (libuv reports it as "permission denied")', async () => {
    const sock = path.join(dir, 'no-such-dir', 's.sock');
    const r = await runCli(['listen', `unix:${sock}`]);
    expect(r.code).toBe(1);
    expect(untimed(r.stderr).trim().split('\n')).toEqual([`sockcat: unix:${sock}: the directory ${path.dirname(sock)} does not exist`]);
  });

  it('refuses a malformed --unix-mode with exit 2', async () => {
    const r = await runCli(['listen', '--unix-mode', 'rw-rw----', `unix:${fresh()}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--unix-mode takes octal permissions/);
  });

  it('socat UNIX-CONNECT talks to sockcat listen unix:', async () => {
    const sock = fresh();
    await serve(['listen', '--echo', '-v', `unix:${sock}`]);
    const out = await new Promise<string>((resolve) => {
      const child = spawn('socat', ['-t', '5', '-', `UNIX-CONNECT:${sock}`], { stdio: ['pipe', 'pipe', 'ignore'] });
      let got = '';
      child.stdout.on('data', (c: Buffer) => (got += c));
      child.on('close', () => resolve(got));
      child.stdin.end('hello from socat\n');
    });
    expect(out).toBe('hello from socat\n');
  });

  it('sockcat connect unix: talks to socat UNIX-LISTEN', async () => {
    const sock = fresh();
    const child = spawn('socat', [`UNIX-LISTEN:${sock}`, 'SYSTEM:tr a-z A-Z'], { stdio: 'ignore' });
    const until = Date.now() + 5000;
    while (!fs.existsSync(sock) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const r = await runCli(['connect', `unix:${sock}`], { stdin: 'shout\n' });
    expect(r.stdout.toString()).toBe('SHOUT\n');
    child.kill();
  });

  it('access rules: an allow list refuses unix clients (they have no IP); a deny list alone lets them in', async () => {
    const allowSock = fresh();
    const allowing = await serve(['listen', `unix:${allowSock}`, '--echo', '-v', '--allow', '127.0.0.1']);
    const refused = await runCli(['connect', `unix:${allowSock}`], { stdin: 'let me in\n' });
    expect(refused.stdout.length).toBe(0);
    await allowing.waitForStderr(/refused unix:.*: unix-socket clients have no IP address to match --allow/);
    const denySock = fresh();
    await serve(['listen', `unix:${denySock}`, '--echo', '-v', '--deny', '10.0.0.0/8']);
    const served = await runCli(['connect', `unix:${denySock}`], { stdin: 'hello\n' });
    expect(served.stdout.toString()).toBe('hello\n');
  });
});

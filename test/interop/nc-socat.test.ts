/** sockcat against the real tools people use it with: OpenBSD nc, socat, python3. */
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { startCli, runCli } from '../helpers/cli';
import { randomBytes, sha256, waitFor } from '../helpers/net';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Runs a command with stdin, collects stdout; killed after timeoutMs. */
function run(cmd: string, args: string[], stdin: Buffer | string, timeoutMs = 10_000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => (err += c));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

describe.skipIf(!has('nc'))('interop with OpenBSD nc', () => {
  it('nc client → sockcat listen: bytes both ways, half-close honoured', async () => {
    const srv = startCli(['listen', '-v', '0'], { stdin: 'hello from sockcat\n' });
    const port = await srv.listeningPort();
    const payload = randomBytes(256 * 1024);
    // -N: shut down the socket after stdin EOF, so sockcat sees the end of the exchange.
    const nc = await run('nc', ['-N', '127.0.0.1', String(port)], payload);
    expect(nc.stdout.toString()).toBe('hello from sockcat\n');
    const r = await srv.exited;
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(payload));
  });

  it('sockcat connect → nc -l server', async () => {
    // nc cannot report the port it picked, so ask the kernel for a free one first.
    const port = Number(spawnSync('python3', ['-c', 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])']).stdout.toString());
    const nc = spawn('nc', ['-l', '-N', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const got: Buffer[] = [];
    nc.stdout.on('data', (c) => got.push(c));
    nc.stdin.end('reply from nc\n');
    // nc may need a moment to bind: retry connecting a few times (bounded).
    let r: Awaited<ReturnType<typeof runCli>> | undefined;
    for (let i = 0; i < 20; i++) {
      r = await runCli(['connect', `127.0.0.1:${port}`], { stdin: 'hi nc\n' });
      if (r.code === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(r!.code).toBe(0);
    expect(r!.stdout.toString()).toBe('reply from nc\n');
    await waitFor(() => Buffer.concat(got).toString() === 'hi nc\n', 5000, 'nc to receive');
    nc.kill();
  });
});

describe.skipIf(!has('socat'))('interop with socat', () => {
  it('sockcat connect → socat echo server: 1 MiB intact, reply after our EOF', async () => {
    const socat = spawn('socat', ['-d', '-d', 'TCP-LISTEN:0,bind=127.0.0.1,reuseaddr', 'SYSTEM:sleep 0.2; cat'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    socat.stderr.on('data', (c) => (err += c));
    await waitFor(() => /listening on .*:(\d+)/.test(err), 5000, 'socat to listen');
    const port = Number(/listening on .*:(\d+)/.exec(err)![1]);
    const payload = randomBytes(1 << 20);
    const r = await runCli(['connect', `127.0.0.1:${port}`], { stdin: payload });
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(payload));
    socat.kill();
  });

  it('socat client → sockcat listen --echo', async () => {
    const srv = startCli(['listen', '--echo', '-v', '0']);
    const port = await srv.listeningPort();
    const payload = randomBytes(512 * 1024);
    const r = await run('socat', ['-t', '5', '-', `TCP:127.0.0.1:${port}`], payload);
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(payload));
    srv.kill();
    await srv.exited;
  });
});

describe.skipIf(!has('python3'))('interop with a Python socket client (the TD)', () => {
  it('python3 client talks to sockcat listen', async () => {
    const srv = startCli(['listen', '-v', '0'], { stdin: 'bonjour client\n' });
    const port = await srv.listeningPort();
    const py = await run('python3', [
      '-c',
      `import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.connect(("127.0.0.1", ${port}))
    s.sendall(b"bonjour serveur\\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(1024)
        if not chunk: break
        data += chunk
    print(data.decode(), end="")`,
    ], '');
    expect(py.stdout.toString()).toBe('bonjour client\n');
    const r = await srv.exited;
    expect(r.stdout.toString()).toBe('bonjour serveur\n');
  });
});

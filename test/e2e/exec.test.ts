import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli, startCli, type RunningCli } from '../helpers/cli';
import { connect, exchange, readAll, randomBytes, sha256, waitFor } from '../helpers/net';
import { childPids, isGone, waitGone } from '../helpers/proc';

const live = new Set<RunningCli>();

/** Starts `sockcat exec -v 0 …` and waits for its port. */
async function serveExec(args: string[], env?: NodeJS.ProcessEnv): Promise<{ cli: RunningCli; port: number }> {
  const cli = startCli(['exec', '-v', '0', ...args], { env });
  live.add(cli);
  return { cli, port: await cli.listeningPort() };
}

afterEach(async () => {
  for (const cli of live) {
    cli.kill('SIGKILL');
    await cli.exited;
  }
  live.clear();
});

/** Runs a client program (nc, socat) with `input` on its stdin; resolves with its stdout. */
function runClient(cmd: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    child.stdin.end(input);
  });
}

describe('sockcat exec (CLI)', () => {
  it('reports a program missing from PATH at start-up, exit 2', async () => {
    const r = await runCli(['exec', '0', '--', 'no-such-program-xyz', '--flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: program 'no-such-program-xyz' not found in PATH/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a missing program, or both a program and --sh, exit 2', async () => {
    const none = await runCli(['exec', '0']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/missing program/);
    const both = await runCli(['exec', '0', '--sh', 'cat', '--', 'cat']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/not both/);
    const dir = mkdtempSync(path.join(tmpdir(), 'sockcat-exec-'));
    const script = path.join(dir, 'server.sh');
    writeFileSync(script, 'echo hi\n', { mode: 0o644 });
    const notExec = await runCli(['exec', '0', '--', script]);
    rmSync(dir, { recursive: true });
    expect(notExec.code).toBe(2);
    expect(notExec.stderr).toContain(`'${script}' is not executable`);
    const badMax = await runCli(['exec', '0', '--max-children', '0', '--', 'cat']);
    expect(badMax.code).toBe(2);
    // A program's own flag without -- : say where it belongs.
    const noDashes = await runCli(['exec', '0', 'ls', '-l']);
    expect(noDashes.code).toBe(2);
    expect(noDashes.stderr).toMatch(/unknown option -l; the program and its arguments go after --/);
  });

  it('serves 50 concurrent clients with cat', async () => {
    const { cli, port } = await serveExec(['--', 'cat']);
    const payloads = Array.from({ length: 50 }, () => randomBytes(30_000));
    const replies = await Promise.all(payloads.map((p) => exchange(port, p)));
    replies.forEach((r, i) => expect(sha256(r)).toBe(sha256(payloads[i])));
    await waitFor(() => (cli.stderr().match(/exit 0\)/g) ?? []).length === 50, 10_000, '50 closed lines');
  });

  it('passes everything after -- to the program verbatim (flags and numbers included)', async () => {
    const { port } = await serveExec(['--', 'printf', '%s|', '-v', '05', '1e3', '--sh']);
    expect((await exchange(port, '')).toString()).toBe('-v|05|1e3|--sh|');
  });

  it('interop: nc (OpenBSD) and socat as clients of the classroom --sh server', async () => {
    const script = 'echo "Le serveur écoute."; while read CLIENT_MESSAGE; do echo "le serveur répond : $CLIENT_MESSAGE"; done';
    const { port } = await serveExec(['--sh', script]);
    const expected = 'Le serveur écoute.\nle serveur répond : bonjour\nle serveur répond : ça va ?\n';
    // nc -N: shut down the socket's write side at stdin EOF; the answers still arrive after it.
    expect(await runClient('nc', ['-N', '127.0.0.1', String(port)], 'bonjour\nça va ?\n')).toBe(expected);
    expect(await runClient('socat', ['-t', '5', '-', `TCP:127.0.0.1:${port}`], 'bonjour\nça va ?\n')).toBe(expected);
  });

  it('answers nc -N every time, where ncat --sh-exec loses the reply after the half-close (nmap #962)', async () => {
    const { port } = await serveExec(['--', 'cat']);
    for (let i = 0; i < 20; i++) expect(await runClient('nc', ['-N', '127.0.0.1', String(port)], `ping ${i}\n`)).toBe(`ping ${i}\n`);
  });

  it("prefixes the child's stderr lines with the client on sockcat's stderr; --stderr sends them to the client", async () => {
    const script = 'echo out; echo "oops: $SOCKCAT_PEER_ADDR" >&2';
    const a = await serveExec(['--sh', script]);
    const s = await connect(a.port);
    const who = `127.0.0.1:${s.localPort}`;
    const got = readAll(s);
    s.end();
    expect((await got).toString()).toBe('out\n');
    await a.cli.waitForStderr(new RegExp(`\\[${who.replace(/\./g, '\\.')}\\] oops: 127\\.0\\.0\\.1\\n`));
    const b = await serveExec(['--stderr', '--sh', script]);
    expect((await exchange(b.port, '')).toString()).toBe('out\noops: 127.0.0.1\n');
    expect(b.cli.stderr()).not.toContain('oops');
  });

  it('stops its children when it is stopped (SIGTERM), and exits 0', async () => {
    const { cli, port } = await serveExec(['--sh', 'sleep 300 & echo "$$ $!"; wait']);
    const s = await connect(port);
    const line = await new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    const pids = line.trim().split(' ').map(Number);
    expect(pids.some(isGone)).toBe(false);
    cli.kill('SIGTERM');
    const r = await cli.exited;
    expect(r.code).toBe(0);
    await waitGone(pids);
    s.destroy();
  });

  it('stops its children when its terminal hangs up (SIGHUP)', async () => {
    const { cli, port } = await serveExec(['--sh', 'echo $$; exec sleep 300']);
    const s = await connect(port);
    const line = await new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    cli.kill('SIGHUP');
    await cli.exited;
    await waitGone([Number(line.trim())]);
    s.destroy();
  });

  it('leaves no child behind even when stopped hard (a second signal) while a child ignores SIGTERM', async () => {
    const { cli, port } = await serveExec(['--sh', 'trap "" TERM; echo $$; while :; do sleep 0.05; done']);
    const s = await connect(port);
    const line = await new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    const pid = Number(line.trim());
    cli.kill('SIGTERM');
    await cli.waitForStderr(/closed|stopping/, 5000).catch(() => undefined);
    cli.kill('SIGTERM');
    await cli.exited;
    await waitGone([pid]);
    s.destroy();
  });

  it('children die with a SIGKILLed sockcat: the program, what it started, and the spawner (issue #14)', async () => {
    // `sleep` in the background is a grandchild in the child's process group; neither is
    // sockcat's own child (the spawner starts them), so no signal handler of sockcat's is involved.
    const { cli, port } = await serveExec(['--sh', 'sleep 125 & echo $$ $!; wait']);
    const s = await connect(port);
    const line = await new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    const [shPid, sleepPid] = line.trim().split(' ').map(Number);
    const spawners = childPids(cli.child.pid!);
    expect(spawners).toHaveLength(1);
    expect(isGone(shPid) || isGone(sleepPid)).toBe(false);
    cli.kill('SIGKILL');
    await cli.exited;
    await waitGone([shPid, sleepPid, ...spawners], 5000);
    s.destroy();
  });

  it('logs JSON events with the child pid and exit status with --log-format json', async () => {
    const cli = startCli(['exec', '--log-format', 'json', '0', '--sh', 'echo hi; echo warn >&2; exit 3']);
    live.add(cli);
    const port = Number((await cli.waitForStderr(/"address":"127\.0\.0\.1:(\d+)"/))[1]);
    expect((await exchange(port, '')).toString()).toBe('hi\n');
    const closed = await cli.waitForStderr(/\{[^\n]*"event":"close"[^\n]*\}/);
    expect(JSON.parse(closed[0])).toMatchObject({ exit_code: 3, reason: 'eof' });
    expect(cli.stderr()).toMatch(/"event":"stderr"[^\n]*"line":"warn"/);
  });
});

import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliStartedPerTest, runCli, type RunningCli } from '../helpers/cli';
import { connect, readAll, tcpServer, waitFor } from '../helpers/net';
import { encodeProxyV1 } from '../../src/proxy-protocol';
import { startAgent, startRelay } from '../helpers/tunnel';

const sockcat = cliStartedPerTest();
const run = promisify(execFile);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-allow-link-'));
  dirs.push(d);
  return d;
}

/** curl, as a friend's browser would: status code, Location header and body. */
async function visit(url: string, headers: string[] = []): Promise<{ code: number; location: string; body: string; seconds: number }> {
  const args = ['-s', '--max-time', '20', '-o', '-', '-w', '\n%{http_code} %{redirect_url} %{time_total}', ...headers.flatMap((h) => ['-H', h]), url];
  const { stdout } = await run('curl', args);
  const nl = stdout.lastIndexOf('\n');
  const [code, location, seconds] = stdout.slice(nl + 1).split(' ');
  return { code: Number(code), location, body: stdout.slice(0, nl), seconds: Number(seconds) };
}

/** True when a client of `port` gets its bytes echoed, false when it is shut out. */
async function letIn(port: number, header?: Buffer): Promise<boolean> {
  const s = await connect(port);
  s.on('error', () => {});
  const got = readAll(s).catch(() => Buffer.alloc(0));
  s.end(Buffer.concat([header ?? Buffer.alloc(0), Buffer.from('knock')]));
  return (await got).toString() === 'knock';
}

async function newLink(file: string, label: string, ttl?: string): Promise<string> {
  const r = await runCli(['allow-link', 'new', label, '--file', file, ...(ttl ? ['--ttl', ttl] : [])]);
  expect(r.code).toBe(0);
  return r.stdout.toString().trim();
}

/** An echo service behind `sockcat listen -k --echo` with allow links; returns both ports. */
async function start(dir: string, extra: string[] = []): Promise<{ cli: RunningCli; port: number; links: number }> {
  const cli = sockcat(['listen', '-k', '--echo', '-v', '--allow-file', path.join(dir, 'allow.txt'), '--allow-link', '0', '--allow-link-file', path.join(dir, 'links.txt'), ...extra, '0']);
  const port = await cli.listeningPort();
  const links = Number((await cli.waitForStderr(/allow links on http:\/\/127\.0\.0\.1:(\d+)\/LINKID/))[1]);
  return { cli, port, links };
}

describe('allow links (CLI, MySafeIP-style)', () => {
  it('relay: a link lets a friend into every tunnel; the allow file stays watched after a tunnel ends; refused flags', async () => {
    const dir = tmpdir();
    const allowFile = path.join(dir, 'allow.txt');
    fs.writeFileSync(allowFile, '192.0.2.1\n');
    const id = await newLink(path.join(dir, 'links.txt'), 'cousin');
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(sockcat, ['--allow-file', allowFile, '--allow-link', '0', '--allow-link-file', path.join(dir, 'links.txt')]);
    const links = Number((await relay.cli.waitForStderr(/allow links on http:\/\/127\.0\.0\.1:(\d+)\/LINKID/))[1]);
    const first = await startAgent(sockcat, echo.port, relay);
    expect(await letIn(first.publicPort)).toBe(false);
    expect((await visit(`http://127.0.0.1:${links}/${id}`)).code).toBe(200);
    expect(await letIn(first.publicPort)).toBe(true);
    await relay.cli.waitForStderr(/127\.0\.0\.1 let in for 12 h by link cousin/);
    // The first tunnel goes; the relay's allow file (shared by every tunnel) is still watched:
    // a line added by hand lets a new address into the next tunnel.
    first.cli.kill('SIGTERM');
    await relay.cli.waitForStderr(/agent default .* gone after/, 15_000);
    const second = await startAgent(sockcat, echo.port, relay);
    expect(await letIn(second.publicPort)).toBe(true);
    const from3 = async () => {
      const s = net.connect({ port: second.publicPort, host: '127.0.0.1', localAddress: '127.0.0.3', allowHalfOpen: true });
      s.on('error', () => {});
      const got = readAll(s).catch(() => Buffer.alloc(0));
      s.end('knock');
      return (await got).toString() === 'knock';
    };
    expect(await from3()).toBe(false);
    fs.appendFileSync(allowFile, '127.0.0.3\n');
    let in3 = false;
    for (let i = 0; i < 40 && !in3; i++) {
      in3 = await from3();
      if (!in3) await new Promise((r) => setTimeout(r, 100));
    }
    expect(in3).toBe(true);
    await echo.close();
    const r = await runCli(['relay', '--control', '0', '--token', 'tunnel-test-token-0123456789', '--drain-timeout', '5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--drain-timeout is not available in relay/);
  }, 60_000);

  it('allow-link new prints a 144-bit URL-safe ID and appends ID LABEL [TTL]', async () => {
    const dir = tmpdir();
    const file = path.join(dir, 'links.txt');
    const a = await newLink(file, 'grandma');
    const b = await newLink(file, 'bob-phone', '2h');
    expect(a).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(18);
    expect(a).not.toBe(b);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${a} grandma\n${b} bob-phone 2h\n`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    for (const args of [['allow-link', 'new', 'two words', '--file', file], ['allow-link', 'new', 'x'], ['allow-link', 'new', 'x', '--file', file, '--ttl', 'soon'], ['allow-link', 'old', 'x', '--file', file]]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('a refused client opens its link with curl and is let in; the grant is in the allow file; unknown links get 404 and a guesser is slowed down', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '# family\n192.0.2.1\n');
    const id = await newLink(path.join(dir, 'links.txt'), 'grandma');
    const { cli, port, links } = await start(dir);
    expect(await letIn(port)).toBe(false);
    await cli.waitForStderr(/refused 127\.0\.0\.1:\d+: not in the allow list/);

    const page = await visit(`http://127.0.0.1:${links}/${id}`);
    expect(page.code).toBe(200);
    expect(page.body).toContain('Your address 127.0.0.1 is let in until');
    // In at once, without waiting for the allow file to be re-read.
    expect(await letIn(port)).toBe(true);
    await cli.waitForStderr(/127\.0\.0\.1 let in for 12 h by link grandma/);
    const allow = fs.readFileSync(path.join(dir, 'allow.txt'), 'utf8');
    expect(allow).toMatch(/^# family\n192\.0\.2\.1\n127\.0\.0\.1 # allow-link grandma until \d{4}-\d\d-\d\dT[\d:.]+Z link=[0-9a-f]{12}\n$/);
    expect(allow).not.toContain(id);

    // Guessing: 404 each time, logged, and after 5 misses each answer takes longer.
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await visit(`http://127.0.0.1:${links}/${id}x${i}`);
      expect(r.code).toBe(404);
      times.push(r.seconds);
    }
    await cli.waitForStderr(/127\.0\.0\.1 asked for an unknown link \(8 in the last 10 min\)/);
    // Misses 6, 7, 8 wait 0.25, 0.5 and 1 s at least.
    expect(times[7]).toBeGreaterThanOrEqual(0.9);
    // Many at once from a slowed-down source: at most 4 are held, the rest get 429 straight away.
    const get = (url: string) =>
      new Promise<number>((resolve, reject) => http.get(url, { agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject));
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`http://127.0.0.1:${links}/${id}y${i}`)));
    expect(burst.filter((c) => c === 429).length).toBeGreaterThanOrEqual(4);
    expect(burst.every((c) => c === 429 || c === 404)).toBe(true);
    expect(cli.stderr()).not.toContain(id);
  });

  it('a grant expires on its own after a short TTL: out of the allow list and the file, logged with its label', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    const id = await newLink(path.join(dir, 'links.txt'), 'cousin', '2s');
    const { cli, port, links } = await start(dir);
    expect((await visit(`http://127.0.0.1:${links}/${id}`)).code).toBe(200);
    expect(await letIn(port)).toBe(true);
    await cli.waitForStderr(/127\.0\.0\.1 \(link cousin\) expired: no longer let in/, 10_000);
    expect(fs.readFileSync(path.join(dir, 'allow.txt'), 'utf8')).toBe('');
    await waitFor(() => /allow file .* holds no address|allow file loaded: 0/.test(cli.stderr().split('expired')[1] ?? ''), 5000, 'the allow file re-read');
    expect(await letIn(port)).toBe(false);
  });

  it('deleting a link\'s line revokes it: 404, and whoever it let in is shut out again', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    const linkFile = path.join(dir, 'links.txt');
    const keep = await newLink(linkFile, 'keeper');
    const id = await newLink(linkFile, 'neighbour');
    const { cli, port, links } = await start(dir);
    expect((await visit(`http://127.0.0.1:${links}/${id}`)).code).toBe(200);
    expect(await letIn(port)).toBe(true);
    fs.writeFileSync(linkFile, `${keep} keeper\n`);
    await cli.waitForStderr(/link neighbour revoked: 127\.0\.0\.1 no longer let in/, 10_000);
    expect((await visit(`http://127.0.0.1:${links}/${id}`)).code).toBe(404);
    await waitFor(() => !fs.readFileSync(path.join(dir, 'allow.txt'), 'utf8').includes('127.0.0.1'), 5000, 'grant gone from the file');
    await new Promise((r) => setTimeout(r, 600)); // the allow file's next poll
    expect(await letIn(port)).toBe(false);
    // The other link still works.
    expect((await visit(`http://127.0.0.1:${links}/${keep}`)).code).toBe(200);
  });

  it('a restart keeps what was granted (and forgets what expired meanwhile)', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    const id = await newLink(path.join(dir, 'links.txt'), 'friend');
    const first = await start(dir);
    expect((await visit(`http://127.0.0.1:${first.links}/${id}`)).code).toBe(200);
    first.cli.kill('SIGTERM');
    expect((await first.cli.exited).code).toBe(0);
    // An old grant that ran out while sockcat was stopped.
    fs.appendFileSync(path.join(dir, 'allow.txt'), `198.51.100.7 # allow-link friend until 2020-01-01T00:00:00.000Z link=000000000000\n`);
    const second = await start(dir);
    expect(await letIn(second.port)).toBe(true);
    await waitFor(() => !fs.readFileSync(path.join(dir, 'allow.txt'), 'utf8').includes('198.51.100.7'), 5000, 'the stale grant removed');
    expect(fs.readFileSync(path.join(dir, 'allow.txt'), 'utf8')).toMatch(/^127\.0\.0\.1 # allow-link friend until/);
  });

  it('behind a proxy: the visitor is the X-Forwarded-For client of a --trusted-proxy, and is let in through --accept-proxy-protocol', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    const id = await newLink(path.join(dir, 'links.txt'), 'remote');
    const backend = await tcpServer((s) => s.pipe(s));
    const cli = sockcat([
      'forward', '-v', '--allow-file', path.join(dir, 'allow.txt'), '--allow-link', '0', '--allow-link-file', path.join(dir, 'links.txt'),
      '--allow-link-redirect', 'https://cloud.example.org/', '--trusted-proxy', '127.0.0.1', '0', `127.0.0.1:${backend.port}`,
    ]);
    const port = await cli.listeningPort();
    const links = Number((await cli.waitForStderr(/allow links on http:\/\/127\.0\.0\.1:(\d+)\//))[1]);
    const r = await visit(`http://127.0.0.1:${links}/${id}`, ['X-Forwarded-For: 10.9.9.9, 203.0.113.44']);
    expect(r.code).toBe(303);
    expect(r.location).toBe('https://cloud.example.org/');
    await cli.waitForStderr(/203\.0\.113\.44 let in for 12 h by link remote/);
    // 127.0.0.1 itself was not let in (it only relayed the visit).
    expect(await letIn(port)).toBe(false);
    await backend.close();

    // The same address arriving through a PROXY header is let in.
    const dir2 = tmpdir();
    fs.writeFileSync(path.join(dir2, 'allow.txt'), fs.readFileSync(path.join(dir, 'allow.txt')));
    fs.copyFileSync(path.join(dir, 'links.txt'), path.join(dir2, 'links.txt'));
    const behind = sockcat(['listen', '-k', '--echo', '-v', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1', '--allow-file', path.join(dir2, 'allow.txt'), '0']);
    const p2 = await behind.listeningPort();
    expect(await letIn(p2, encodeProxyV1({ address: '203.0.113.44', port: 5555 }, { address: '127.0.0.1', port: p2 }))).toBe(true);
    expect(await letIn(p2, encodeProxyV1({ address: '203.0.113.45', port: 5555 }, { address: '127.0.0.1', port: p2 }))).toBe(false);
  });

  it('serves the links over HTTPS with --tls (an ephemeral certificate here; --cert/--key for a real one)', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    const id = await newLink(path.join(dir, 'links.txt'), 'tls-friend');
    const cli = sockcat(['listen', '-k', '--echo', '--tls', '-v', '--allow-file', path.join(dir, 'allow.txt'), '--allow-link', '0', '--allow-link-file', path.join(dir, 'links.txt'), '0']);
    const links = Number((await cli.waitForStderr(/allow links on https:\/\/127\.0\.0\.1:(\d+)\/LINKID/))[1]);
    const fingerprint = (await cli.waitForStderr(/SHA-256 fingerprint ([0-9A-F:]+)/))[1];
    expect(fingerprint).toMatch(/^[0-9A-F:]{95}$/);
    // Plain HTTP to the TLS endpoint grants nothing.
    await run('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${links}/${id}`]).catch(() => undefined);
    const r = await visit(`https://127.0.0.1:${links}/${id}`, []).catch(() => undefined);
    expect(r).toBeUndefined(); // curl verifies: an ephemeral certificate is not trusted without -k
    const { stdout } = await run('curl', ['-sk', '--max-time', '10', `https://127.0.0.1:${links}/${id}`]);
    expect(stdout).toContain('Your address 127.0.0.1 is let in');
    await cli.waitForStderr(/127\.0\.0\.1 let in for 12 h by link tls-friend/);
  });

  it.each([
    [['--allow-link', '0'], /needs --allow-link-file/],
    [['--allow-link', 'tls:0', '--allow-link-file', 'links.txt', '--allow-file', 'allow.txt', '--accept-proxy-protocol', '--trusted-proxy', '127.0.0.1'], /cannot read a PROXY header yet/],
    [['--allow-link', '0', '--allow-link-file', 'links.txt'], /needs --allow-file/],
    [['--allow-link-file', 'links.txt'], /go with --allow-link ADDR/],
    [['--allow-link', '0', '--allow-link-file', 'links.txt', '--allow-file', 'allow.txt', '--allow-link-ttl', 'forever'], /--allow-link-ttl takes a duration/],
    [['--allow-link', '0', '--allow-link-file', 'links.txt', '--allow-file', 'allow.txt', '--allow-link-redirect', 'javascript:alert(1)'], /http:\/\/ or https:\/\/ URL/],
    [['--allow-link', '0', '--allow-link-file', 'missing.txt', '--allow-file', 'allow.txt'], /missing\.txt: no such file/],
  ])('refuses %j with exit 2', async (flags, message) => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'allow.txt'), '');
    fs.writeFileSync(path.join(dir, 'links.txt'), '');
    const args = (flags as string[]).map((f) => (/\.txt$/.test(f) ? path.join(dir, f) : f));
    const r = await runCli(['listen', '-k', '--echo', ...args, '0']);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

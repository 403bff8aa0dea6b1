/**
 * A NAT, simulated: three network namespaces made by this test (root only; skipped with a note
 * otherwise). "priv" holds LOCAL (python3 -m http.server) and the agent, behind a "router" that
 * masquerades its outgoing connections; "pub" holds the relay and the public client, and has no
 * route to priv's network, as the internet has none to a home LAN. A direct connection from pub
 * fails; the tunnel works, and the agent's log names the public client's real address.
 * Addresses are from the documentation ranges (198.51.100.0/24, 203.0.113.0/24).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { cliStartedPerTest, sockcatCommand } from '../helpers/cli';
import { TOKEN, waitForNth } from '../helpers/tunnel';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.getuid?.() === 0;
const missing = ['ip', 'nft', 'python3', 'curl'].filter((c) => !has(c));
const skip = !isRoot || missing.length > 0;
if (skip) console.warn(`tunnel NAT test skipped: ${!isRoot ? 'needs root for network namespaces' : `missing ${missing.join(', ')}`}`);

const id = randomBytes(3).toString('hex');
const ns = { priv: `scpriv-${id}`, router: `scrtr-${id}`, pub: `scpub-${id}` };
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
const inNs = (name: string, ...cmd: string[]) => execFileSync('ip', ['netns', 'exec', name, ...cmd], { stdio: 'pipe' });

function setUp(): void {
  for (const n of Object.values(ns)) ip('netns', 'add', n);
  ip('link', 'add', `vp-${id}`, 'type', 'veth', 'peer', 'name', `vr1-${id}`);
  ip('link', 'add', `vu-${id}`, 'type', 'veth', 'peer', 'name', `vr2-${id}`);
  ip('link', 'set', `vp-${id}`, 'netns', ns.priv);
  ip('link', 'set', `vr1-${id}`, 'netns', ns.router);
  ip('link', 'set', `vu-${id}`, 'netns', ns.pub);
  ip('link', 'set', `vr2-${id}`, 'netns', ns.router);
  inNs(ns.priv, 'ip', 'addr', 'add', '198.51.100.2/24', 'dev', `vp-${id}`);
  inNs(ns.router, 'ip', 'addr', 'add', '198.51.100.1/24', 'dev', `vr1-${id}`);
  inNs(ns.router, 'ip', 'addr', 'add', '203.0.113.1/24', 'dev', `vr2-${id}`);
  inNs(ns.pub, 'ip', 'addr', 'add', '203.0.113.2/24', 'dev', `vu-${id}`);
  for (const [n, dev] of [[ns.priv, `vp-${id}`], [ns.router, `vr1-${id}`], [ns.router, `vr2-${id}`], [ns.pub, `vu-${id}`]]) inNs(n, 'ip', 'link', 'set', dev, 'up');
  for (const n of Object.values(ns)) inNs(n, 'ip', 'link', 'set', 'lo', 'up');
  inNs(ns.priv, 'ip', 'route', 'add', 'default', 'via', '198.51.100.1');
  inNs(ns.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  // The home router: outgoing connections leave with its public address; nothing comes in unasked.
  inNs(ns.router, 'nft', `add table ip nat; add chain ip nat post { type nat hook postrouting priority 100 ; } ; add rule ip nat post oifname "vr2-${id}" masquerade`);
}

function tearDown(): void {
  for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
}

const start = cliStartedPerTest();
const children: ChildProcess[] = [];

describe.skipIf(skip)('tunnel through a simulated NAT (network namespaces)', () => {
  beforeAll(() => {
    try {
      setUp();
    } catch (err) {
      tearDown();
      throw err;
    }
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    tearDown();
  });

  it('a direct connection from the public side fails; through relay and expose it works, with the real client address logged', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-nat-'));
    fs.writeFileSync(path.join(dir, 'index.html'), 'hello from behind the NAT\n');
    // LOCAL listens on every address of the private machine: only the NAT keeps the world out.
    const py = spawn('ip', ['netns', 'exec', ns.priv, 'python3', '-u', '-m', 'http.server', '0', '--bind', '0.0.0.0', '--directory', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(py);
    const pyPort = await new Promise<number>((resolve, reject) => {
      let out = '';
      py.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /port (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      py.once('exit', () => reject(new Error(`http.server exited: ${out}`)));
    });

    // No way in: neither to the private address (no route) nor through the router (no port forward).
    const direct = spawnSync('ip', ['netns', 'exec', ns.pub, 'curl', '-sS', '--max-time', '3', `http://198.51.100.2:${pyPort}/`], { encoding: 'utf8' });
    expect(direct.status).not.toBe(0);
    expect(direct.stderr).toMatch(/unreachable|Failed to connect|timed out/i);
    const viaRouter = spawnSync('ip', ['netns', 'exec', ns.pub, 'curl', '-sS', '--max-time', '3', `http://203.0.113.1:${pyPort}/`], { encoding: 'utf8' });
    expect(viaRouter.status).not.toBe(0);

    const inNamespace = (n: string): [string, string[]] => ['ip', ['netns', 'exec', n, ...sockcatCommand().flat()]];
    const relay = start(['relay', '--control', '203.0.113.2:0', '--public-host', '203.0.113.2', '--http', '203.0.113.2:0', '--domain', 't.example.org', '--token', TOKEN, '-v'], { command: inNamespace(ns.pub) });
    const httpPort = Number((await relay.waitForStderr(/named tunnels on http:\/\/\*\.t\.example\.org:(\d+)\//, 20_000))[1]);
    const m = await relay.waitForStderr(/agents connect to 203\.0\.113\.2:(\d+) \(TLS, .*fingerprint ([0-9A-F:]{95})/, 20_000);
    const agent = start(['expose', `127.0.0.1:${pyPort}`, '--via', `203.0.113.2:${m[1]}`, '--token', TOKEN, '--fingerprint', m[2], '--name', 'youpi', '-v'], { command: inNamespace(ns.priv) });
    const pub = Number((await agent.waitForStderr(/public: 203\.0\.113\.2:(\d+)/, 20_000))[1]);
    // The relay saw the agent come from the router's public address: it went through the NAT.
    await relay.waitForStderr(/agent default \(203\.0\.113\.1:\d+\) connected/);

    const viaTunnel = spawnSync('ip', ['netns', 'exec', ns.pub, 'curl', '-sS', '--max-time', '10', `http://203.0.113.2:${pub}/index.html`], { encoding: 'utf8' });
    expect(viaTunnel.stderr).toBe('');
    expect(viaTunnel.stdout).toBe('hello from behind the NAT\n');
    // The agent's access log names the public client, not 127.0.0.1.
    await agent.waitForStderr(/closed 203\.0\.113\.2:\d+ → 127\.0\.0\.1:\d+: \d+ bytes in, \d+ bytes out, [\d.]+ m?s \(eof\)/);
    // And by name, as the README's walkthrough does it: http://youpi.t.example.org/ through the shared --http port.
    await agent.waitForStderr(new RegExp(`public: http://youpi\\.t\\.example\\.org:${httpPort}/`));
    const byName = spawnSync('ip', ['netns', 'exec', ns.pub, 'curl', '-sS', '--max-time', '10', '--resolve', `youpi.t.example.org:${httpPort}:203.0.113.2`, `http://youpi.t.example.org:${httpPort}/index.html`], { encoding: 'utf8' });
    expect(byName.stdout).toBe('hello from behind the NAT\n');
    await waitForNth(agent, /closed 203\.0\.113\.2:\d+ → 127\.0\.0\.1:\d+/, 2);
    py.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});

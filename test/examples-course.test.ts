/**
 * examples/README.md, run as written: every block ("# exercice : NAME") starts its servers (the
 * lines ending in &) with port 0 instead of the port on the page, then the commands a student
 * types run with the real ports in their place, and each exercise is checked the way the course
 * checks it. A block without a check, or a check without a block, fails.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithSockcat } from './helpers/path';
import { sleep } from './helpers/net';

const root = fileURLToPath(new URL('..', import.meta.url));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

interface Block {
  name: string;
  /** Lines ending in &, without it. */
  servers: string[];
  /** Lines before the first server (e.g. making a certificate): run to completion first, in a scratch directory. */
  setup: string[];
  /** The other lines, in order. */
  commands: string[];
}

/** The exercise blocks of examples/README.md. */
function readBlocks(): Block[] {
  const text = readFileSync(`${root}examples/README.md`, 'utf8');
  const blocks: Block[] = [];
  for (const m of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = m[1].split('\n').filter((l) => l.trim() !== '');
    const head = /^# exercice : (\S+)$/.exec(lines[0] ?? '');
    if (!head) continue;
    const block: Block = { name: head[1], servers: [], setup: [], commands: [] };
    for (const raw of lines.slice(1)) {
      // A comment after the command starts with two spaces and '#', as on the page.
      const line = raw.replace(/\s{2,}#.*$/, '').trim();
      if (line.startsWith('#')) continue;
      if (line.endsWith('&')) block.servers.push(line.slice(0, -1).trim());
      else if (block.servers.length === 0) block.setup.push(line);
      else block.commands.push(line);
    }
    blocks.push(block);
  }
  return blocks;
}

/** A shell running one line of a block, in its own process group (killed whole afterwards). */
interface Shell {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  waitFor(re: RegExp, where?: 'stdout' | 'stderr', timeoutMs?: number): Promise<RegExpMatchArray>;
  write(text: string): void;
  end(): void;
  exited: Promise<number | null>;
}

const started: Shell[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) {
    try {
      process.kill(-s.child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await s.exited;
  }
});

function shell(line: string, cwd: string): Shell {
  const child = spawn('sh', ['-c', line], { cwd, env: envWithSockcat(), detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  child.stdin!.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const s: Shell = {
    child,
    stdout: () => out,
    stderr: () => err,
    write: (text) => child.stdin!.write(text),
    end: () => child.stdin!.end(),
    exited,
    waitFor: async (re, where = 'stdout', timeoutMs = 15_000) => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const m = (where === 'stdout' ? out : err).match(re);
        if (m) return m;
        if (done || Date.now() > until) throw new Error(`${line}: ${done ? 'exited' : 'timed out'} before ${where} showed ${re}\nstdout: ${out}\nstderr: ${err}`);
        await sleep(25);
      }
    },
  };
  started.push(s);
  return s;
}

/** Runs a line to the end with `stdin`; resolves with its exit code and output. */
async function run(line: string, cwd: string, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const s = shell(line, cwd);
  s.child.stdin!.end(stdin);
  const timer = setTimeout(() => process.kill(-s.child.pid!, 'SIGKILL'), 20_000);
  const code = await s.exited;
  clearTimeout(timer);
  return { code, stdout: s.stdout(), stderr: s.stderr() };
}

/** The port a server line listens on, as written: the first number that is a port, not part of an address. */
function writtenPort(line: string): string {
  const m = /(?<![\d.])(\d{2,5})(?![\d.])/.exec(line);
  if (!m) throw new Error(`no port in server line: ${line}`);
  return m[1];
}

/**
 * Starts a block's servers: each on port 0 with -v, in the block's order; a later line sees the
 * real ports of the earlier ones. Returns the running servers and the commands with real ports.
 */
async function startBlock(block: Block, cwd: string): Promise<{ servers: Shell[]; commands: string[] }> {
  const ports = new Map<string, number>();
  const withPorts = (line: string) => {
    for (const [written, real] of ports) line = line.replace(new RegExp(`(?<![\\d.])${written}(?![\\d.])`, 'g'), String(real));
    return line;
  };
  const servers: Shell[] = [];
  for (const line of block.servers) {
    const written = writtenPort(line);
    expect(ports.has(written), `${block.name}: each server of a block listens on its own port number`).toBe(false);
    // Port 0 in place of the written one (after the earlier servers' substitution), and -v for the "listening on" line.
    const local = withPorts(line).replace(new RegExp(`(?<![\\d.])${written}(?![\\d.])`), '0').replace(/\bsockcat (\w+) /, 'sockcat $1 -v ');
    const s = shell(local, cwd);
    const port = Number((await s.waitFor(/listening on .*:(\d+)/, 'stderr'))[1]);
    ports.set(written, port);
    servers.push(s);
  }
  return { servers, commands: block.commands.map(withPorts) };
}

/** How each exercise is checked, given its servers and commands (real ports in place). */
const checks: Record<string, (b: { servers: Shell[]; commands: string[]; cwd: string }) => Promise<void>> = {
  nc: async ({ servers: [server], commands: [client], cwd }) => {
    const c = shell(client, cwd);
    c.write('bonjour du client\n');
    await server.waitFor(/^bonjour du client\n$/);
    server.write('bonjour du serveur\n');
    await c.waitFor(/^bonjour du serveur\n$/);
    // Ctrl-D in the client: its FIN reaches the server, which ends the exchange; then the client.
    c.end();
    server.end();
    expect(await server.exited).toBe(0);
    expect(await c.exited).toBe(0);
  },
  echo: async ({ commands: [client], cwd }) => {
    const r = await run(client, cwd, 'bonjour\nça va ?\n');
    expect(r.stdout).toBe('Le serveur écoute.\nle serveur répond : bonjour\nle serveur répond : ça va ?\n');
    expect(r.code).toBe(0);
  },
  'mono-ligne': async ({ commands: [client], cwd }) => {
    const [a, b] = await Promise.all([run(client, cwd, 'un\n'), run(client, cwd, 'deux\n')]);
    expect(a.stdout).toBe('le serveur répond : un\n');
    expect(b.stdout).toBe('le serveur répond : deux\n');
  },
  'echo-a-tous': async ({ commands: [client], cwd }) => {
    const alice = shell(client, cwd);
    await alice.waitFor(/you are (user\d+)/);
    const bob = shell(client, cwd);
    const bobName = (await bob.waitFor(/you are (user\d+)/))[1];
    await alice.waitFor(new RegExp(`${bobName} joined`));
    alice.write('bonjour à tous\n');
    await bob.waitFor(/<user\d+> bonjour à tous\n/);
    expect(alice.stdout()).not.toMatch(/<user\d+> bonjour à tous/);
    alice.end();
    bob.end();
  },
  'deux-sauts': async ({ servers: [roucas, sas1, soHigh], commands: [client], cwd }) => {
    const c = shell(client, cwd);
    c.write('bonjour roucas\n');
    await roucas.waitFor(/^bonjour roucas\n$/);
    // Both ways, through both relays: what roucas101.etu types reaches so-high.
    roucas.write('bonjour so-high\n');
    await c.waitFor(/^bonjour so-high\n$/);
    // The bytes went through both relays: each logged the connection it carries.
    for (const hop of [soHigh, sas1, roucas]) await hop.waitFor(/connection from 127\.0\.0\.1:\d+/, 'stderr');
    c.end();
  },
  'serveur-shell': async ({ commands: [client], cwd }) => {
    const r = await run(client, cwd, 'hello\nheure\nfichier hello.sh\nfichier ../package.json\nfichier rien.txt\nquit\nhello\n');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('commandes : hello, heure, fichier NOM, quit');
    expect(lines[1]).toBe('hello');
    expect(lines[2]).toMatch(/^\d\d:\d\d:\d\d$/);
    const hello = readFileSync(`${root}examples/hello.sh`, 'utf8');
    expect(r.stdout).toContain(hello);
    expect(r.stdout).toContain("erreur : nom de fichier refusé : '../package.json'");
    expect(r.stdout).toContain('erreur : fichier introuvable : rien.txt');
    // quit hangs up: the hello after it is never answered.
    expect(r.stdout.endsWith('au revoir\n')).toBe(true);
    expect(r.code).toBe(0);
  },
  'td-python': async ({ commands, cwd }) => {
    expect(commands).toHaveLength(2);
    for (const line of commands) {
      const r = await run(line, cwd);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe("Received b'Hello, world'\n");
    }
    expect(commands[1]).toMatch(/td_client\.py ::1 \d+$/);
  },
  web: async ({ commands: [curl], cwd }) => {
    const r = await run(curl, cwd);
    expect(r.stdout).toMatch(/^HTTP\/1\.0 200 OK\r\n/);
    expect(r.stdout).toContain('<h1>Bonjour !</h1>');
  },
  'tls-echo': async ({ commands: [client], cwd }) => {
    expect(client).toMatch(/^gnutls-cli --x509cafile cert\.pem /);
    const r = await run(client, cwd, 'bonjour TLS\n');
    expect(r.stdout).toContain('bonjour TLS\n');
    expect(r.stdout + r.stderr).toMatch(/Handshake was completed/);
  },
};

const blocks = readBlocks();

describe('examples/README.md: the course exercises', () => {
  it('has a check for every exercise and an exercise for every check', () => {
    expect(blocks.map((b) => b.name).sort()).toEqual(Object.keys(checks).sort());
  });

  const needs: Record<string, string[]> = { 'mono-ligne': ['nc'], 'td-python': ['python3'], web: ['curl'], 'tls-echo': ['openssl', 'gnutls-cli'] };

  it.each(blocks.map((b) => [b.name, b] as const))('%s works as written', async (name, block) => {
    const missing = (needs[name] ?? []).filter((cmd) => !has(cmd));
    if (missing.length) return console.warn(`examples: ${name} not run, missing ${missing.join(', ')}`);
    // A block that makes files first (a certificate) runs in a scratch directory, not in the repository.
    const cwd = block.setup.length ? mkdtempSync(path.join(os.tmpdir(), `sockcat-${name}-`)) : root;
    for (const line of block.setup) expect((await run(line, cwd)).code, line).toBe(0);
    const { servers, commands } = await startBlock(block, cwd);
    await checks[name]({ servers, commands, cwd });
  });
});

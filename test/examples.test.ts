/**
 * Every script in examples/ is served the way its header says ("# Serve it:  sockcat exec …",
 * with port 0) and spoken to like a student would.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startCli, type RunningCli } from './helpers/cli';
import { exchange } from './helpers/net';

const root = fileURLToPath(new URL('..', import.meta.url));
const examplesDir = `${root}examples`;

/** The command line in an example's header, as [env, sockcat args] with port 0 and -v. */
function serveCommand(file: string): { env: Record<string, string>; args: string[] } {
  const text = readFileSync(`${examplesDir}/${file}`, 'utf8');
  const m = /^# Serve it:\s+(.*)$/m.exec(text);
  if (!m) throw new Error(`${file}: no "# Serve it:" line in its header`);
  const words = m[1].trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_]+=/.test(words[0])) {
    const [k, v] = words.shift()!.split('=');
    env[k] = v;
  }
  expect(words.slice(0, 2)).toEqual(['sockcat', 'exec']);
  const [, , port, ...rest] = words;
  expect(port).toMatch(/^\d+$/);
  return { env, args: ['exec', '-v', '0', ...rest] };
}

/** What a client says to each example, and what it must hear back. */
const dialogues: Record<string, (port: number) => Promise<void>> = {
  'repond.sh': async (port) => {
    const reply = await exchange(port, 'bonjour\nau revoir\n');
    expect(reply.toString()).toBe('Le serveur écoute.\nle serveur répond : bonjour\nle serveur répond : au revoir\n');
  },
  'hello.sh': async (port) => {
    expect((await exchange(port, 'hello\r\nbonjour\nhello\n')).toString()).toBe('hello\nje ne connais que : hello\nhello\n');
  },
  'time.sh': async (port) => {
    const reply = (await exchange(port, '')).toString();
    expect(reply).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\n$/);
    const year = Number(reply.slice(0, 4));
    expect(year).toBe(new Date().getFullYear());
  },
  'file.sh': async (port) => {
    // Served from examples/ (SERVE_DIR in the header): an existing file, a missing one, a path.
    expect((await exchange(port, 'hello.sh\n')).toString()).toBe(readFileSync(`${examplesDir}/hello.sh`, 'utf8'));
    expect((await exchange(port, 'nothing-here.txt\n')).toString()).toBe('erreur : fichier introuvable : nothing-here.txt\n');
    expect((await exchange(port, '../package.json\n')).toString()).toMatch(/^erreur : nom de fichier refusé/);
  },
  'protocole.sh': async (port) => {
    const reply = (await exchange(port, 'hello\r\nheure\nfichier time.sh\nfichier .env\nbof\n')).toString().split('\n');
    expect(reply[0]).toBe('commandes : hello, heure, fichier NOM, quit');
    expect(reply[1]).toBe('hello');
    expect(reply[2]).toMatch(/^\d\d:\d\d:\d\d$/);
    expect(reply.slice(3).join('\n')).toContain(readFileSync(`${examplesDir}/time.sh`, 'utf8'));
    expect(reply).toContain("erreur : nom de fichier refusé : '.env' (un nom simple, sans / ni . au début)");
    expect(reply).toContain('commande inconnue : bof (commandes : hello, heure, fichier NOM, quit)');
  },
  'web.sh': async (port) => {
    // curl, as in the header: a 200 with a small HTML body whose length matches Content-Length.
    const out = execFileSync('curl', ['-sS', '-i', '--max-time', '10', `http://127.0.0.1:${port}/`]).toString();
    const [head, body] = out.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.0 200 OK\r\n/);
    expect(body).toContain('<h1>Bonjour !</h1>');
    expect(body).toContain('vous venez de 127.0.0.1.');
    expect(Number(/Content-Length: (\d+)/.exec(head)![1])).toBe(Buffer.byteLength(body));
    const missing = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://127.0.0.1:${port}/nope`]).toString();
    expect(missing).toBe('404');
  },
};

const live = new Set<RunningCli>();
afterEach(async () => {
  for (const cli of live) {
    cli.kill('SIGKILL');
    await cli.exited;
  }
  live.clear();
});

describe('examples/', () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith('.sh'));

  it('has a test for every example script', () => {
    expect(files.sort()).toEqual(Object.keys(dialogues).sort());
  });

  it.each(files)('%s works when served as its header says', async (file) => {
    const { env, args } = serveCommand(file);
    const cli = startCli(args, { env, cwd: root });
    live.add(cli);
    const port = await cli.listeningPort();
    await dialogues[file](port);
    cli.kill('SIGTERM');
    expect((await cli.exited).code).toBe(0);
    // No example writes to stderr in normal use.
    expect(cli.stderr()).not.toMatch(/^\[/m);
  });
});

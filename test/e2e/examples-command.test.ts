/**
 * `sockcat examples`: the course scripts travel inside sockcat. Run from a copy of the bundle in
 * an empty directory (no examples/ anywhere near), it still lists and prints every one, and a
 * printed script serves clients through `exec --sh "$(sockcat examples NAME)"`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readExampleFiles } from '../../src/examples';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliStartedPerTest, CLI_PATH } from '../helpers/cli';
import { NODE_FLAGS, PINNED_NODE } from '../../scripts/runtime.mjs';
import { exchange } from '../helpers/net';

const examplesDir = fileURLToPath(new URL('../../examples/', import.meta.url));
const start = cliStartedPerTest();
let dir: string;
let alone: [string, string[]];

/** Runs the lone copy of sockcat in the empty directory. */
function lone(args: string[], env: NodeJS.ProcessEnv = {}) {
  return start(args, { command: alone, cwd: dir, stdin: null, env: { COLUMNS: '', ...env } }).exited;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sockcat-examples-'));
  copyFileSync(CLI_PATH, join(dir, 'sockcat.cjs'));
  // The Node sockcat runs on (the pinned one), with the lone copy of the bundle.
  alone = [PINNED_NODE, [...NODE_FLAGS, join(dir, 'sockcat.cjs')]];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sockcat examples', () => {
  it('lists every file of examples/ with what it does, though no examples/ is at hand', async () => {
    const r = await lone(['examples'], { COLUMNS: '200' });
    expect(r.code).toBe(0);
    const out = r.stdout.toString();
    const files = Object.keys(readExampleFiles(examplesDir));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(out).toMatch(new RegExp(`^  ${file.replace(/\.[^./]+$/, '')} +\\S`, 'm'));
    expect(out).toMatch(/^ {2}repond +The classroom shell server: greets each client, then answers every line it sends\.$/m);
  });

  it('prints one, byte for byte, by name with or without its extension', async () => {
    const want = readFileSync(join(examplesDir, 'repond.sh'));
    for (const name of ['repond', 'repond.sh']) {
      const r = await lone(['examples', name]);
      expect(r.code).toBe(0);
      expect(r.stdout.equals(want)).toBe(true);
    }
  });

  it('a printed script serves clients: exec --sh "$(sockcat examples repond)"', async () => {
    const sockcat = [alone[0], ...alone[1]].map((a) => `'${a}'`).join(' ');
    const server = start([], { cwd: dir, command: ['sh', ['-c', `exec ${sockcat} exec 0 -v --sh "$(${sockcat} examples repond)"`]] });
    const port = await server.listeningPort();
    const reply = (await exchange(port, 'bonjour\n')).toString();
    expect(reply).toContain('le serveur répond : bonjour');
  });

  it('an unknown name: exit 2, did you mean, and the list', async () => {
    const r = await lone(['examples', 'repnod']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sockcat: no example 'repnod': did you mean 'repond'\? \(examples: .*repond.*\)/);
  });
});

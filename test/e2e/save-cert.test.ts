/**
 * --save-cert FILE on a TLS listener with an ephemeral certificate: the certificate (never the
 * key) lands in FILE, and clients verify the server with it — curl --cacert and connect --ca.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliStartedPerTest, runCli } from '../helpers/cli';

const start = cliStartedPerTest();
const webScript = fileURLToPath(new URL('../../examples/web.sh', import.meta.url));
let dir: string;
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'sockcat-save-cert-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('--save-cert', () => {
  it('writes the ephemeral certificate, which curl --cacert and sockcat connect --ca then trust', async () => {
    const file = join(dir, 'server.pem');
    const server = start(['exec', '--tls', '--save-cert', file, '-v', '0', '--', webScript]);
    const port = await server.listeningPort();
    const line = (await server.waitForStderr(/ephemeral self-signed certificate.*fingerprint ([0-9A-F:]+); saved to (\S+) \(clients: --ca \S+, curl --cacert \S+\)/))[0];
    expect(line).toContain(`saved to ${file}`);
    const pem = readFileSync(file, 'utf8');
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n?$/);
    expect(pem).not.toMatch(/PRIVATE KEY/);
    expect(statSync(file).mode & 0o777).toBe(0o644);

    // Verified: no -k, no --insecure.
    const ok = await curl(['--cacert', file, `https://127.0.0.1:${port}/`]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/<html/i);
    const byName = await curl(['--cacert', file, `https://localhost:${port}/`]);
    expect(byName.code).toBe(0);
    // Without the file, the same server is refused: the check is real.
    const refused = await curl([`https://127.0.0.1:${port}/`]);
    expect(refused.code).not.toBe(0);

    const client = await runCli(['connect', '--ca', file, `tls:127.0.0.1:${port}`], { stdin: 'GET / HTTP/1.0\r\n\r\n' });
    expect(client.code).toBe(0);
    expect(client.stdout.toString()).toMatch(/^HTTP\/1\.[01] 200/);
  });

  it('refuses what it cannot do, exit 2, before listening', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['listen', '--tls', '--save-cert', '/no/such/dir/c.pem', '0'], /^sockcat: --save-cert \/no\/such\/dir\/c\.pem: no such directory \/no\/such\/dir/],
      [['connect', '--save-cert', join(dir, 'x.pem'), 'tls:127.0.0.1:9'], /^sockcat: --save-cert is for a TLS listener/],
      [['listen', '--save-cert', join(dir, 'x.pem'), 'unix:' + join(dir, 's.sock')], /^sockcat: --tls works over TCP, not with unix: addresses/],
      [['forward', '--tls', '--workers', '2', '--save-cert', join(dir, 'x.pem'), '0', '127.0.0.1:9'], /^sockcat: --save-cert and --workers/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i][0].join(' ')).toBe(2);
      expect(r.stderr).toMatch(cases[i][1]);
    });
  });
});

/**
 * Set-up prints no scary noise: every dependency with an install script (esbuild's postinstall)
 * is reviewed in package.json's allowScripts, so npm 11's `npm ci` ends without the
 * "install scripts not yet covered by allowScripts" warning. Asked of npm itself.
 */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('npm set-up', () => {
  it('no dependency has an install script left unreviewed (npm install-scripts ls)', async (ctx) => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile('npm', ['install-scripts', 'ls', '--json'], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    // npm before 11.x has no install-script review (and prints no such warning): nothing to check.
    if (r.code !== 0 && /Unknown command|unknown command/i.test(r.stderr + r.stdout)) ctx.skip();
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ allowScripts: [] });
  });
});

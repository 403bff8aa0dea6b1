// The end-to-end tests run the bundled CLI (dist/sockcat.cjs) exactly as a user would: build it once.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(process.execPath, [`${root}scripts/bundle.mjs`], { stdio: 'inherit' });
}

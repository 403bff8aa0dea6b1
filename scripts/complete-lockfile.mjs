// npm 11 leaves out of package-lock.json the platform packages that the registry mirror used here
// does not serve (Rollup's non-linux-x64 binaries), and `npm ci` then refuses the lockfile. This
// adds those entries back, marked optional with their os/cpu/libc, so npm ci skips them on every
// platform they do not fit. Run it after any `npm install` that rewrites the lockfile.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const path = fileURLToPath(new URL('../package-lock.json', import.meta.url));
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const meta of Object.values(packages)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${dep}`;
    if (packages[key]) continue;
    const m = /rollup-(android|darwin|freebsd|linux|openbsd|openharmony|win32)-([a-z0-9]+)(?:-(.*))?$/.exec(dep);
    if (!m) {
      console.warn(`complete-lockfile: no platform known for ${dep}; left out`);
      continue;
    }
    const [, os, cpu, extra = ''] = m;
    const entry = { version, cpu: [cpu], dev: true, license: 'MIT', optional: true, os: [os] };
    if (extra.includes('musl')) entry.libc = ['musl'];
    else if (extra.includes('gnu') && os === 'linux') entry.libc = ['glibc'];
    packages[key] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
console.log(`complete-lockfile: added ${added} missing optional platform entries`);

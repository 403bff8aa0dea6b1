/** A directory holding a `sockcat` command, for tests that run shell scripts the way a user does. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sockcatCommand } from './cli';

let dir: string | undefined;

/** The directory (made once per test file) whose `sockcat` runs the CLI under test; put it first in PATH. */
export function sockcatBinDir(): string {
  if (dir) return dir;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-bin-'));
  const [cmd, pre] = sockcatCommand();
  const quoted = [cmd, ...pre].map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  fs.writeFileSync(path.join(dir, 'sockcat'), `#!/bin/sh\nexec ${quoted} "$@"\n`, { mode: 0o755 });
  return dir;
}

/** process.env with sockcatBinDir() first in PATH. */
export function envWithSockcat(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${sockcatBinDir()}${path.delimiter}${process.env.PATH ?? ''}`, ...extra };
}

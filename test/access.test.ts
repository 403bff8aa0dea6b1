/** AccessControl: allow/deny rules and the live-reloaded --allow-file. */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AccessControl } from '../src/access';
import { waitFor } from './helpers/net';

describe('AccessControl --allow-file', () => {
  it('notices a change made right after it started, before its first look at the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-access-'));
    const file = path.join(dir, 'allow.txt');
    fs.writeFileSync(file, '10.0.0.0/8\n');
    const access = new AccessControl({ allowFile: file, pollMs: 50 });
    try {
      expect(access.check('127.0.0.1').ok).toBe(false);
      // Same tick as the start: a watcher whose baseline is taken later would never see this change.
      fs.writeFileSync(file, '10.0.0.0/8\n127.0.0.1\n');
      await waitFor(() => access.check('127.0.0.1').ok, 5000, 'the reload');
    } finally {
      access.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

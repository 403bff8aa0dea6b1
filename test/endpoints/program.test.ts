import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveProgram } from '../../src/endpoints/program';
import { UsageError } from '../../src/errors';

describe('resolveProgram', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sockcat-program-'));
    mkdirSync(path.join(dir, 'bin'));
    mkdirSync(path.join(dir, 'other'));
    writeFileSync(path.join(dir, 'bin', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(path.join(dir, 'other', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(path.join(dir, 'bin', 'plain'), 'data\n', { mode: 0o644 });
    mkdirSync(path.join(dir, 'bin', 'folder'));
  });
  afterAll(() => rmSync(dir, { recursive: true }));

  it('finds a name in PATH, first match wins', () => {
    const env = { PATH: `${dir}/other:${dir}/bin` };
    expect(resolveProgram('tool', env)).toBe(path.join(dir, 'other', 'tool'));
  });

  it('skips directories and non-executable files in PATH, and says so when that is all there is', () => {
    const env = { PATH: `${dir}/bin:${dir}/other` };
    expect(() => resolveProgram('plain', env)).toThrow(`program 'plain' found at ${dir}/bin/plain but it is not executable`);
    expect(() => resolveProgram('folder', env)).toThrow("program 'folder' not found in PATH");
  });

  it('takes a name with a slash as a path, relative to the working directory', () => {
    expect(resolveProgram('bin/tool', {}, dir)).toBe(path.join(dir, 'bin', 'tool'));
    expect(resolveProgram(path.join(dir, 'bin', 'tool'), { PATH: '' })).toBe(path.join(dir, 'bin', 'tool'));
    expect(() => resolveProgram('bin/missing', {}, dir)).toThrow("program 'bin/missing' not found");
    expect(() => resolveProgram('bin/plain', {}, dir)).toThrow(/'bin\/plain' is not executable \(chmod \+x bin\/plain/);
    expect(() => resolveProgram('bin/folder', {}, dir)).toThrow("program 'bin/folder' is a directory");
  });

  it('reads an empty PATH entry as the working directory, like execvp', () => {
    expect(resolveProgram('tool', { PATH: `/nonexistent::` }, path.join(dir, 'bin'))).toBe(path.join(dir, 'bin', 'tool'));
  });

  it('throws usage errors (exit 2)', () => {
    expect(() => resolveProgram('no-such-program-xyz', { PATH: `${dir}/bin` })).toThrow(UsageError);
    expect(() => resolveProgram('', {})).toThrow(UsageError);
  });
});

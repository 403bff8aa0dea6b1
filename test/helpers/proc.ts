/** Process checks for tests that must prove a child (and what it started) is gone. */
import { readFileSync } from 'node:fs';
import { waitFor } from './net';

/**
 * True when `pid` no longer runs: no /proc entry, or a zombie. A zombie has exited; what is left
 * is its parent's to reap — for an orphaned grandchild that is PID 1, which in some containers
 * never reaps, so "no longer runs" is the property sockcat controls.
 */
export function isGone(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  // "pid (comm) S …": the state follows the last ')' (comm may contain spaces or parentheses).
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
}

/** Waits until every pid is gone (rejects after timeoutMs). */
export function waitGone(pids: number[], timeoutMs = 8000): Promise<void> {
  return waitFor(() => pids.every(isGone), timeoutMs, `processes ${pids.join(', ')} to exit`);
}

/** Process checks for tests that must prove a child (and what it started) is gone. */
import { readdirSync, readFileSync } from 'node:fs';
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

/**
 * The PIDs of a process's children, from /proc/PID/task/TID/children. A thread or the process
 * itself may end while we read: what is gone counts as no children, never as an error.
 */
export function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const t of tasks) {
    try {
      pids.push(...readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // that thread ended between the listing and the read
    }
  }
  return pids;
}

/**
 * Port lists as `scan` takes them: `22`, `20-25`, `22,80,443`, or any mix (`22,8000-8100`).
 * Every mistake is a UsageError that quotes the piece at fault.
 */
import { UsageError } from './errors';

/** The most ports one list may name, counting repeats: every port there is, once. */
export const MAX_PORTS = 65_536;

/**
 * Parses a port list into ascending distinct ports (1-65535).
 * Refuses port 0 (nothing can be connected to it), reversed ranges, words, and lists that name
 * more than MAX_PORTS ports before repeats are removed (`1-65535,1-65535` is a typo, not a scan).
 */
export function parsePortList(text: string): number[] {
  const pieces = text.split(',').map((p) => p.trim());
  if (pieces.every((p) => p === '')) throw new UsageError(`missing ports (e.g. 22, 20-25 or 22,80,443)`);
  let named = 0;
  const ports = new Set<number>();
  for (const piece of pieces) {
    if (piece === '') throw new UsageError(`port list '${text}' has an empty item (e.g. 22,80,443)`);
    const m = /^(\d+)(?:-(\d+))?$/.exec(piece);
    if (!m) throw new UsageError(`'${piece}' is not a port or a range of ports (e.g. 22, 20-25 or 22,80,443)`);
    const first = portNumber(m[1], piece);
    const last = m[2] === undefined ? first : portNumber(m[2], piece);
    if (last < first) throw new UsageError(`port range '${piece}' goes backwards: write ${last}-${first}`);
    named += last - first + 1;
    if (named > MAX_PORTS) throw new UsageError(`port list '${text}' names more than ${MAX_PORTS.toLocaleString('en')} ports`);
    for (let p = first; p <= last; p++) ports.add(p);
  }
  return [...ports].sort((a, b) => a - b);
}

function portNumber(digits: string, piece: string): number {
  const n = Number(digits);
  if (n === 0) throw new UsageError(`port 0 in '${piece}' cannot be scanned (ports go from 1 to 65535)`);
  if (n > 65535) throw new UsageError(`port ${digits} in '${piece}' is out of range (ports go from 1 to 65535)`);
  return n;
}

/**
 * nc's habits, understood: what a student types from nc, ncat or socat muscle memory gets one
 * line saying the sockcat command they meant, ready to paste — never a message about something
 * they did not type. Everything here only words usage errors; nothing runs a guess.
 */
import { UsageError } from '../errors';

/** Quotes words for a shell, only where needed: `sockcat exec 9090 --sh 'cat -n'`. */
export function shellQuote(words: readonly string[]): string {
  return words.map((w) => (w !== '' && /^[\w@%+=:,./[\]-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Edit distance between two short words, a swap of two neighbours counting as one slip (lsiten). */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j], before[j - 2] + 1);
    }
    [before, prev] = [prev, row];
  }
  return prev[b.length];
}

/** The mode a mistyped word was meant to be, if one is close enough. */
export function closestMode(word: string, modes: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const mode of modes) {
    const d = mode.startsWith(w) && w.length >= 3 ? 0 : editDistance(w, mode);
    if (d < bestDistance) [best, bestDistance] = [mode, d];
  }
  // One or two slips in a word of five or more letters; one in a shorter one.
  return bestDistance <= (w.length >= 5 ? 2 : 1) ? best : undefined;
}

/** A port number as nc takes it. */
const PORT = /^\d{1,5}$/;
/** Something that reads as a host: an IP address, a dotted name, localhost, or HOST:PORT. */
const HOSTLIKE = /^(?:\[[0-9a-f:.%\w]+\](?::\d+)?|[\w-]+(?:\.[\w-]+)+(?::\d+)?|localhost(?::\d+)?|[0-9a-f]*:[0-9a-f:]+)$/i;

/**
 * Called when the first word is not a mode. nc's `-l -p 9090` / `-lvp 9090` meant listen, and
 * `127.0.0.1 9090` meant connect: say so with the command to type. A word close to a mode gets
 * "did you mean". Throws a UsageError, or returns when it has nothing better to say.
 */
export function explainMissingMode(args: readonly string[], modes: readonly string[]): void {
  const first = args[0];
  if (first === undefined || first === '--help' || first === '-h' || first === '--version') return;
  const positionals = args.filter((a) => !a.startsWith('-'));
  const listens = args.some((a) => a === '--listen' || /^-[a-zA-Z]*l[a-zA-Z]*$/.test(a));
  const looksLikeNc = listens || (positionals.length > 0 && (HOSTLIKE.test(positionals[0]) || PORT.test(positionals[0])) && positionals.every((p) => HOSTLIKE.test(p) || PORT.test(p)));
  if (looksLikeNc) {
    const mode = listens ? 'listen' : 'connect';
    const rest = args
      .filter((a) => a !== '--listen')
      // nc's letters sockcat has no use for: -l (the mode says it) and -n (no DNS).
      .map((a) => (/^-[a-zA-Z]{2,}$/.test(a) ? `-${a.slice(1).replace(/[ln]/g, '')}` : a === '-l' || a === '-n' ? '' : a))
      .filter((a) => a !== '' && a !== '-');
    const what = listens ? 'to wait for a client like nc -l' : 'to connect like nc HOST PORT';
    throw new UsageError(`missing mode: ${what}, type: ${shellQuote(['sockcat', mode, ...rest])}`);
  }
  if (first.startsWith('-')) return;
  const guess = closestMode(first, modes);
  const known = `modes: ${modes.join(', ')}; see sockcat --help`;
  if (guess) throw new UsageError(`unknown mode '${first}': did you mean '${guess}'? (${known})`);
  throw new UsageError(`unknown mode '${first}' (${known})`);
}

/**
 * `listen -e PROG` / `-c CMD` (nc and ncat's exec) as the exec command to type: the same address
 * and flags, the program after --, or the command line with --sh. listen itself never runs
 * programs: exec serves each client with its own process, which the user should choose knowingly.
 */
export function execInsteadOfListen(args: readonly string[], parsed: { e?: string; c?: string; address?: string; port?: string }, addressText: string): UsageError {
  const rest: string[] = [];
  const drop = new Set([parsed.address, parsed.port].filter((p): p is string => p !== undefined));
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (i === 0 && a === 'listen') continue;
    // The program and the port are rewritten below; -l and -k mean nothing to exec, which serves every client.
    if (['-e', '--exec', '-c', '--sh-exec', '-p', '--port'].includes(a)) {
      i++;
      continue;
    }
    if (/^(?:-[ecp].+|--(?:exec|sh-exec|port)=.*)$/.test(a) || ['-l', '-k', '--keep-open'].includes(a)) continue;
    if (drop.has(a)) {
      drop.delete(a);
      continue;
    }
    rest.push(a);
  }
  const program = parsed.c !== undefined ? ['--sh', parsed.c] : ['--', ...String(parsed.e).trim().split(/\s+/)];
  const how = parsed.c !== undefined ? "nc's -c" : "nc's -e";
  return new UsageError(`listen does not run programs; ${how} is sockcat's exec mode (one process per client): ${shellQuote(['sockcat', 'exec', addressText, ...rest, ...program])}`);
}

/**
 * Tokens and port ranges for the tunnel modes.
 *
 * The relay's --token-file holds one agent a line, `NAME TOKEN [PORTS]` (PORTS: 8000-8010,9000),
 * # comments allowed; it is read again at every agent handshake, so adding or revoking an agent
 * needs no restart. The agent's --token-file holds its token alone on one line. Both files hold
 * secrets: a file that group or others may read is refused, with the chmod that fixes it (the
 * MySocket lesson: its token file was created world-readable).
 */
import fs from 'node:fs';
import { UsageError } from '../errors';

/** A set of ports: ranges, inclusive. */
export type PortSet = Array<[number, number]>;

export interface TokenEntry {
  name: string;
  token: string;
  /** Ports this agent may publish on; undefined: any the relay allows. */
  ports?: PortSet;
}

/** Shortest token accepted: a guessable token would make the HMAC pointless. */
export const MIN_TOKEN_LENGTH = 16;

/** "8000-8010,9000" → [[8000, 8010], [9000, 9000]]; throws a UsageError naming `origin`. */
export function parsePortSet(text: string, origin: string): PortSet {
  const set: PortSet = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(part);
    const low = m ? Number(m[1]) : NaN;
    const high = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || low < 1 || high > 65535 || low > high) {
      throw new UsageError(`${origin}: '${part.trim()}' is not a port or LOW-HIGH range of ports 1-65535 (e.g. 8000-8010)`);
    }
    set.push([low, high]);
  }
  return set;
}

export const portInSet = (port: number, set: PortSet | undefined): boolean => set === undefined || set.some(([l, h]) => port >= l && port <= h);

/** "8000-8010, 9000" as the user wrote it. */
export const formatPortSet = (set: PortSet): string => set.map(([l, h]) => (l === h ? `${l}` : `${l}-${h}`)).join(',');

/** Refuses a secret file that group or others may read or write, with the way out. */
export function checkSecretFile(path: string, flag: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`${flag} ${path}: not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new UsageError(
      `${flag} ${path} can be read by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); it holds a secret: run chmod 600 ${path}`,
    );
  }
}

function checkToken(token: string, origin: string): void {
  if (token.length < MIN_TOKEN_LENGTH) throw new UsageError(`${origin}: a token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 16)`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`${origin}: a token is printable ASCII without spaces`);
}

/** The agent's token file: the token alone, on its first non-empty line. */
export function readAgentToken(path: string): string {
  checkSecretFile(path, '--token-file');
  const line = fs
    .readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('#'));
  if (!line) throw new UsageError(`--token-file ${path} is empty: put the token on one line`);
  if (/\s/.test(line)) throw new UsageError(`--token-file ${path}: the agent's file holds the token alone (the relay's file has NAME TOKEN [PORTS] lines)`);
  checkToken(line, `--token-file ${path}`);
  return line;
}

/** A token given with --token (one agent, named "default"). */
export function tokenFromFlag(token: string): string {
  checkToken(token, '--token');
  return token;
}

/** The relay's token file: `NAME TOKEN [PORTS]` a line. Throws a UsageError naming the line. */
export function readTokenFile(path: string): TokenEntry[] {
  checkSecretFile(path, '--token-file');
  const entries: TokenEntry[] = [];
  const names = new Set<string>();
  fs.readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) return;
      const origin = `--token-file ${path}:${i + 1}`;
      const fields = line.split(/\s+/);
      if (fields.length < 2 || fields.length > 3) throw new UsageError(`${origin}: expected NAME TOKEN [PORTS], e.g. laptop 3f2a…9c 8000-8010`);
      const [name, token, ports] = fields;
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(name)) throw new UsageError(`${origin}: a name is letters, digits, - and _ (up to 63)`);
      if (names.has(name)) throw new UsageError(`${origin}: the name '${name}' appears twice`);
      names.add(name);
      checkToken(token, origin);
      entries.push({ name, token, ports: ports === undefined ? undefined : parsePortSet(ports, origin) });
    });
  if (entries.length === 0) throw new UsageError(`--token-file ${path} has no NAME TOKEN line`);
  return entries;
}

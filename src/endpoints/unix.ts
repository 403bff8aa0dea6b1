/**
 * Unix domain stream sockets: "unix:/path/to/socket", for listening and connecting.
 * - A socket file left by a server that died is detected (connecting to it is refused) and
 *   replaced; a live one is an "address in use" error; any other kind of file is never removed.
 * - --unix-mode sets the socket file's permissions (connecting needs write permission on it).
 * - The socket file is removed when the listener closes.
 * Peers have no IP address: access control refuses them only when allow rules exist.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { NetError, UsageError, type ErrorContext } from '../errors';
import { registerTransport } from './registry';
import { bindNetServer, closeServer, connectNetSocket } from './tcp';
import type { AddressBase, BindOptions, Connection, DialOptions, FlagValues, Listener, Peer, Role, Transport } from './types';

export interface UnixAddress extends AddressBase {
  scheme: 'unix';
  path: string;
  /** Permissions of the socket file a listener creates (e.g. 0o660); default: the umask's. */
  mode?: number;
}

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_PATH_BYTES = 107;

const label = (a: UnixAddress) => `unix:${a.path}`;
const errorContext = (a: UnixAddress, action: ErrorContext['action']): ErrorContext => ({ action, address: label(a) });

function parseUnix(rest: string, _role: string, original: string): UnixAddress {
  if (rest === '') throw new UsageError(`malformed address '${original}': the socket path is missing (e.g. unix:/tmp/chat.sock)`);
  if (Buffer.byteLength(rest) > MAX_PATH_BYTES) {
    throw new UsageError(`malformed address '${original}': socket paths are limited to ${MAX_PATH_BYTES} bytes; use a shorter path`);
  }
  return { scheme: 'unix', path: rest };
}

/** Unix peers have no address of their own: number them so logs can tell clients apart. */
let nextClient = 1;
function unixConnection(socket: net.Socket, addr: UnixAddress, side: 'accepted' | 'connected'): Connection {
  const here: Peer = { address: addr.path, label: label(addr) };
  const client: Peer = { address: 'unix', label: `${label(addr)} client #${nextClient++}` };
  return side === 'accepted' ? { stream: socket, remote: client, local: here } : { stream: socket, remote: here, local: { address: 'unix', label: 'unix client' } };
}

async function connectUnix(addr: UnixAddress, opts: DialOptions): Promise<Connection> {
  try {
    return unixConnection(await connectNetSocket({ path: addr.path }, errorContext(addr, 'connect'), opts), addr, 'connected');
  } catch (err) {
    const code = (err as NetError).code;
    if (code === 'ENOENT') throw new NetError(`${label(addr)}: no such socket file — is a server listening there?`, code);
    if (code === 'ECONNREFUSED') throw new NetError(`connection refused by ${label(addr)} — the socket file is left over from a server that is gone`, code);
    throw err;
  }
}

/**
 * What is at `path` now: nothing, a socket a server answers on, a socket nobody answers on
 * (left by a dead server), or something else that is not ours to remove.
 */
async function probeSocketFile(path: string): Promise<'absent' | 'live' | 'stale' | 'not-a-socket'> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return 'absent';
  }
  if (!stat.isSocket()) return 'not-a-socket';
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      // Only asking whether someone answers: hang up at once.
      probe.destroy();
      resolve('live');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      probe.destroy();
      resolve(err.code === 'ECONNREFUSED' ? 'stale' : err.code === 'ENOENT' ? 'absent' : 'live');
    });
  });
}

async function listenUnix(addr: UnixAddress, opts: BindOptions): Promise<Listener> {
  const where = label(addr);
  const state = await probeSocketFile(addr.path);
  if (state === 'live') throw new NetError(`address already in use: ${where} — another server is listening on that socket`, 'EADDRINUSE');
  if (state === 'not-a-socket') throw new NetError(`address already in use: ${where} exists and is not a socket (not removing it)`, 'EADDRINUSE');
  if (state === 'stale') {
    // Nobody answers on it: a server died without cleaning up. Replacing it is what the user wants.
    fs.unlinkSync(addr.path);
    opts.log?.event('stale-socket', `${where}: removed a stale socket file left by a server that is gone`, { address: where });
  }
  // libuv reports a missing directory as EACCES ("permission denied"), which sends the user
  // looking at permissions for a typo in the path: check it ourselves first.
  const dir = path.dirname(addr.path);
  if (!fs.existsSync(dir)) throw new NetError(`${where}: the directory ${dir} does not exist`, 'ENOENT');
  const server = net.createServer({ allowHalfOpen: true }, (socket) => opts.onConnection(unixConnection(socket, addr, 'accepted')));
  await bindNetServer(server, { path: addr.path }, errorContext(addr, 'listen'), opts);
  if (addr.mode !== undefined) {
    try {
      fs.chmodSync(addr.path, addr.mode);
    } catch (err) {
      await closeServer(server);
      throw new NetError(`${where}: cannot set permissions ${addr.mode.toString(8)}: ${(err as Error).message}`);
    }
  }
  const ino = fs.statSync(addr.path).ino;
  return {
    address: addr,
    label: where,
    close: async () => {
      await closeServer(server);
      removeOwnSocketFile(addr.path, ino);
    },
  };
}

/** Removes the socket file if it is still the one we created (another server may have replaced it). */
function removeOwnSocketFile(path: string, ino: number): void {
  try {
    if (fs.lstatSync(path).ino === ino) fs.unlinkSync(path);
  } catch {
    // Already gone (libuv unlinks it on close): nothing to do.
  }
}

/** --unix-mode on a listening unix: address: "0660" or "660" → 0o660. */
function configureUnix(addr: UnixAddress, flags: FlagValues, role: Role): UnixAddress {
  const text = flags.unixMode;
  if (role !== 'listen' || text === undefined) return addr;
  if (!/^0?[0-7]{3}$/.test(String(text))) throw new UsageError(`--unix-mode takes octal permissions such as 0660 or 600, not '${text}'`);
  return { ...addr, mode: parseInt(String(text), 8) };
}

export const unixTransport: Transport<UnixAddress> = {
  scheme: 'unix',
  kind: 'stream',
  help: 'Unix domain socket: a stale socket file is replaced, a live one is "in use"; --unix-mode sets its permissions',
  example: 'unix:/tmp/chat.sock',
  flags: [{ name: 'unix-mode', type: 'string', role: 'listen', help: 'Permissions of a listening unix: socket file, octal (e.g. 0660; default from the umask)' }],
  parse: parseUnix,
  format: label,
  configure: configureUnix,
  connect: connectUnix,
  listen: listenUnix,
};

registerTransport(unixTransport);

declare module './types' {
  interface AddressMap {
    unix: UnixAddress;
  }
}

/**
 * `sockcat broadcast ADDR`: the course's "echo à tous" server, and ncat's --chat / --broker
 * done so that one stuck reader never freezes the room.
 * - line mode (default): a chat with names, /nick, /who, /quit; the server's stdout shows the
 *   room with timestamps and lines typed on its stdin go to everyone as <server>.
 * - --raw: a broker; bytes go verbatim to every other client and to stdout; stdin to everyone.
 * Every client has a bounded outgoing queue (--max-queue); past it the client is disconnected,
 * or with --drop its messages are dropped until it catches up.
 */
import type { Readable } from 'node:stream';
import type { Address } from '../endpoints/index';
import { openServer, type ServerModeOptions } from '../runtime/server';
import { Room, type Member } from '../broadcast/room';
import { Chat, notice, type ChatNaming } from '../broadcast/chat';
import { CHAT_LANGUAGES, DEFAULT_CHAT_LANGUAGE } from '../broadcast/lang/index';
import { RawBroker } from '../broadcast/raw';
import { serveClient } from '../broadcast/client';
import type { RoomProtocol } from '../broadcast/protocol';
import type { ModeIO } from '../io';

/** Default cap on a client's outgoing queue: 1 MiB. */
export const DEFAULT_MAX_QUEUE = 1024 * 1024;
/** Default longest line in line mode: 4096 bytes. */
export const DEFAULT_MAX_LINE = 4096;
/** Default --drain-timeout: how long clients get to read the last lines when the server stops. */
export const DEFAULT_BROADCAST_DRAIN_MS = 2000;
/** Default connection limit: with the default queue cap, at most 1 GiB of queued messages. */
export const DEFAULT_BROADCAST_MAX_CONNS = 1000;

export interface BroadcastOptions extends ServerModeOptions {
  address: Address;
  /** Broker mode: bytes verbatim, no names or announcements. */
  raw?: boolean;
  /** Send a client's messages back to it too. */
  echoSelf?: boolean;
  /** Cap on each client's outgoing queue, in bytes (default 1 MiB). */
  maxQueue?: number;
  /** Past the cap, drop that client's messages instead of disconnecting it. */
  drop?: boolean;
  /** Longest line in line mode, in bytes (default 4096); longer ones are cut. */
  maxLine?: number;
  /** Send a client away after this long with no traffic either way. */
  idleTimeoutMs?: number;
  /** The room's language in line mode (a key of CHAT_LANGUAGES; default en). */
  lang?: string;
  /** Newcomers named user1, user2… (default) or by their address. */
  names?: ChatNaming;
}

/** Runs the room until stopped; resolves with the exit code. stdin's EOF does not stop it. */
export async function runBroadcast(opts: BroadcastOptions, io: ModeIO): Promise<number> {
  const server = await openServer(opts, io, { mode: 'broadcast', fdsPerClient: 1, defaultMaxConns: DEFAULT_BROADCAST_MAX_CONNS });
  if (server.role === 'done') return server.exitCode;
  const { logger, metrics } = server;
  const strings = CHAT_LANGUAGES[opts.lang ?? DEFAULT_CHAT_LANGUAGE];
  const clients = new Set<Member>();
  // Without a drain, a client that is behind would be cut off with its last lines still queued.
  const drainMs = opts.drainTimeoutMs ?? DEFAULT_BROADCAST_DRAIN_MS;
  const room = new Room({
    onDropped: metrics ? (count) => metrics.broadcastDropped(count) : undefined,
    maxQueue: opts.maxQueue ?? DEFAULT_MAX_QUEUE,
    drop: opts.drop ?? false,
    echoSelf: opts.echoSelf ?? false,
    stdout: io.stdout,
    logger,
    dropNotice: opts.raw ? undefined : (count) => notice(strings.dropped(count)),
  });
  const speaking: RoomProtocol = opts.raw ? new RawBroker(room) : new Chat({ room, logger, maxLine: opts.maxLine ?? DEFAULT_MAX_LINE, strings, names: opts.names ?? 'user' });

  const stdin = readStdin(io.stdin, (chunk) => speaking.stdin(chunk, io.stdin), () => speaking.stdinEnded());
  const onStop = () => {
    // Last words, then a FIN to everyone; serve() waits for them to close (or --drain-timeout).
    speaking.stopping();
    room.flush();
    for (const c of [...clients]) c.sendAway('stopping');
  };
  io.signal.addEventListener('abort', onStop, { once: true });
  try {
    await server.serve({
      drainTimeoutMs: drainMs,
      handle: async (conn, ctx) => {
        const { member, done } = serveClient(conn, ctx, { room, protocol: speaking, idleTimeoutMs: opts.idleTimeoutMs, stopGraceMs: drainMs });
        clients.add(member);
        metrics?.broadcastClientCount(clients.size);
        try {
          return await done;
        } finally {
          clients.delete(member);
          metrics?.broadcastClientCount(clients.size);
        }
      },
    });
  } finally {
    io.signal.removeEventListener('abort', onStop);
    stdin.stop();
    room.close();
  }
  if (room.stdoutDropped > 0) logger.warn('stdout', `${room.stdoutDropped} line(s) or chunk(s) of the room log were dropped because stdout was not keeping up`);
  if (io.endStdout) io.stdout.end();
  return 0;
}

/** Reads stdin for the room; its EOF or error only ends what stdin says, never the server. */
function readStdin(input: Readable, onChunk: (chunk: Buffer) => void, onEnd: () => void): { stop(): void } {
  const onData = (chunk: Buffer | string) => onChunk(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  const onError = () => input.off('data', onData);
  input.on('data', onData);
  input.once('end', onEnd);
  input.on('error', onError);
  return {
    stop() {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      // Stop reading so the process can exit; the stream itself belongs to the caller.
      input.pause();
    },
  };
}

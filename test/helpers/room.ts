/** A chat client for broadcast tests: collects what the room sends and waits for lines in it. */
import type net from 'node:net';
import { connect, waitFor } from './net';

export interface RoomClient {
  socket: net.Socket;
  /** Everything received so far, as text. */
  text(): string;
  /** Everything received so far, as bytes. */
  bytes(): Buffer;
  /** Waits until the received text matches `re` (bounded by timeoutMs). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Writes `text` followed by LF. */
  say(text: string): void;
  /** Resolves when the server closed the connection (EOF or reset). */
  closed: Promise<void>;
}

/** Connects to a room and collects what it sends. */
export async function joinRoom(port: number, host = '127.0.0.1'): Promise<RoomClient> {
  const socket = await connect(port, host);
  const chunks: Buffer[] = [];
  let size = 0;
  let cache: Buffer | undefined;
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
    cache = undefined;
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  const bytes = () => (cache ??= Buffer.concat(chunks, size));
  return {
    socket,
    bytes,
    text: () => bytes().toString(),
    waitFor: (re, timeoutMs = 5000) => waitFor(() => re.test(bytes().toString()), timeoutMs, `${re} in: ${JSON.stringify(bytes().toString().slice(-500))}`),
    say: (text) => void socket.write(text + '\n'),
    closed,
  };
}

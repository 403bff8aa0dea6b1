/** What a room speaks: the chat (line mode) or nothing at all (raw broker mode). */
import type { Readable } from 'node:stream';
import type { Member } from './room';

/** Why a client left, as the server's log and the chat's announcements say it. */
export type LeaveReason =
  /** It sent EOF. */
  | 'eof'
  /** It typed /quit. */
  | 'quit'
  /** The server operator typed /kick. */
  | 'kicked'
  /** Its queue went past --max-queue. */
  | 'slow'
  /** Nothing moved either way for --idle-timeout. */
  | 'idle'
  /** The server is stopping. */
  | 'stopping'
  /** Its connection was reset. */
  | 'reset'
  /** Its connection failed otherwise, or closed without EOF. */
  | 'error';

export interface RoomProtocol {
  /** A client came in (it is already in the room). */
  joined(member: Member): void;
  /** Bytes from a client. */
  input(member: Member, chunk: Buffer): void;
  /** The client sent EOF: handle what is left of its input, then call `done`. */
  inputEnded(member: Member, done: () => void): void;
  /** A client left the room (it is already out of it). */
  left(member: Member, reason: LeaveReason): void;
  /** Bytes typed on the server's stdin. */
  stdin(chunk: Buffer, source: Readable): void;
  /** stdin reached its end (the room goes on). */
  stdinEnded(): void;
  /** The server is stopping: last words to everyone. */
  stopping(): void;
}

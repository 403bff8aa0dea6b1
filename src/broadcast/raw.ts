/**
 * `broadcast --raw`: a broker. Bytes from a client go verbatim to every other client (binary
 * safe, no framing, no names, no announcements) and to the server's stdout; bytes from stdin go
 * to every client.
 */
import type { Readable } from 'node:stream';
import type { RoomProtocol } from './protocol';
import type { Member, Room } from './room';

/** The --raw protocol: every byte to every other client, nothing added. */
export class RawBroker implements RoomProtocol {
  constructor(private readonly room: Room) {}

  joined(): void {}

  input(member: Member, chunk: Buffer): void {
    this.room.broadcast(member, chunk, member.stream);
    this.room.log(chunk);
  }

  inputEnded(_member: Member, done: () => void): void {
    done();
  }

  left(): void {}

  stdin(chunk: Buffer, source: Readable): void {
    this.room.broadcast(undefined, chunk, source);
  }

  stdinEnded(): void {}

  stopping(): void {}
}

/**
 * One client's life in the room, from accept to close: its listeners, its idle timer, and the
 * one place where it is sent away (end or destroy). A client's EOF means it leaves, as with
 * ncat --chat: what it sent before is delivered, what was queued for it is flushed, then FIN.
 */
import type { Connection } from '../endpoints/index';
import type { ConnectionContext, ConnectionSummary } from '../runtime/listener';
import { isResetError } from '../errors';
import type { LeaveReason, RoomProtocol } from './protocol';
import { freshMemberState, type Member, type Room } from './room';

/** How long a client that was sent away with a FIN may take to close before it is destroyed. */
export const LEAVE_GRACE_MS = 2000;

export interface ClientDeps {
  room: Room;
  protocol: RoomProtocol;
  idleTimeoutMs?: number;
  /** When the server stops: how long a client may take to read the last lines and close (--drain-timeout). */
  stopGraceMs?: number;
}

/**
 * Serves one connection as a member of the room: `done` resolves with its summary for the
 * "closed" log line once its stream has closed.
 */
export function serveClient(conn: Connection, ctx: ConnectionContext, deps: ClientDeps): { member: Member; done: Promise<ConnectionSummary> } {
  const { room, protocol } = deps;
  const stream = conn.stream;
  let idleTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let unsent = 0;
  let failure: LeaveReason | undefined;

  const client: Member = {
    id: ctx.id,
    stream,
    label: conn.remote.label,
    ...freshMemberState(),
    sendAway,
  };

  function sendAway(reason: LeaveReason): void {
    if (client.leaving) return;
    client.leaving = reason;
    if (idleTimer) clearTimeout(idleTimer);
    room.remove(client);
    protocol.left(client, reason);
    // Whatever was queued for it (a "bye", the last lines) goes out before the FIN.
    room.flush();
    if (reason === 'slow') {
      // It is not reading: ending would wait behind its full queue forever. Drop the queue.
      destroyNow();
      return;
    }
    // A FIN lets it read the last lines; destroy only if it does not close in time.
    stream.end();
    const grace = reason === 'stopping' ? Math.max(LEAVE_GRACE_MS, deps.stopGraceMs ?? 0) : LEAVE_GRACE_MS;
    graceTimer = setTimeout(destroyNow, grace);
    graceTimer.unref();
  }

  function clientOnData(chunk: Buffer): void {
    client.received += chunk.length;
    idleTimer?.refresh();
    if (!client.leaving) protocol.input(client, chunk);
  }

  function clientOnEnd(): void {
    if (client.leaving) return;
    protocol.inputEnded(client, () => sendAway('eof'));
  }

  function clientOnError(err: Error): void {
    failure = isResetError(err) ? 'reset' : 'error';
  }

  /** Closes at once; what is still queued never leaves, so the "closed" line does not count it. */
  function destroyNow(): void {
    if (!stream.destroyed) unsent = stream.writableLength;
    stream.destroy();
  }

  function clientOnAbort(): void {
    // The server gave up draining: close now.
    destroyNow();
  }

  if (deps.idleTimeoutMs && deps.idleTimeoutMs > 0) {
    idleTimer = setTimeout(() => sendAway('idle'), deps.idleTimeoutMs);
    idleTimer.unref();
    client.touch = () => idleTimer?.refresh();
  }

  const done = new Promise<ConnectionSummary>((resolve) => {
    function clientOnClose(): void {
      if (idleTimer) clearTimeout(idleTimer);
      if (graceTimer) clearTimeout(graceTimer);
      ctx.signal.removeEventListener('abort', clientOnAbort);
      stream.off('data', clientOnData);
      stream.off('end', clientOnEnd);
      if (!client.leaving) {
        // Closed under us (reset, or a close without EOF first): it left all the same, but what
        // it sent before (a last line without newline) reaches the others first, as at EOF.
        // The chat hands that line over during inputEnded (split2 flushes synchronously).
        protocol.inputEnded(client, () => {});
        client.leaving = failure ?? 'error';
        room.remove(client);
        protocol.left(client, client.leaving);
      }
      const fields: Record<string, string | number> = { name: client.name };
      if (client.dropped > 0) fields.dropped = client.dropped;
      resolve({
        received: client.received,
        sent: client.sent - unsent,
        reason: client.leaving,
        text: `${client.name ? ` (${client.name})` : ''}${client.dropped > 0 ? `, ${client.dropped} message(s) dropped` : ''}`,
        fields,
      });
    }
    stream.on('data', clientOnData);
    stream.on('end', clientOnEnd);
    stream.on('error', clientOnError);
    stream.once('close', clientOnClose);
    ctx.signal.addEventListener('abort', clientOnAbort, { once: true });
    room.add(client);
    protocol.joined(client);
  });
  return { member: client, done };
}

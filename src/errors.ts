/**
 * Errors that reach the user. Every failure becomes one plain line on stderr and an exit code:
 * 0 ok, 1 network or runtime failure, 2 usage error. Nothing here prints a stack trace.
 */

/** Which end we are: a client names the server it reached; a server names the client that came in. */
export type ErrorSide = 'client' | 'server';

/** Wordings transports add for their own errors (TLS alerts…), tried before the generic one. */
const transportWordings: Array<(err: unknown, where: string, side: ErrorSide) => string | undefined> = [];

/** Called by the transport registry for each transport that words its own errors. */
export function addErrorWording(words: (err: unknown, where: string, side: ErrorSide) => string | undefined): void {
  transportWordings.push(words);
}

/** A transport's words for the error, if one claims it. */
export function describeTransportError(err: unknown, where: string, side: ErrorSide = 'client'): string | undefined {
  for (const words of transportWordings) {
    const text = words(err, where, side);
    if (text) return text;
  }
  return undefined;
}

/** A mistake in how sockcat was called: bad flag, malformed address, impossible combination. Exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A network or runtime failure that is already worded for the user. Exit 1. */
export class NetError extends Error {
  readonly code?: string;
  constructor(message: string, code?: string) {
    super(message);
    this.name = 'NetError';
    this.code = code;
  }
}

/** What we were doing when an error happened, so the message can name it. */
export interface ErrorContext {
  /** "connect", "listen" or "accept". */
  action: 'connect' | 'listen' | 'io';
  /** The address as the user can read it, e.g. "127.0.0.1:9090" or "unix:/tmp/s". */
  address: string;
  /** The port, when there is one (for the hints). */
  port?: number;
  /** The host name, when there is one (for "name not found"). */
  host?: string;
  /** -4/-6: the only IP version asked for (for "has no IPv6 address"). */
  family?: 4 | 6;
}

/**
 * Turns a Node system error into one sentence naming the address and the cause in plain words.
 */
export function describeError(err: unknown, ctx: ErrorContext): string {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  const where = ctx.address;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused by ${where} — is a server listening there?`;
    case 'EHOSTUNREACH':
      return `host unreachable: ${where}`;
    case 'ENETUNREACH':
      return `network unreachable: ${where}`;
    case 'ENOTFOUND':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      if (ctx.family) return `name not found: ${ctx.host ?? where} has no IPv${ctx.family} address (-${ctx.family} asks for IPv${ctx.family} only)`;
      return `name not found: ${ctx.host ?? where} does not resolve to an address`;
    case 'EAI_AGAIN':
      return `name lookup failed for ${ctx.host ?? where} (DNS not reachable right now)`;
    case 'ETIMEDOUT':
      return `connection to ${where} timed out`;
    case 'ECONNRESET':
      return `connection reset by ${where}`;
    case 'EPIPE':
      return `${where} closed the connection while we were still sending`;
    case 'EADDRINUSE':
      return ctx.port !== undefined
        ? `address already in use: ${where} — is another server on ${ctx.port}? (see who holds it: ss -ltnp 'sport = :${ctx.port}')`
        : `address already in use: ${where} — is another server using it?`;
    case 'EACCES':
    case 'EPERM':
      if (ctx.action === 'listen' && ctx.port !== undefined && ctx.port > 0 && ctx.port < 1024) {
        return `permission denied: port ${ctx.port} needs root (ports below 1024 are privileged); pick a port ≥ 1024`;
      }
      return `permission denied: ${where}`;
    case 'EADDRNOTAVAIL':
      return `cannot use ${where}: that address does not belong to this machine`;
    case 'EINVAL': {
      // Node says "listen EINVAL: invalid argument"; the usual cause is a link-local address
      // written without the interface it belongs to.
      const linkLocal = ctx.host?.toLowerCase().startsWith('fe80:') && !ctx.host.includes('%');
      const hint = linkLocal ? ` (a link-local fe80:: address needs its interface, e.g. [${ctx.host}%eth0]:${ctx.port ?? 'PORT'})` : '';
      return `${ctx.action === 'listen' ? `cannot listen on ${where}` : where}: the system refuses that address${hint}`;
    }
    case 'ENOENT':
      return `${where}: no such file or directory`;
    case 'EMFILE':
    case 'ENFILE':
      return `${where}: too many open files (raise the limit with ulimit -n)`;
    default: {
      const words = describeTransportError(err, where);
      if (words) return words;
      const msg = e?.message ?? String(err);
      return `${where}: ${msg}`;
    }
  }
}

/** Wraps a system error into a NetError worded for the user. */
export function netError(err: unknown, ctx: ErrorContext): NetError {
  if (err instanceof NetError || err instanceof UsageError) return err as NetError;
  return new NetError(describeError(err, ctx), (err as NodeJS.ErrnoException)?.code);
}

/** True for the error codes that mean "the peer reset or vanished", as opposed to a local failure. */
export function isResetError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED';
}

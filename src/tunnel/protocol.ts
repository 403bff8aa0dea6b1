/**
 * The tunnel protocol between `sockcat expose` (the agent) and `sockcat relay`: its frames, its
 * messages and its proof of the token. Everything a stranger can send to the relay's control
 * port goes through FrameReader and parseMessage, which only ever return a message or throw a
 * ProtocolError: never anything else, with memory bounded by MAX_FRAME_BYTES.
 *
 * Frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (one object with a
 * `type`). They carry the handshake only: once the relay says `ready`, the same connection
 * carries the public clients' streams in mux.ts's binary frames (see ARCHITECTURE.md).
 *
 * Every connection to the control port starts the same way: the agent says `hello` (so a plain
 * agent facing a TLS relay, or the reverse, fails at once with a clear reason), the relay answers
 * `challenge` with a fresh random nonce, and the agent proves it holds a token with
 * HMAC-SHA256(token, purpose ‖ nonce ‖ …). The token never crosses the wire, and a recorded
 * proof is worthless on the next connection, which gets another nonce.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 2: streams multiplexed over the control connection (1 had a data connection per client). */
export const PROTOCOL_VERSION = 2;
/** No frame is larger: a peer announcing more is cut off before anything is buffered. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** Bytes of the challenge nonce. */
export const NONCE_BYTES = 32;

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** A client/server address as a tunnel message carries it. */
export interface WireAddress {
  address: string;
  port: number;
}

export type Message =
  /** agent → relay, first frame of every connection. */
  | { type: 'hello'; version: number }
  /** relay → agent: prove you hold a token over this nonce (hex). */
  | { type: 'challenge'; nonce: string }
  /** agent → relay on a control connection: the proof and what the tunnel should be. */
  | { type: 'auth'; mac: string; port?: number; heartbeatMs: number; allow?: string[]; name?: string; httpAuth?: string }
  /** relay → agent: the tunnel is up. */
  | { type: 'ready'; session: string; port: number; name: string; urls?: string[] }
  /** relay → agent: refused, with the reason in words; the relay closes after it. */
  | { type: 'error'; message: string; retry?: boolean };

/** One frame's bytes for a message. */
export function encodeFrame(msg: Message): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  if (body.length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${body.length} bytes is over ${MAX_FRAME_BYTES}`);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/**
 * Cuts a byte stream into messages. push() returns the whole messages the bytes complete and
 * keeps at most one partial frame (≤ MAX_FRAME_BYTES + 4 bytes). Throws ProtocolError on a bad
 * length, bad JSON or a message that is not one of ours.
 */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Message[] {
    this.append(chunk);
    const out: Message[] = [];
    for (;;) {
      const msg = this.next();
      if (!msg) break;
      out.push(msg);
    }
    return out;
  }

  /** Adds bytes; next() takes the messages out. */
  append(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    // A frame that cannot be valid is refused as soon as its length is known, before it is buffered.
    if (this.buffered.length >= 4) {
      const len = this.buffered.readUInt32BE(0);
      if (len === 0 || len > MAX_FRAME_BYTES) throw new ProtocolError(describeBadStart(this.buffered));
    }
  }

  /** One message out of what is buffered, or undefined until more bytes come. */
  next(): Message | undefined {
    if (this.buffered.length < 4) return undefined;
    const len = this.buffered.readUInt32BE(0);
    if (len === 0 || len > MAX_FRAME_BYTES) throw new ProtocolError(describeBadStart(this.buffered));
    if (this.buffered.length < 4 + len) return undefined;
    const body = this.buffered.subarray(4, 4 + len);
    this.buffered = this.buffered.subarray(4 + len);
    return parseMessage(body);
  }

  /** Bytes read past the last whole frame (the first mux frames after `ready`). */
  takeRest(): Buffer {
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }
}

/** Why a stream that does not start with a sane frame length is not ours, in words. */
function describeBadStart(b: Buffer): string {
  if (b[0] === 0x16 && b[1] === 0x03) return 'the peer speaks TLS on a plain control channel (start the relay without --insecure, or give the agent --insecure too)';
  if (b[0] === 0x15 && b[1] === 0x03) return 'the peer sent a TLS alert on a plain control channel (the relay speaks TLS: drop --insecure on the agent)';
  if (/^[A-Z]{3,7} /.test(b.subarray(0, 8).toString('latin1'))) return 'the peer speaks HTTP, not the sockcat tunnel protocol';
  return `not the sockcat tunnel protocol (frame length ${b.readUInt32BE(0)} is outside 1-${MAX_FRAME_BYTES})`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const isHex = (v: unknown, bytes: number): v is string => typeof v === 'string' && v.length === bytes * 2 && /^[0-9a-f]+$/.test(v);
const isShortString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** Checks one frame's body field by field; anything unexpected is a ProtocolError. */
export function parseMessage(body: Buffer): Message {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProtocolError('a frame is not JSON: not the sockcat tunnel protocol');
  }
  if (!isObject(v) || typeof v.type !== 'string') throw new ProtocolError('a frame has no message type');
  const bad = (what: string) => new ProtocolError(`malformed '${String(v && (v as { type: unknown }).type).slice(0, 20)}' message: ${what}`);
  switch (v.type) {
    case 'hello':
      if (!isUint(v.version, 1000)) throw bad('version');
      return { type: 'hello', version: v.version };
    case 'challenge':
      if (!isHex(v.nonce, NONCE_BYTES)) throw bad('nonce');
      return { type: 'challenge', nonce: v.nonce };
    case 'auth': {
      if (!isHex(v.mac, 32)) throw bad('mac');
      if (v.port !== undefined && !isUint(v.port, 65535)) throw bad('port');
      if (!isUint(v.heartbeatMs, 3_600_000) || v.heartbeatMs < 50) throw bad('heartbeatMs');
      let allow: string[] | undefined;
      if (v.allow !== undefined) {
        if (!Array.isArray(v.allow) || v.allow.length > 64 || !v.allow.every((a) => isShortString(a, 64))) throw bad('allow');
        allow = v.allow as string[];
      }
      if (v.name !== undefined && !(typeof v.name === 'string' && isDnsLabel(v.name))) throw bad('name');
      if (v.httpAuth !== undefined && !(isShortString(v.httpAuth, 256) && v.httpAuth.includes(':'))) throw bad('httpAuth');
      return { type: 'auth', mac: v.mac, port: v.port as number | undefined, heartbeatMs: v.heartbeatMs, allow, name: v.name as string | undefined, httpAuth: v.httpAuth as string | undefined };
    }
    case 'ready':
      if (!isHex(v.session, 16) || !isUint(v.port, 65535) || !isShortString(v.name, 256)) throw bad('fields');
      if (v.urls !== undefined && !(Array.isArray(v.urls) && v.urls.length <= 4 && v.urls.every((u) => isShortString(u, 300)))) throw bad('urls');
      return { type: 'ready', session: v.session, port: v.port, name: v.name, urls: v.urls as string[] | undefined };
    case 'error':
      if (!isShortString(v.message, 1000) || (v.retry !== undefined && typeof v.retry !== 'boolean')) throw bad('message');
      return { type: 'error', message: v.message, retry: v.retry as boolean | undefined };
    default:
      throw new ProtocolError(`unknown message type '${v.type.slice(0, 20)}'`);
  }
}

/** A DNS label a tunnel may be named by: lower-case letters, digits and inner hyphens, 1-63. */
export function isDnsLabel(name: string): boolean {
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(name);
}

/** A fresh challenge nonce, hex. */
export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

/** A fresh session id, hex. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The proof of the token over a nonce: HMAC-SHA256(token, purpose ‖ 0 ‖ nonce ‖ 0 ‖ extra), hex.
 * The purpose keeps a control proof from being usable as a data proof and the reverse.
 */
export function proveToken(token: string, purpose: 'control' | 'data', nonce: string, extra = ''): string {
  return createHmac('sha256', token).update(`sockcat-tunnel-v${PROTOCOL_VERSION}\0${purpose}\0${nonce}\0${extra}`).digest('hex');
}

/** Whether `mac` is the proof of `token`, compared in constant time. */
export function checkProof(mac: string, token: string, purpose: 'control' | 'data', nonce: string, extra = ''): boolean {
  const expected = Buffer.from(proveToken(token, purpose, nonce, extra), 'hex');
  const given = Buffer.from(mac, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** "AB:CD:…" (any case, with or without colons) → upper-case hex with colons, as Node prints fingerprint256. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(':');
}

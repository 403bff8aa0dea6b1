import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  checkProof,
  encodeFrame,
  FrameReader,
  MAX_FRAME_BYTES,
  newNonce,
  normalizeFingerprint,
  parseMessage,
  ProtocolError,
  proveToken,
  type Message,
} from '../../src/tunnel/protocol';
import { backoffDelay, BACKOFF_CAP_MS } from '../../src/tunnel/agent';

const samples: Message[] = [
  { type: 'hello', version: 1 },
  { type: 'challenge', nonce: newNonce() },
  { type: 'auth', mac: 'a'.repeat(64), port: 20000, heartbeatMs: 5000, allow: ['192.0.2.0/24'] },
  { type: 'ready', session: 'b'.repeat(32), port: 20000, name: 'laptop' },
  { type: 'error', message: 'wrong token', retry: false },
];

describe('tunnel frames', () => {
  it('every message survives encoding and decoding, whatever the chunking', () => {
    const bytes = Buffer.concat(samples.map(encodeFrame));
    for (const step of [1, 3, 17, bytes.length]) {
      const reader = new FrameReader();
      const out: Message[] = [];
      for (let i = 0; i < bytes.length; i += step) out.push(...reader.push(bytes.subarray(i, i + step)));
      expect(out).toEqual(samples);
    }
  });

  it('keeps the bytes that follow the last frame (the first mux frames after ready)', () => {
    const reader = new FrameReader();
    reader.append(Buffer.concat([encodeFrame({ type: 'hello', version: 2 }), Buffer.from('GET / HTTP/1.1\r\n')]));
    expect(reader.next()).toEqual({ type: 'hello', version: 2 });
    expect(reader.takeRest().toString()).toBe('GET / HTTP/1.1\r\n');
  });

  it('refuses an oversized length before buffering it, and names TLS and HTTP peers', () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(MAX_FRAME_BYTES + 1);
    expect(() => new FrameReader().push(big)).toThrow(ProtocolError);
    expect(() => new FrameReader().push(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toThrow(/speaks TLS/);
    expect(() => new FrameReader().push(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(/HTTP/);
  });

  it('refuses malformed messages field by field', () => {
    const body = (o: unknown) => Buffer.from(JSON.stringify(o));
    expect(() => parseMessage(Buffer.from('{not json'))).toThrow(ProtocolError);
    expect(() => parseMessage(body([1, 2]))).toThrow(/no message type/);
    expect(() => parseMessage(body({ type: 'open', id: 1 }))).toThrow(/unknown message type/);
    expect(() => parseMessage(body({ type: 'auth', mac: 'zz', heartbeatMs: 5000 }))).toThrow(/mac/);
    expect(() => parseMessage(body({ type: 'auth', mac: 'a'.repeat(64), heartbeatMs: 5000, allow: 'x' }))).toThrow(/allow/);
    expect(() => parseMessage(body({ type: '__proto__' }))).toThrow(/unknown message type/);
  });

  it('fuzz: 5,000 random and mutated inputs only ever yield messages or a ProtocolError, memory bounded', () => {
    const valid = Buffer.concat(samples.map(encodeFrame));
    let messages = 0;
    let refused = 0;
    for (let i = 0; i < 5_000; i++) {
      let input: Buffer;
      if (i % 2 === 0) input = randomBytes(1 + (i % 300));
      else {
        // A valid stream with a few bytes flipped, cut short or extended.
        input = Buffer.from(valid.subarray(0, 1 + (i % valid.length)));
        for (let k = 0; k < 1 + (i % 4); k++) input[(i * 7919 + k * 104729) % input.length] ^= 1 << (k % 8);
      }
      const reader = new FrameReader();
      try {
        for (let off = 0; off < input.length; off += 1 + (i % 13)) messages += reader.push(input.subarray(off, off + 1 + (i % 13))).length;
        // Whatever stays buffered is at most one frame.
        expect(reader.takeRest().length).toBeLessThanOrEqual(MAX_FRAME_BYTES + 4);
      } catch (err) {
        expect(err).toBeInstanceOf(ProtocolError);
        refused++;
      }
    }
    expect(messages).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});

describe('token proof', () => {
  it('proves the token without sending it, and a proof is worth nothing on another nonce or purpose', () => {
    const token = 'correct horse battery staple';
    const nonce = newNonce();
    const mac = proveToken(token, 'control', nonce);
    expect(mac).not.toContain(Buffer.from(token).toString('hex'));
    expect(checkProof(mac, token, 'control', nonce)).toBe(true);
    expect(checkProof(mac, 'another token of some length', 'control', nonce)).toBe(false);
    expect(checkProof(mac, token, 'control', newNonce())).toBe(false);
    expect(checkProof(mac, token, 'data', nonce)).toBe(false);
    expect(checkProof('00', token, 'control', nonce)).toBe(false);
  });
});

describe('fingerprints and backoff', () => {
  it('takes a fingerprint with or without colons, in any case', () => {
    const hex = 'ab'.repeat(32);
    const want = Array(32).fill('AB').join(':');
    expect(normalizeFingerprint(hex)).toBe(want);
    expect(normalizeFingerprint(want.toLowerCase())).toBe(want);
    expect(normalizeFingerprint('AB:CD')).toBeUndefined();
  });

  it('backs off exponentially with jitter, capped at 30 s', () => {
    expect(backoffDelay(0, () => 0)).toBe(250);
    expect(backoffDelay(0, () => 0.999)).toBeLessThanOrEqual(750);
    expect(backoffDelay(3, () => 0.5)).toBe(4000);
    for (let n = 0; n < 40; n++) expect(backoffDelay(n)).toBeLessThanOrEqual(BACKOFF_CAP_MS);
    expect(backoffDelay(30, () => 0)).toBe(15_000);
  });
});

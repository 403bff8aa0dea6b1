import { describe, it, expect } from 'vitest';
import { encodeProxyV1, encodeProxyV2, encodeProxyHeader, ipBytes, decodeProxyHeader, PROXY_V2_SIGNATURE, PROXY_V1_MAX_LENGTH, PROXY_V2_MAX_LENGTH } from '../src/proxy-protocol';

describe('PROXY protocol v1', () => {
  it('writes the TCP4 line of the specification', () => {
    const h = encodeProxyV1({ address: '192.168.0.1', port: 56324 }, { address: '192.168.0.11', port: 443 });
    expect(h.toString('latin1')).toBe('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  });

  it('writes TCP6 for IPv6 ends', () => {
    const h = encodeProxyV1({ address: '2001:db8::1', port: 4000 }, { address: '::1', port: 22 });
    expect(h.toString('latin1')).toBe('PROXY TCP6 2001:db8::1 ::1 4000 22\r\n');
  });

  it('sends a mixed pair as TCP6 with the IPv4 address mapped', () => {
    const h = encodeProxyV1({ address: '10.0.0.7', port: 1234 }, { address: '::', port: 80 });
    expect(h.toString('latin1')).toBe('PROXY TCP6 ::ffff:10.0.0.7 :: 1234 80\r\n');
  });

  it('says UNKNOWN when an end has no IP address (unix socket)', () => {
    expect(encodeProxyV1({ address: '/tmp/s' }, { address: '/tmp/s' }).toString()).toBe('PROXY UNKNOWN\r\n');
  });

  it('stays within the 107 bytes the specification allows', () => {
    const long = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    expect(encodeProxyV1({ address: long, port: 65535 }, { address: long, port: 65535 }).length).toBeLessThanOrEqual(107);
  });
});

describe('PROXY protocol v2', () => {
  it('encodes TCP over IPv4 byte for byte', () => {
    const h = encodeProxyV2({ address: '127.0.0.1', port: 0x1234 }, { address: '10.1.2.3', port: 443 });
    expect(h.subarray(0, 12)).toEqual(PROXY_V2_SIGNATURE);
    expect(h.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a');
    expect(h[12]).toBe(0x21); // version 2, PROXY
    expect(h[13]).toBe(0x11); // AF_INET, STREAM
    expect(h.readUInt16BE(14)).toBe(12);
    expect(h.length).toBe(16 + 12);
    expect([...h.subarray(16, 20)]).toEqual([127, 0, 0, 1]);
    expect([...h.subarray(20, 24)]).toEqual([10, 1, 2, 3]);
    expect(h.readUInt16BE(24)).toBe(0x1234);
    expect(h.readUInt16BE(26)).toBe(443);
  });

  it('encodes TCP over IPv6 with a 36-byte address block', () => {
    const h = encodeProxyV2({ address: '2001:db8::42', port: 5000 }, { address: '::1', port: 22 });
    expect(h[13]).toBe(0x21); // AF_INET6, STREAM
    expect(h.readUInt16BE(14)).toBe(36);
    expect(h.length).toBe(16 + 36);
    expect(h.subarray(16, 32).toString('hex')).toBe('20010db8000000000000000000000042');
    expect(h.subarray(32, 48).toString('hex')).toBe('00000000000000000000000000000001');
    expect(h.readUInt16BE(48)).toBe(5000);
    expect(h.readUInt16BE(50)).toBe(22);
  });

  it('sends UNSPEC with an empty block when the ends are not IP', () => {
    const h = encodeProxyV2({ address: '/tmp/s' }, { address: '/tmp/s' });
    expect(h.length).toBe(16);
    expect(h[12]).toBe(0x21);
    expect(h[13]).toBe(0x00);
    expect(h.readUInt16BE(14)).toBe(0);
  });

  it('picks the version asked for', () => {
    const src = { address: '127.0.0.1', port: 1 };
    expect(encodeProxyHeader('v1', src, src).toString().startsWith('PROXY TCP4')).toBe(true);
    expect(encodeProxyHeader('v2', src, src).subarray(0, 12)).toEqual(PROXY_V2_SIGNATURE);
  });
});

describe('ipBytes', () => {
  it('maps IPv4 into IPv6 and drops zone ids', () => {
    expect(ipBytes('1.2.3.4', 6).toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipBytes('fe80::1%eth0', 6).toString('hex')).toBe('fe800000000000000000000000000001');
  });
});

describe('decodeProxyHeader', () => {
  const a = { address: '192.0.2.7', port: 40001 };
  const b = { address: '198.51.100.9', port: 443 };
  const a6 = { address: '2001:db8::7', port: 40001 };
  const b6 = { address: '2001:db8::1', port: 8443 };

  it.each(['v1', 'v2'] as const)('reads back what encodeProxyHeader(%s) writes, IPv4 and IPv6', (v) => {
    for (const [src, dst] of [[a, b], [a6, b6]]) {
      const h = encodeProxyHeader(v, src, dst);
      expect(decodeProxyHeader(h)).toEqual({ status: 'done', length: h.length, header: { version: v === 'v1' ? 1 : 2, command: 'proxy', source: src, destination: dst } });
    }
  });

  it('says how long the header is, so the bytes after it stay the client\'s', () => {
    const h = Buffer.concat([encodeProxyV1(a, b), Buffer.from('GET / HTTP/1.0\r\n')]);
    const r = decodeProxyHeader(h);
    expect(r.status === 'done' && h.subarray(r.length).toString()).toBe('GET / HTTP/1.0\r\n');
  });

  it('waits for more bytes at every cut of a valid header of either version', () => {
    for (const h of [encodeProxyV1(a6, b6), encodeProxyV2(a6, b6), encodeProxyV1({ address: '/x' }, { address: '/x' })]) {
      for (let i = 0; i < h.length; i++) expect(decodeProxyHeader(h.subarray(0, i))).toEqual({ status: 'incomplete' });
    }
  });

  it('keeps the connection\'s addresses for v1 UNKNOWN, v2 LOCAL (health checks) and v2 UNSPEC / unix', () => {
    expect(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toMatchObject({ status: 'done', header: { version: 1, command: 'unknown' } });
    expect(decodeProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'))).toMatchObject({ status: 'done', header: { command: 'unknown' } });
    const local = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    expect(decodeProxyHeader(local)).toEqual({ status: 'done', length: 16, header: { version: 2, command: 'local' } });
    // LOCAL with an address block: the block is skipped, not believed.
    const localWithBlock = Buffer.from(encodeProxyV2(a, b));
    localWithBlock[12] = 0x20;
    expect(decodeProxyHeader(localWithBlock)).toEqual({ status: 'done', length: localWithBlock.length, header: { version: 2, command: 'local' } });
    expect(decodeProxyHeader(encodeProxyV2({ address: '/s' }, { address: '/s' }))).toMatchObject({ status: 'done', header: { command: 'unknown' } });
    const unix = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x31, 0x00, 216]), Buffer.alloc(216)]);
    expect(decodeProxyHeader(unix)).toEqual({ status: 'done', length: 232, header: { version: 2, command: 'unknown' } });
  });

  it('skips v2 TLVs after the addresses', () => {
    const h = Buffer.from(encodeProxyV2(a, b));
    const tlv = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32]); // PP2_TYPE_ALPN "h2"
    const withTlv = Buffer.concat([h, tlv]);
    withTlv.writeUInt16BE(12 + tlv.length, 14);
    expect(decodeProxyHeader(withTlv)).toMatchObject({ status: 'done', length: withTlv.length, header: { source: a } });
  });

  it('shows an IPv4-mapped v2 source in the ::ffff: form Node uses', () => {
    const h = encodeProxyV2({ address: '10.0.0.7', port: 1 }, { address: '::1', port: 2 });
    expect(decodeProxyHeader(h)).toMatchObject({ header: { source: { address: '::ffff:10.0.0.7' } } });
  });

  it.each([
    ['no header at all', 'GET / HTTP/1.1\r\n'],
    ['lower case', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an IPv6 address under TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n'],
    ['a bad address', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['a port past 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['a signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['a NUL byte', 'PROXY TCP4 1.2.3.4\0'],
  ])('refuses a v1 header with %s', (_what, text) => {
    expect(decodeProxyHeader(Buffer.from(text, 'latin1')).status).toBe('invalid');
  });

  it('refuses a v1 line longer than 107 bytes without waiting for its end', () => {
    const r = decodeProxyHeader(Buffer.from('PROXY TCP6 ' + '1'.repeat(PROXY_V1_MAX_LENGTH)));
    expect(r).toMatchObject({ status: 'invalid', reason: expect.stringContaining('107') });
  });

  it('refuses v2 headers with a bad version, command or family, a short block, or past the size bound', () => {
    const base = encodeProxyV2(a, b);
    const with_ = (at: number, byte: number) => {
      const h = Buffer.from(base);
      h[at] = byte;
      return h;
    };
    expect(decodeProxyHeader(with_(12, 0x11)).status).toBe('invalid'); // version 1 in a v2 header
    expect(decodeProxyHeader(with_(12, 0x22)).status).toBe('invalid'); // command 2
    expect(decodeProxyHeader(with_(13, 0x41)).status).toBe('invalid'); // family 4
    expect(decodeProxyHeader(with_(13, 0x21)).status).toBe('invalid'); // IPv6 with an IPv4-sized block
    expect(decodeProxyHeader(with_(6, 0x00)).status).toBe('invalid'); // signature
    const huge = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expect(decodeProxyHeader(huge)).toMatchObject({ status: 'invalid', reason: expect.stringContaining(String(PROXY_V2_MAX_LENGTH)) });
  });

  describe('fuzz', () => {
    /** A small seeded generator (xorshift32): a failure names the seed that reproduces it. */
    function rng(seed: number) {
      let x = seed >>> 0 || 1;
      return () => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) / 0x100000000;
      };
    }
    const valid = [
      encodeProxyV1(a, b),
      encodeProxyV1(a6, b6),
      encodeProxyV2(a, b),
      encodeProxyV2(a6, b6),
      Buffer.from('PROXY UNKNOWN\r\n'),
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]),
    ];

    /** Every answer is one of the three shapes, with a length inside the input and within the bounds. */
    function checkAnswer(input: Buffer, seed: number) {
      let r;
      try {
        r = decodeProxyHeader(input);
      } catch (err) {
        throw new Error(`seed ${seed}: decodeProxyHeader threw on ${input.toString('hex')}: ${(err as Error).message}`);
      }
      if (r.status === 'done') {
        expect(r.length).toBeGreaterThan(0);
        expect(r.length).toBeLessThanOrEqual(Math.min(input.length, Math.max(PROXY_V1_MAX_LENGTH, PROXY_V2_MAX_LENGTH)));
        if (r.header.command === 'proxy') {
          expect(r.header.source.port).toBeGreaterThanOrEqual(0);
          expect(r.header.source.port).toBeLessThanOrEqual(65535);
        }
      } else if (r.status === 'incomplete') {
        // Only a prefix of something valid may ask for more, and never past the size bounds.
        expect(input.length).toBeLessThan(PROXY_V2_MAX_LENGTH);
      } else {
        expect(r.reason).toMatch(/\S/);
        expect(r.reason.length).toBeLessThan(200);
      }
    }

    it('never throws on 20 000 random, mutated, truncated and oversized inputs', () => {
      for (let seed = 1; seed <= 20_000; seed++) {
        const rand = rng(seed);
        const pick = seed % 5;
        let input: Buffer;
        if (pick === 0) {
          // Pure noise, sometimes starting with a signature prefix.
          input = Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
          if (rand() < 0.5) input = Buffer.concat([rand() < 0.5 ? PROXY_V2_SIGNATURE : Buffer.from('PROXY '), input]);
        } else if (pick === 1 || pick === 2) {
          // A valid header with a few bytes flipped.
          input = Buffer.from(valid[Math.floor(rand() * valid.length)]);
          for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256);
        } else if (pick === 3) {
          // A valid header cut anywhere.
          const v = valid[Math.floor(rand() * valid.length)];
          input = v.subarray(0, Math.floor(rand() * v.length));
        } else {
          // Oversized: a v2 length field anywhere up to 65535, or a v1 line of spaces and digits.
          input = rand() < 0.5
            ? Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), Buffer.from([Math.floor(rand() * 256), Math.floor(rand() * 256)]), Buffer.alloc(Math.floor(rand() * 3000))])
            : Buffer.from('PROXY TCP4 ' + Array.from({ length: Math.floor(rand() * 200) }, () => ' 0123456789.:'[Math.floor(rand() * 13)]).join(''));
        }
        checkAnswer(input, seed);
      }
    });
  });
});

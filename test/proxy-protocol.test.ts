import { describe, it, expect } from 'vitest';
import { encodeProxyV1, encodeProxyV2, encodeProxyHeader, ipBytes, PROXY_V2_SIGNATURE } from '../src/proxy-protocol';

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

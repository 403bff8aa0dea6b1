import { describe, it, expect } from 'vitest';
import { parseMapEntry, lookupName, NameMap } from '../../src/proxy/names';
import { DestRules } from '../../src/proxy/dest-rules';
import { ProxyAuth, parseAuthFile } from '../../src/proxy/auth';
import { parseViaUrl } from '../../src/commands/via';
import { encodeAddress, ipv6Bytes, ipv6Text, parseUdpDatagram, udpHeader } from '../../src/endpoints/socks-wire';
import { parseAuthority } from '../../src/proxy/http-proxy';
import { checkOpenProxy } from '../../src/commands/proxy';
import { isLoopbackHost } from '../../src/endpoints/address';
import { parseAddress } from '../../src/endpoints/index';

describe('--map entries', () => {
  it('parses NAME=HOST:PORT, NAME=HOST, wildcards and IPv6 targets', () => {
    expect(parseMapEntry('app.test=127.0.0.1:8000', '--map')).toEqual({ name: 'app.test', target: { host: '127.0.0.1', port: 8000 } });
    expect(parseMapEntry('Kibana.=10.0.0.5', '--map')).toEqual({ name: 'kibana', target: { host: '10.0.0.5', port: undefined } });
    expect(parseMapEntry('*.test=localhost', '--map')).toEqual({ name: '*.test', target: { host: 'localhost', port: undefined } });
    expect(parseMapEntry('v6.test=[::1]:80', '--map')).toEqual({ name: 'v6.test', target: { host: '::1', port: 80 } });
    expect(parseMapEntry('v6.test=::1', '--map')).toEqual({ name: 'v6.test', target: { host: '::1', port: undefined } });
  });

  it.each(['app.test', '=1.2.3.4', 'a b=1.2.3.4', 'x=1.2.3.4:99999', 'x=not a host', 'x=[zz]:80'])('refuses %j with a usage error', (bad) => {
    expect(() => parseMapEntry(bad, '--map')).toThrow(/--map/);
  });

  it('exact names win over wildcards, longer wildcards over shorter; the bare suffix is not matched', () => {
    const entries = ['*.test=1.1.1.1', '*.dev.test=2.2.2.2', 'app.dev.test=3.3.3.3:80'].map((e) => parseMapEntry(e, '--map'));
    expect(lookupName(entries, 'APP.dev.test.')?.target.host).toBe('3.3.3.3');
    expect(lookupName(entries, 'api.dev.test')?.target.host).toBe('2.2.2.2');
    expect(lookupName(entries, 'x.test')?.target.host).toBe('1.1.1.1');
    expect(lookupName(entries, 'test')).toBeUndefined();
    expect(lookupName(entries, 'nottest')).toBeUndefined();
    const map = new NameMap({ entries: ['kibana=10.0.0.5', 'app.test=127.0.0.1:8000'] });
    expect(map.resolve('kibana', 5601)).toEqual({ host: '10.0.0.5', port: 5601, label: '10.0.0.5:5601' });
    expect(map.resolve('app.test', 443)?.label).toBe('127.0.0.1:8000');
  });
});

describe('destination rules', () => {
  it('deny wins; names, *.suffix and CIDRs (IPv4, IPv6, mapped IPv4) all match', () => {
    const r = new DestRules({ allow: ['10.0.0.0/8', '*.example.org'], deny: ['10.0.0.1', 'bad.example.org', '2001:db8::/32'] });
    expect(r.checkNames(['bad.example.org']).ok).toBe(false);
    const www = r.checkNames(['www.example.org']);
    expect(www).toEqual({ ok: true, allowedByName: true });
    // Allowed by name, but it resolves to a denied address.
    expect(r.checkAddress('10.0.0.1', true).ok).toBe(false);
    expect(r.checkAddress('192.0.2.1', true).ok).toBe(true);
    expect(r.checkAddress('192.0.2.1', false).ok).toBe(false);
    expect(r.checkAddress('10.9.9.9', false).ok).toBe(true);
    expect(r.checkAddress('::ffff:10.0.0.1', false).ok).toBe(false);
    expect(r.checkAddress('2001:db8::5', true).ok).toBe(false);
  });

  it('refuses rules that are none of address, CIDR, name or *.suffix', () => {
    expect(() => new DestRules({ deny: ['10.0.0.0/33'] })).toThrow(/--deny-dest/);
    expect(() => new DestRules({ allow: ['a b'] })).toThrow(/--allow-dest/);
  });
});

describe('logins', () => {
  it('checks USER:PASS with a colon in the password, and Basic headers', () => {
    const auth = new ProxyAuth({ users: ['alice:pa:ss', 'bob:x'] });
    expect(auth.required).toBe(true);
    expect(auth.verify('alice', 'pa:ss')).toBe(true);
    expect(auth.verify('alice', 'pa:sS')).toBe(false);
    expect(auth.verify('alice:pa', 'ss')).toBe(false);
    expect(auth.verify('bob', 'x')).toBe(true);
    expect(auth.verifyBasic(`Basic ${Buffer.from('bob:x').toString('base64')}`)).toEqual({ ok: true, user: 'bob' });
    expect(auth.verifyBasic('Bearer abc')).toEqual({ ok: false });
    expect(auth.verifyBasic(`basic ${Buffer.from('eve:x').toString('base64')}`)).toEqual({ ok: false, user: 'eve' });
    expect(new ProxyAuth({}).required).toBe(false);
  });

  it('reads auth files: # comment lines, passwords with #, bad lines reported without their text', () => {
    const { count, problems } = parseAuthFile('# team\nalice:pw#1\nno-colon-secret\n\n', '/etc/p');
    expect(count).toBe(1);
    expect(problems).toEqual(['/etc/p:3: not user:password']);
    expect(() => new ProxyAuth({ users: ['nocolon'] })).toThrow(/--auth/);
  });
});

describe('--via URLs', () => {
  it('parses every scheme with its defaults, logins and TLS options, and the hop syntax', () => {
    expect(parseViaUrl('socks5://127.0.0.1')).toMatchObject({ scheme: 'socks5', host: '127.0.0.1', port: 1080 });
    expect(parseViaUrl('socks5://127.0.0.1').tls).toBeUndefined();
    expect(parseViaUrl('socks5h://al%40ce:p%3Ass@bastion:1081')).toMatchObject({ scheme: 'socks5', user: 'al@ce', password: 'p:ss', host: 'bastion', port: 1081 });
    expect(parseViaUrl('http://proxy:3128')).toMatchObject({ scheme: 'http-connect', port: 3128 });
    expect(parseViaUrl('https://proxy')).toMatchObject({ scheme: 'http-connect', tls: {}, port: 443 });
    expect(parseViaUrl('socks5+tls://[::1]:1443?insecure&servername=hop.test')).toMatchObject({ scheme: 'socks5', host: '::1', port: 1443, tls: { insecure: true, servername: 'hop.test' } });
    expect(parseViaUrl('socks5:bob:pw@127.0.0.1:1080')).toMatchObject({ scheme: 'socks5', user: 'bob', password: 'pw', port: 1080 });
    expect(parseViaUrl('http-connect:127.0.0.1:3128')).toMatchObject({ scheme: 'http-connect', port: 3128 });
  });

  it.each([
    ['ftp://x:1', /unknown proxy scheme/],
    ['socks5://', /not a proxy URL|names no host/],
    ['http://proxy', /needs a port/],
    ['socks5://h:1/path', /no path/],
    ['socks5://h:1?insecure', /TLS hops/],
    ['https://h:1?ca=/no/such/file', /cannot read/],
    ['not a url', /not a proxy URL/],
  ])('refuses %s', (text, re) => {
    expect(() => parseViaUrl(text)).toThrow(re);
  });
});

describe('SOCKS wire format', () => {
  it('encodes and decodes IPv6 addresses', () => {
    for (const a of ['::1', '2001:db8::5', 'fe80::1:2:3:4', '::', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4']) {
      expect(ipv6Text(ipv6Bytes(a))).toBe(a === '::ffff:1.2.3.4' ? '::ffff:102:304' : a);
    }
    expect([...encodeAddress('1.2.3.4', 258)]).toEqual([1, 1, 2, 3, 4, 1, 2]);
    expect([...encodeAddress('ab', 1)]).toEqual([3, 2, 97, 98, 0, 1]);
    expect(() => encodeAddress('a'.repeat(256), 1)).toThrow();
  });

  it('parses UDP datagrams and drops malformed ones', () => {
    const d = parseUdpDatagram(Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress('Host.Test', 53), Buffer.from('q')]));
    expect(d).toEqual({ frag: 0, destination: { host: 'host.test', port: 53, type: 'domain' }, data: Buffer.from('q') });
    expect(parseUdpDatagram(udpHeader('::1', 5))).toMatchObject({ destination: { host: '::1', port: 5, type: 'ipv6' } });
    for (const bad of [[], [0, 0, 0], [1, 0, 0, 1, 1, 2, 3, 4, 0, 1], [0, 0, 0, 3, 0, 0, 1], [0, 0, 0, 3, 5, 97], [0, 0, 0, 9, 1, 2], [0, 0, 0, 1, 1, 2, 3]]) {
      expect(parseUdpDatagram(Buffer.from(bad))).toBeUndefined();
    }
  });

  it('parses CONNECT authorities', () => {
    expect(parseAuthority('example.org:443')).toEqual({ host: 'example.org', port: 443, label: 'example.org:443' });
    expect(parseAuthority('[::1]:22')).toEqual({ host: '::1', port: 22, label: '[::1]:22' });
    for (const bad of ['example.org', 'a:0', 'a:70000', '[zz]:1', 'a b:1', ':80', '']) expect(parseAuthority(bad)).toBeUndefined();
  });
});

describe('open proxy refusal', () => {
  it('refuses a non-loopback listener without --auth, --allow or --open', () => {
    expect(isLoopbackHost('127.0.0.2')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(() => checkOpenProxy(parseAddress('0.0.0.0:1080', 'listen'), false, false)).toThrow(/refusing to run an open proxy on 0\.0\.0\.0:1080.*--auth.*--allow.*--open/);
    expect(() => checkOpenProxy(parseAddress('[::]:1080', 'listen'), false, false)).toThrow(/open proxy/);
    expect(() => checkOpenProxy(parseAddress('0.0.0.0:1080', 'listen'), true, false)).not.toThrow();
    expect(() => checkOpenProxy(parseAddress('0.0.0.0:1080', 'listen'), false, true)).not.toThrow();
    expect(() => checkOpenProxy(parseAddress('1080', 'listen'), false, false)).not.toThrow();
  });
});

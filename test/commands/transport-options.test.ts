/** applyTransportOptions: flags become settings inside the address, on the right address. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import { applyTransportOptions } from '../../src/commands/options';
import { parseAddress, type Address } from '../../src/endpoints/index';
import { makeTestCerts, type TestCerts } from '../helpers/tls';

let certs: TestCerts;
beforeAll(async () => {
  certs = await makeTestCerts();
});
afterAll(() => fs.rmSync(certs.dir, { recursive: true, force: true }));

const apply = (text: string, role: 'listen' | 'connect', argv: Record<string, unknown>): Address => applyTransportOptions(parseAddress(text, role), argv, role);

describe('applyTransportOptions', () => {
  it('--tls turns the listening address into TLS but leaves a forward target alone', () => {
    const argv = { tls: true, cert: certs.cert, key: certs.key };
    const listen = apply('8443', 'listen', argv);
    expect(listen.scheme).toBe('tls');
    expect(listen.scheme === 'tls' && listen.tls?.cert?.path).toBe(certs.cert);
    expect(apply('127.0.0.1:8080', 'connect', argv).scheme).toBe('tcp');
  });

  it('the connect command applies --tls to its one address', () => {
    const a = apply('localhost:443', 'connect', { tls: true, ca: certs.ca, tlsOnConnect: true });
    expect(a.scheme).toBe('tls');
    expect(a.scheme === 'tls' && a.tls?.ca?.pem.toString()).toContain('BEGIN CERTIFICATE');
  });

  it('client settings go to a tls: target, server settings to the listener', () => {
    const argv = { tls: true, cert: certs.cert, key: certs.key, insecure: true, servername: 'example.org' };
    const target = apply('tls:example.org:443', 'connect', argv);
    expect(target.scheme === 'tls' && target.tls).toMatchObject({ insecure: true, servername: 'example.org' });
    expect(target.scheme === 'tls' && target.tls?.cert).toBeUndefined();
    const listen = apply('8443', 'listen', argv);
    expect(listen.scheme === 'tls' && listen.tls?.insecure).toBeFalsy();
  });

  it('--cert implies TLS on the listening address (never a plaintext server by mistake)', () => {
    expect(apply('8443', 'listen', { cert: certs.cert, key: certs.key }).scheme).toBe('tls');
  });

  it('-u turns TCP addresses into UDP on both sides; --unix-mode fills the unix listener', () => {
    expect(apply('9999', 'listen', { udp: true }).scheme).toBe('udp');
    expect(apply('127.0.0.1:53', 'connect', { udp: true }).scheme).toBe('udp');
    expect(apply('unix:/tmp/x.sock', 'listen', { unixMode: '0660' })).toEqual({ scheme: 'unix', path: '/tmp/x.sock', mode: 0o660 });
  });

  it('refuses contradictions with a usage error', () => {
    expect(() => apply('9999', 'listen', { udp: true, tls: true })).toThrow(/DTLS/);
    expect(() => apply('unix:/tmp/x.sock', 'listen', { tls: true })).toThrow(/--tls works over TCP/);
    expect(() => apply('unix:/tmp/x.sock', 'listen', { udp: true })).toThrow(/-u works on TCP addresses/);
    expect(() => apply('8443', 'listen', { tls: true, cert: certs.cert })).toThrow(/--cert and --key go together/);
    expect(() => apply('tls:h:1', 'connect', { insecure: true, ca: certs.ca })).toThrow(/contradict/);
    expect(() => apply('tls:h:1', 'connect', { clientCert: certs.clientCert })).toThrow(/--client-cert and --client-key go together/);
    expect(() => apply('127.0.0.1:1', 'connect', { insecure: true, tlsOnConnect: true })).toThrow(/apply to TLS/);
    expect(() => apply('unix:/tmp/x.sock', 'listen', { unixMode: '999' })).toThrow(/octal/);
  });

  it('a mode that only listens refuses the TLS client flags instead of ignoring them', () => {
    for (const flags of [{ insecure: true }, { servername: 'example.org' }, { clientCert: certs.cert, clientKey: certs.key }]) {
      expect(() => apply('0', 'listen', { listenOnly: true, ...flags })).toThrow(/are for TLS clients, and this mode only listens/);
      expect(() => apply('0', 'listen', { listenOnly: true, tls: true, ...flags })).toThrow(/are for TLS clients, and this mode only listens/);
    }
    // forward's listener does not refuse them: they are for its tls: target.
    expect(apply('0', 'listen', { insecure: true }).scheme).toBe('tcp');
  });

  it('a certificate and key given the wrong way round are named as such, not as an OpenSSL code', () => {
    const swapped = () => apply('8443', 'listen', { tls: true, cert: certs.key, key: certs.cert });
    expect(swapped).toThrow(`--cert ${certs.key} holds a private key, not a certificate: swapped with --key?`);
    const swappedClient = () => apply('tls:h:1', 'connect', { clientCert: certs.clientKey, clientKey: certs.clientCert });
    expect(swappedClient).toThrow(`--client-cert ${certs.clientKey} holds a private key, not a certificate: swapped with --client-key?`);
  });
});

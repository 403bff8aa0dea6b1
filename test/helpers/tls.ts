/** Certificates for TLS tests, written to a temporary directory: a self-signed server cert, a CA and a client cert it signs. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate } from 'selfsigned';

export interface TestCerts {
  dir: string;
  /** Self-signed server certificate for localhost, 127.0.0.1, ::1. */
  cert: string;
  key: string;
  /** Same names, but expired. */
  expiredCert: string;
  expiredKey: string;
  /** A CA, and a client certificate it signed (for mutual TLS). */
  ca: string;
  caKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by nobody the server knows. */
  strangerCert: string;
  strangerKey: string;
}

const SAN = { name: 'subjectAltName' as const, altNames: [{ type: 2 as const, value: 'localhost' }, { type: 7 as const, ip: '127.0.0.1' }, { type: 7 as const, ip: '::1' }] };

/** Makes every certificate the TLS tests need (EC keys: fast). */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-tls-'));
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const day = 86_400_000;
  const server = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256', extensions: [SAN] });
  const expired = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 10 * day),
    notAfterDate: new Date(Date.now() - day),
    extensions: [SAN],
  });
  const ca = await generate([{ name: 'commonName', value: 'sockcat test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true }],
  });
  const client = await generate([{ name: 'commonName', value: 'student' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [{ name: 'extKeyUsage', clientAuth: true }, { name: 'keyUsage', digitalSignature: true }],
  } as Parameters<typeof generate>[1]);
  const stranger = await generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec', algorithm: 'sha256' });
  return {
    dir,
    cert: write('cert.pem', server.cert),
    key: write('key.pem', server.private),
    expiredCert: write('expired.pem', expired.cert),
    expiredKey: write('expired-key.pem', expired.private),
    ca: write('ca.pem', ca.cert),
    caKey: write('ca-key.pem', ca.private),
    clientCert: write('client.pem', client.cert),
    clientKey: write('client-key.pem', client.private),
    strangerCert: write('stranger.pem', stranger.cert),
    strangerKey: write('stranger-key.pem', stranger.private),
  };
}

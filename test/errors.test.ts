/** describeError: system errors worded for users, naming the address and the cause. */
import { describe, it, expect } from 'vitest';
import { describeError } from '../src/errors';

const sysError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('describeError', () => {
  it('EINVAL on listen (e.g. a link-local IPv6 address without its interface) is worded, not Node\'s "listen EINVAL"', () => {
    const text = describeError(sysError('EINVAL', 'listen EINVAL: invalid argument fe80::1'), { action: 'listen', address: '[fe80::1]:9090', host: 'fe80::1', port: 9090 });
    expect(text).toBe('cannot listen on [fe80::1]:9090: the system refuses that address (a link-local fe80:: address needs its interface, e.g. [fe80::1%eth0]:9090)');
  });

  it('keeps the address and the plain cause for refused connections', () => {
    expect(describeError(sysError('ECONNREFUSED', 'x'), { action: 'connect', address: '127.0.0.1:1' })).toBe('connection refused by 127.0.0.1:1 — is a server listening there?');
  });
});

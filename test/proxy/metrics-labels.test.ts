import { describe, it, expect } from 'vitest';
import { DialFailed } from '../../src/proxy/dialer';
import { proxyOutcome } from '../../src/proxy/handler';
import { Reply } from '../../src/endpoints/socks-wire';

describe('proxy metrics labels', () => {
  it('sorts dial failures into rule refusals and upstream causes (dns apart from unreachable)', () => {
    const f = (reason: ConstructorParameters<typeof DialFailed>[1], dns = false) => new DialFailed('x', reason, Reply.generalFailure, dns).metricsCause;
    expect(f('denied by rule')).toEqual({ rule: true });
    expect(f('not mapped')).toEqual({ rule: true });
    expect(f('refused upstream')).toEqual({ rule: false, cause: 'refused' });
    expect(f('upstream timeout')).toEqual({ rule: false, cause: 'timeout' });
    expect(f('unreachable')).toEqual({ rule: false, cause: 'unreachable' });
    expect(f('unreachable', true)).toEqual({ rule: false, cause: 'dns' });
    expect(f('hop failed')).toEqual({ rule: false, cause: 'hop' });
    // The client went away while we connected: nobody's failure to count.
    expect(f('aborted')).toBeUndefined();
  });

  it('keeps outcome labels to a fixed list: the log words, else other', () => {
    expect(proxyOutcome('eof')).toBe('eof');
    expect(proxyOutcome('refused upstream')).toBe('refused upstream');
    expect(proxyOutcome('auth failed')).toBe('auth failed');
    expect(proxyOutcome('request head: something a stranger chose')).toBe('other');
  });
});

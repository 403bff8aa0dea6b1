import { describe, it, expect } from 'vitest';
import { parsePortList, MAX_PORTS } from '../src/ports';
import { UsageError } from '../src/errors';

describe('parsePortList', () => {
  it('takes a port, a range, a list and a mix, ascending without repeats', () => {
    expect(parsePortList('22')).toEqual([22]);
    expect(parsePortList('20-25')).toEqual([20, 21, 22, 23, 24, 25]);
    expect(parsePortList('443,22,80')).toEqual([22, 80, 443]);
    expect(parsePortList('22, 20-23,22')).toEqual([20, 21, 22, 23]);
    expect(parsePortList('1-65535')).toHaveLength(65535);
  });

  it.each([
    ['', /missing ports/],
    ['0', /port 0 .* cannot be scanned/],
    ['65536', /out of range/],
    ['99999999999999999999', /out of range/],
    ['http', /'http' is not a port/],
    ['22,,80', /empty item/],
    ['25-20', /goes backwards: write 20-25/],
    ['-5', /not a port/],
    ['1-', /not a port/],
    ['2.5', /not a port/],
    ['1-65535,1-2', /more than 65,536 ports/],
  ])('refuses %j', (text, message) => {
    expect(() => parsePortList(text)).toThrow(UsageError);
    expect(() => parsePortList(text)).toThrow(message);
  });

  it('allows exactly MAX_PORTS ports named, repeats included', () => {
    expect(MAX_PORTS).toBe(65_536);
    expect(parsePortList('1-65535,7')).toHaveLength(65535);
  });
});

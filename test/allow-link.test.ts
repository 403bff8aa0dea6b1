import { describe, it, expect } from 'vitest';
import { parseDuration, parseLinkFile, readGrants, newLinkId, durationOption } from '../src/allow-link';
import { UsageError } from '../src/errors';

describe('allow-link parsing', () => {
  it('reads durations people write', () => {
    expect(parseDuration('12h')).toBe(12 * 3600_000);
    expect(parseDuration('1h30m')).toBe(5400_000);
    expect(parseDuration('2d')).toBe(2 * 86_400_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('0.5s')).toBe(500);
    expect(parseDuration('soon')).toBeUndefined();
    expect(parseDuration('-1h')).toBeUndefined();
    expect(() => durationOption('0', '--allow-link-ttl')).toThrow(UsageError);
  });

  it('reads a link file, skipping comments and saying why a line is ignored', () => {
    const id = newLinkId();
    const { links, problems } = parseLinkFile(`# links\n${id} grandma\n\n${id}x bob 2h # phone\nshort label\n${id}y too many words here\n${id}z cat forever\n`, 'links.txt');
    expect(links.map((l) => [l.label, l.ttlMs])).toEqual([['grandma', undefined], ['bob', 7200_000]]);
    expect(links[0].fingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(problems).toEqual([
      expect.stringMatching(/^links\.txt:5: the link ID must be at least 22 URL-safe characters/),
      "links.txt:6: expected 'ID LABEL [TTL]'",
      "links.txt:7: 'forever' is not a duration (12h, 30m, 2d…)",
    ]);
  });

  it('finds grant lines in an allow file and leaves the owner\'s lines alone', () => {
    const text = '10.0.0.0/8\n203.0.113.5 # allow-link grandma until 2030-01-01T00:00:00.000Z link=0123456789ab\n# 1.2.3.4 # allow-link x until 2030-01-01T00:00:00.000Z link=0\nnot-an-ip # allow-link x until 2030-01-01T00:00:00.000Z link=0123456789ab\n';
    expect(readGrants(text)).toEqual([{ address: '203.0.113.5', label: 'grandma', expiresAt: Date.parse('2030-01-01T00:00:00.000Z'), fingerprint: '0123456789ab' }]);
  });

  it('makes IDs of 144 random bits, never the same twice', () => {
    const ids = new Set(Array.from({ length: 1000 }, newLinkId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{24}$/);
  });
});

/** Chat names: TR39 skeletons for uniqueness, invisible characters and the reserved server name. */
import { describe, it, expect } from 'vitest';
import { nameRefusal, nameSkeleton } from '../../src/broadcast/names';

describe('chat names', () => {
  it.each([
    ['Elodie', '\uff25lodie'],
    ['Elodie', '\u0415lodie'],
    ['server', '\u0455erver'],
    ['server', 'SERVER'],
    ['alice', '\u0430lice'],
    ['user0', 'userO'],
    ['modem', 'rnodern'],
    ['Élodie', 'E\u0301lodie'],
  ])('%s and %s have one skeleton', (a, b) => {
    expect(nameSkeleton(a)).toBe(nameSkeleton(b));
  });

  it.each([
    ['Elodie', 'Élodie'],
    ['alice', 'alicia'],
    ['François', 'Francois'],
  ])('%s and %s stay two names', (a, b) => {
    expect(nameSkeleton(a)).not.toBe(nameSkeleton(b));
  });

  it.each(['\u3164', 'a\u3164', '\u115f', 'x\u1160', '\uffa0b', 'a\u200bb', 'a\u034fb', 'a\ufe0fb', 'a\u00adb'])('refuses the invisible %j', (name) => {
    expect(nameRefusal(name)).toMatch(/invisible or blank character/);
  });

  it.each(['server', 'Server', '\u0455erver', '\uff53erver', 's\u0435rv\u0435r'])('reserves %j for the server', (name) => {
    expect(nameRefusal(name)).toMatch(/reserved for the server/);
  });

  it.each(['Élodie', 'François', 'user12', '李雷', 'Ἀθηνᾶ', 'a_b-c'])('accepts %j', (name) => {
    expect(nameRefusal(name)).toBeUndefined();
  });
});

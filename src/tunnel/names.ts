/**
 * Generated tunnel names, word-word-NNNN like MySocket's shy-bush-6765: easy to read out loud,
 * 40 × 40 × 10,000 = 16 million of them, so a name is not guessed by trying a few.
 */
import { randomInt } from 'node:crypto';

const ADJECTIVES = 'amber bold brave calm clever cosy crisp dark eager fair fast fierce gentle glad green happy keen kind light lively lucky merry misty noble odd plain proud quick quiet rapid rare shy silent sleek smart snowy solid sunny swift tidy wild'.split(' ');
const NOUNS = 'badger bay birch brook bush canyon cedar cliff cloud comet creek delta dune falcon fern field fjord forest fox glade harbor hill island lake maple meadow moon oak otter pine plain pond reef river robin shore sky stone storm willow'.split(' ');

/** A fresh word-word-NNNN name. */
export function generateName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${String(randomInt(10_000)).padStart(4, '0')}`;
}

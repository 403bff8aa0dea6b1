/** The chat's languages (--lang). A new language: a file like ./fr.ts and one line here. */
import { en, type ChatStrings } from './en';
import { fr } from './fr';

export type { ChatStrings };

export const CHAT_LANGUAGES: Record<string, ChatStrings> = { en, fr };
export const DEFAULT_CHAT_LANGUAGE = 'en';

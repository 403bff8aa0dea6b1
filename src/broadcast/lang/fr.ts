/** Les phrases du salon en français (--lang fr), comme le script « echo à tous » du cours. */
import type { ChatStrings } from './en';

const COMMANDES = '/nick NOM, /who, /quit, /help';

export const fr: ChatStrings = {
  nameRule: '1 à 32 lettres, chiffres, _ ou -',
  welcome: (name) => `bienvenue ! vous êtes ${name}`,
  here: (names) => `présents : ${names.join(', ')}`,
  you: (name) => `${name} (vous)`,
  nobodyElse: "personne d'autre n'est connecté pour l'instant",
  welcomeCommands: `commandes : ${COMMANDES} (une ligne qui commence par // en envoie une qui commence par /)`,
  helpCommands: `commandes : ${COMMANDES}`,
  helpDetails: (nameRule) => `/nick NOM change votre nom (${nameRule}) ; /who dit qui est là ; /quit pour partir`,
  helpSlash: 'une ligne qui commence par // en envoie une qui commence par /',
  unknownCommand: (word) => `commande inconnue /${word} ; commandes : ${COMMANDES}`,
  joined: (name) => `${name} est connecté`,
  left: (name, reason) =>
    `${name} est parti${reason === 'kicked' ? ' (exclu par le serveur)' : reason === 'slow' ? ' (déconnecté : ne lisait pas assez vite)' : reason === 'idle' ? ' (inactif)' : ''}`,
  bye: 'au revoir',
  kicked: 'vous avez été exclu par le serveur',
  shuttingDown: "le serveur s'arrête",
  renamed: (old, name) => `${old} s'appelle maintenant ${name}`,
  youAreNow: (name) => `vous êtes maintenant ${name}`,
  nickUsage: (nameRule) => `utilisation : /nick NOM (${nameRule})`,
  badName: (typed, why) => `'${typed}' ne peut pas être un nom : ${why}`,
  useRule: (nameRule) => `prenez ${nameRule}`,
  invisibleChar: (codePoint) => `il contient un caractère invisible ou blanc (${codePoint})`,
  reservedName: (name) => `'${name}' et les noms qui lui ressemblent sont réservés au serveur`,
  looksLike: (holder) => `il ressemble à ${holder}, déjà présent`,
  alreadyYou: (name) => `vous êtes déjà ${name}`,
  taken: (name) => `${name} est déjà pris`,
  lineCut: (maxLine) => `votre ligne dépassait ${maxLine} octets : la suite a été perdue (--max-line)`,
  dropped: (count) => `${count} message(s) perdu(s) : vous ne lisiez pas assez vite`,
  serverWho: (entries) => `présents : ${entries.join(', ')}`,
  serverNobody: "personne n'est connecté",
  serverNoSuchName: (name) => `personne ne s'appelle '${name}' ici (voir /who)`,
  serverHelp: 'commandes du serveur : /who, /kick NOM, /help ; les autres lignes partent à tous comme <server> ; // envoie une ligne qui commence par /',
  serverUnknownCommand: (word) => `commande inconnue /${word} ; commandes du serveur : /who, /kick NOM, /help`,
};

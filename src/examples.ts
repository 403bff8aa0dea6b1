/**
 * The course scripts of examples/, carried inside sockcat: the bundle (scripts/bundle.mjs)
 * embeds every file of examples/ at build time, so a student with only the binary still has
 * them (`sockcat examples`). Run from source (tsx, in-process tests), they are read from disk.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set by the bundler: examples/ relative path → content. */
declare const __SOCKCAT_EXAMPLES__: Record<string, string> | undefined;

export interface Example {
  /** What the user types: the path under examples/ without its extension (`repond`, `python/client`). */
  name: string;
  /** The file under examples/, e.g. `repond.sh`. */
  file: string;
  /** The first comment line of the file (after any #! line). */
  summary: string;
  content: string;
}

/** Every bundled example, sorted by name. */
export function bundledExamples(): Example[] {
  const files = typeof __SOCKCAT_EXAMPLES__ !== 'undefined' ? __SOCKCAT_EXAMPLES__ : readExampleFiles(fileURLToPath(new URL('../examples/', import.meta.url)));
  return Object.entries(files)
    .map(([file, content]) => ({ name: file.replace(/\.[^./]+$/, ''), file, summary: summaryOf(content), content }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Reads every file under `dir` (recursively) as text: the same walk scripts/bundle.mjs makes. */
export function readExampleFiles(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir).sort()) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) Object.assign(out, readExampleFiles(full, `${prefix}${entry}/`));
    else out[`${prefix}${entry}`] = readFileSync(full, 'utf8');
  }
  return out;
}

/**
 * The first sentence of the file's opening comment (after any #! line): `# …` lines, or a Python
 * docstring, e.g. "A minimal web server in shell: …".
 */
function summaryOf(content: string): string {
  const lines = content.split('\n').slice(0, 20).filter((l, i) => !(i === 0 && l.startsWith('#!')));
  const words: string[] = [];
  if (lines[0]?.startsWith('"""')) {
    for (const [i, line] of lines.entries()) {
      const text = (i === 0 ? line.slice(3) : line).trim();
      if (text === '' || text.startsWith('"""')) break;
      words.push(text.replace(/"""$/, ''));
      if (text.endsWith('"""')) break;
    }
  } else {
    for (const line of lines) {
      const m = /^\s*(?:#|\/\/|--|;)\s?(.*?)\s*$/.exec(line);
      // The comment ends at a blank line, code, or a "Serve it:  …" usage line.
      if (!m || m[1] === '' || /^[\w ]+:\s{2}/.test(m[1])) break;
      words.push(m[1]);
    }
  }
  return firstSentence(words.join(' '));
}

/** Up to the first full stop that ends a sentence; a colon that ends the comment introduces an example, so it goes. */
function firstSentence(text: string): string {
  const end = /[.!?](?=\s+\p{Lu}|\s*$)/u.exec(text);
  return (end ? text.slice(0, end.index + 1) : text).replace(/:$/, '');
}

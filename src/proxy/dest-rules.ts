/**
 * Destination rules (--allow-dest, --deny-dest): where a proxy client may go. A rule is an
 * address or CIDR range (IPv4 or IPv6), a host name, or "*.suffix" (every name under suffix).
 *
 * Names are checked as asked (and as mapped), then every address the name resolves to is
 * checked again, so a name that resolves to a denied address is refused — and the proxy connects
 * only to an address that passed, never to a second lookup's answer. Deny wins. With allow
 * rules, a destination must match one: by name, or by address.
 */
import net from 'node:net';
import { parseRule, PrefixTable } from '../access';
import { UsageError } from '../errors';
import ipaddr from 'ipaddr.js';
import { isSafeHostName } from '../endpoints/socks-wire';
import { normalizeName } from './names';

type NameRule = { text: string; name: string };
interface RuleSet {
  ranges: PrefixTable;
  names: NameRule[];
}

function parseRules(list: string[], flag: string): RuleSet {
  const set: RuleSet = { ranges: new PrefixTable(), names: [] };
  for (const raw of list) {
    const text = raw.trim();
    const plain = text.startsWith('*.') ? text.slice(2) : text;
    if (net.isIP(text.replace(/^\[(.*)\]$/, '$1')) || /^[\d.]+\/\d+$/.test(text) || (text.includes(':') && text.includes('/'))) {
      set.ranges.add(parseRule(text, flag));
    } else if (isSafeHostName(plain) && !/^[\d.]+$/.test(plain)) {
      set.names.push({ text, name: normalizeName(text) });
    } else {
      throw new UsageError(`${flag}: '${text}' is not an address, CIDR range, host name or *.suffix (e.g. 10.0.0.0/8, db.internal, *.example.org)`);
    }
  }
  return set;
}

function nameMatches(rules: NameRule[], name: string): NameRule | undefined {
  const n = normalizeName(name);
  return rules.find((r) => (r.name.startsWith('*.') ? n.endsWith(r.name.slice(1)) : r.name === n));
}

/** The text of the range rule covering `ip` (an IPv4-mapped IPv6 address counts as IPv4). */
function rangeMatches(rules: PrefixTable, ip: string): string | undefined {
  try {
    return rules.find(ipaddr.process(ip));
  } catch {
    return undefined;
  }
}

export type DestVerdict = { ok: true } | { ok: false; reason: string };

/** What the names alone decided: refused, or let through (and whether an allow rule named them). */
export type NameVerdict = { ok: true; allowedByName: boolean } | { ok: false; reason: string };

export class DestRules {
  private readonly allow: RuleSet;
  private readonly deny: RuleSet;

  constructor(opts: { allow?: string[]; deny?: string[] } = {}) {
    this.allow = parseRules(opts.allow ?? [], '--allow-dest');
    this.deny = parseRules(opts.deny ?? [], '--deny-dest');
  }

  get active(): boolean {
    return this.hasAllowRules || this.deny.ranges.size + this.deny.names.length > 0;
  }

  get hasAllowRules(): boolean {
    return this.allow.ranges.size + this.allow.names.length > 0;
  }

  /** Checks the names of a destination (as asked, as mapped); IP literals are left to checkAddress. */
  checkNames(names: string[]): NameVerdict {
    const hostNames = names.filter((n) => !net.isIP(n));
    for (const n of hostNames) {
      const hit = nameMatches(this.deny.names, n);
      if (hit) return { ok: false, reason: `${n} denied by --deny-dest ${hit.text}` };
    }
    return { ok: true, allowedByName: hostNames.some((n) => nameMatches(this.allow.names, n) !== undefined) };
  }

  /** Checks one address a destination resolved to (or was given as). */
  checkAddress(ip: string, allowedByName: boolean): DestVerdict {
    const denied = rangeMatches(this.deny.ranges, ip);
    if (denied !== undefined) return { ok: false, reason: `denied by --deny-dest ${denied}` };
    if (!this.hasAllowRules || allowedByName || rangeMatches(this.allow.ranges, ip) !== undefined) return { ok: true };
    return { ok: false, reason: 'not in --allow-dest' };
  }
}
